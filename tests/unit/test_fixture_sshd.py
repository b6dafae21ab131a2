"""The private OpenSSH sshd: real sftp/ssh clients, unprivileged user, clean shutdown."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.endpoint import Endpoint
from tests.fixtures.sshd import SSHDServer, _descendants


def _ssh(endpoint: Endpoint, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            *endpoint.ssh_options(),
            "-p",
            str(endpoint.port),
            f"{endpoint.username}@{endpoint.host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_sftp_batch_upload(sshd_server: SSHDServer, tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"
    src.write_bytes(os.urandom(100_000))
    dest = sshd_server.root / "sftp-batch"
    batch = tmp_path / "batch"
    batch.write_text(f"mkdir {dest}\nput {src} {dest}/upload.bin\nls -l {dest}\n")
    e = sshd_server.endpoint()
    result = subprocess.run(
        ["sftp", *e.ssh_options(), "-P", str(e.port), "-b", str(batch), f"{e.username}@{e.host}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr + sshd_server.log_tail()
    assert (dest / "upload.bin").read_bytes() == src.read_bytes()
    assert "upload.bin" in result.stdout


def test_plain_shell_sessions_get_an_empty_home() -> None:
    """The benchmark's target without this machine's shell start-up: HOME is an empty
    directory in every session, so bash finds no ~/.bashrc to read."""
    server = SSHDServer(log_level="ERROR", plain_shell=True).start()
    try:
        result = _ssh(server.endpoint(), "echo $HOME; ls -A $HOME | wc -l")
        assert result.returncode == 0, result.stderr + server.log_tail()
        assert result.stdout.split() == [str(server.session_home), "0"]
    finally:
        server.stop()


def test_ssh_exec_and_host_key_pinning(sshd_server: SSHDServer, tmp_path: Path) -> None:
    e = sshd_server.endpoint()
    assert _ssh(e, "echo $USER").stdout.strip() == e.username
    stranger = tmp_path / "known_hosts"
    stranger.write_text(
        f"[127.0.0.1]:{e.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    bad = Endpoint(**{**e.__dict__, "known_hosts": stranger})
    result = _ssh(bad, "true")
    assert result.returncode == 255
    assert "host key" in result.stderr.lower() or "verification failed" in result.stderr.lower()


def test_unprivileged_user_with_sudo(sshd_unprivileged: Endpoint) -> None:
    result = _ssh(sshd_unprivileged, "id -un; sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pstest", "0"]


def test_start_is_fast_and_stop_kills_sessions() -> None:
    started = time.monotonic()
    server = SSHDServer().start()
    assert time.monotonic() - started < 1.0
    try:
        e = server.endpoint()
        session = subprocess.Popen(
            ["ssh", *e.ssh_options(), "-p", str(e.port), f"{e.username}@{e.host}",
             "echo ready; exec sleep 60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert session.stdout is not None and session.stderr is not None
        # the marker arrives once the session runs (readline ends early if ssh fails)
        ready = session.stdout.readline()
        assert ready == b"ready\n", session.stderr.read() + server.log_tail().encode()
        pid = server.pid
        assert pid is not None
        children = _descendants(pid)
        assert len(children) >= 2, children  # per-connection sshd and the command
    finally:
        server.stop()
    assert session.wait(timeout=10) != 0  # connection closed by the server
    session.stdout.close()
    session.stderr.close()
    for child in children:
        stat = Path(f"/proc/{child}/stat")
        assert not stat.exists() or b") Z" in stat.read_bytes(), f"sshd child {child} survived"
    assert not server.workdir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="ensure_user needs root")
def test_ensure_user_is_idempotent() -> None:
    from tests.fixtures.sshd import ensure_user

    home = ensure_user("pstest")
    assert ensure_user("pstest") == home
    assert Path("/etc/sudoers.d/pipelined-sftp-pstest").read_text().startswith("pstest ")
