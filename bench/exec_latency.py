"""Latency of one command through the plugin's persistent process against ssh's control master.

Starts the private sshd (tests/fixtures/sshd.py) behind the latency proxy, a persistent
connection process (the connection plugin's) and an OpenSSH control master, then times
``--runs`` commands through each that read 20 KB of stdin (the size of a small pipelined
module) and print a line. Prints each time in ms and the medians: the round trips a task pays
for its command, without ansible-core's own per-task work.

    .venv/bin/python bench/exec_latency.py --rtt 50
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO / ".work" / "collections", REPO):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux  # noqa: E402
from tests.fixtures.latency_proxy import latency_proxy_thread  # noqa: E402
from tests.fixtures.sshd import sshd_server  # noqa: E402
from tests.unit.core_helpers import spec_for  # noqa: E402

COMMAND = "cat >/dev/null; echo done"
STDIN = b"x" * 20_000


def through_persistent_process(path: str) -> None:
    command = mux.MuxCommand.start(path, COMMAND)
    try:
        command.write(STDIN)
        command.write_eof()
        while command.read_event()[0] != "exit":
            pass
    finally:
        command.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=50.0, help="round trip in ms")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pel-"))
    with (
        sshd_server(log_level="ERROR") as sshd,
        latency_proxy_thread(sshd.port, rtt=args.rtt / 1000) as proxy,
    ):
        endpoint = sshd.endpoint().via(proxy.port, scratch / "known_hosts")
        path = mux.ensure_server(spec_for(endpoint), directory=str(scratch / "cp"))
        ssh = [
            "ssh", "-p", str(endpoint.port), *endpoint.ssh_options(),
            "-o", "ControlMaster=auto", "-o", f"ControlPath={scratch}/ssh-%C",
            "-o", "ControlPersist=60", f"{endpoint.username}@{endpoint.host}",
        ]  # fmt: skip
        try:
            subprocess.run([*ssh, "true"], check=True)
            through_persistent_process(path)  # both warm
            times: dict[str, list[float]] = {"persistent process": [], "ssh control master": []}
            for _run in range(args.runs):
                started = time.perf_counter()
                through_persistent_process(path)
                times["persistent process"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                subprocess.run([*ssh, COMMAND], input=STDIN, capture_output=True, check=True)
                times["ssh control master"].append((time.perf_counter() - started) * 1000)
        finally:
            mux.stop(path)
            subprocess.run([*ssh[:-1], "-O", "exit", ssh[-1]], capture_output=True, check=False)
    print(f"# rtt {args.rtt:g} ms, {args.runs} commands each, ms")
    for name, values in times.items():
        print(
            f"{name:20} median {statistics.median(values):6.1f}  "
            + " ".join(f"{v:.0f}" for v in values)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
