"""The fixtures' command lines start servers the benchmark and demo can reach."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh

from tests.fixtures import REPO_ROOT


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""


def test_server_and_proxy_command_lines(tmp_path: Path) -> None:
    server = _start("tests.fixtures.asyncssh_server", "--json")
    try:
        assert server.stdout is not None
        endpoint = json.loads(server.stdout.readline())
        proxy = _start(
            "tests.fixtures.latency_proxy",
            "--target", f"127.0.0.1:{endpoint['port']}",
            "--rtt-ms", "10",
        )  # fmt: skip
        try:
            assert proxy.stdout is not None
            line = proxy.stdout.readline()
            assert line.startswith("port="), line
            proxy_port = int(line.split()[0].removeprefix("port="))
            known_hosts = tmp_path / "known_hosts"
            host_key = " ".join(endpoint["host_key"].split()[:2])
            known_hosts.write_text(f"[127.0.0.1]:{proxy_port} {host_key}\n")

            async def run() -> str:
                async with asyncssh.connect(
                    "127.0.0.1",
                    proxy_port,
                    username=endpoint["username"],
                    client_keys=[endpoint["client_key"]],
                    known_hosts=str(known_hosts),
                    agent_path=None,
                ) as conn:
                    return str((await conn.run("pwd", check=True)).stdout)

            assert asyncio.run(run()).strip() == endpoint["local_root"]
        finally:
            _stop(proxy)
    finally:
        _stop(server)
    assert not Path(endpoint["local_root"]).exists()
