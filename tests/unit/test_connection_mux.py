"""The persistent connection process against a real OpenSSH server."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_connection_support import (
    BECOME_PASSWORD,
    BECOME_USER,
    Sshd,
    mux_processes,
    wait_gone,
)

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux as mux_server
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_files as files
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_session
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXF_CREAT,
    FXF_READ,
    FXF_WRITE,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec
from tests.fixtures.asyncssh_server import AsyncSSHServer
from tests.unit.core_helpers import spec_for

pytestmark = pytest.mark.timeout(120)


pytest_plugins = ("tests.unit.connection_fixtures", "tests.unit.core_fixtures")


def _spec(sshd: Sshd, **changes: object) -> ConnectionSpec:
    values: dict[str, object] = {
        "host": sshd.host,
        "port": sshd.port,
        "user": "root",
        "client_keys": (str(sshd.client_key),),
        "known_hosts": str(sshd.known_hosts),
    }
    values.update(changes)
    return ConnectionSpec(**values)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_exec_streams_stdin_stdout_stderr_and_status(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd)
    path = mux.ensure_server(spec, directory=str(control))
    session = mux_session.MuxSession(spec, path)
    payload = os.urandom(3 * 1024 * 1024)  # several frames each way

    async def run() -> None:
        result = await session.exec("echo out; echo err >&2; cat; exit 7", payload)
        assert result.rc == 7
        assert result.stdout == b"out\n" + payload
        assert result.stderr == b"err\n"
        many = await asyncio.gather(*(session.exec(f"echo {i}") for i in range(10)))
        assert [r.stdout for r in many] == [f"{i}\n".encode() for i in range(10)]

    asyncio.run(run())


def test_second_client_reuses_the_same_process(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd)
    first = mux.ensure_server(spec, directory=str(control))
    pid = mux.ping(first)
    assert pid is not None
    assert mux.ensure_server(spec, directory=str(control)) == first
    assert mux.ping(first) == pid
    assert mux_processes(control) == [pid]
    # another user on the same host gets its own process
    other = _spec(sshd, user="nobody-else")
    assert mux.socket_path_for(other, str(control)) != first


def test_sftp_channel_is_a_raw_pipe(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    spec = _spec(sshd)
    session = mux_session.MuxSession(spec, mux.ensure_server(spec, directory=str(control)))
    target = tmp_path / "via-mux.bin"
    data = os.urandom(1024 * 1024 + 17)

    async def run() -> None:
        client = await session.open_sftp()
        try:
            handle = await client.open(os.fsencode(target), FXF_WRITE | FXF_CREAT)
            step = 200 * 1024
            await asyncio.gather(
                *(client.write(handle, i, data[i : i + step]) for i in range(0, len(data), step))
            )
            await client.close(handle)
            handle = await client.open(os.fsencode(target), FXF_READ)
            back = await client.read(handle, 0, 100)
            await client.close(handle)
            assert back == data[:100]
        finally:
            await client.aclose()

    asyncio.run(run())
    assert target.read_bytes() == data


def test_idle_timeout_removes_process_and_socket(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd)
    path = mux.ensure_server(spec, directory=str(control), idle_timeout=1.0)
    pid = mux.ping(path)
    assert pid is not None
    result = asyncio.run(mux_session.MuxSession(spec, path).exec("sleep 1.5; echo done"))
    assert result.stdout == b"done\n"  # a running command is not idle
    assert wait_gone(control, 10), os.listdir(control)
    assert not _alive(pid)
    assert control.stat().st_mode & 0o777 == 0o700


def test_stop_ends_the_process(sshd: Sshd, control: Path) -> None:
    path = mux.ensure_server(_spec(sshd), directory=str(control))
    assert mux.stop(path)
    assert wait_gone(control, 10)
    assert mux.ping(path) is None


async def test_a_stopped_server_leaves_its_successors_socket(sshd: Sshd, control: Path) -> None:
    """After a stop, the next process may bind the same path and get the freed inode number
    back (ext4 reuses it at once); the stopped server's last clean-up must not remove it."""
    control.mkdir(mode=0o700)
    path = str(control / "successor.sock")
    bound = mux_server._bind(path)
    assert bound is not None
    sock, ino = bound
    session = await mux_server.open_connection(_spec(sshd))
    try:
        server = mux_server.MuxServer(session, 60, path, ino)
        serving = asyncio.create_task(server.serve(sock))
        async with asyncio.timeout(10):
            while server._server is None:
                await asyncio.sleep(0.01)
            server.retire()  # what a stop request does before it answers
            successor = mux_server._bind(path)  # the next process, before this one is gone
            assert successor is not None
            server.stop.set()
            await serving  # its clean-up retires again
        server.retire()
        sock.close()
        assert os.stat(path).st_ino == successor[1]
        successor[0].close()
    finally:
        await session.aclose()


def test_dead_process_is_replaced(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd)
    path = mux.ensure_server(spec, directory=str(control))
    pid = mux.ping(path)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid in mux_processes(control) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(path)  # stale socket left behind by the killed process
    again = mux.ensure_server(spec, directory=str(control))
    assert again == path
    assert mux.ping(path) not in (None, pid)


def test_concurrent_starts_leave_one_process(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd)
    paths: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            paths.append(mux.ensure_server(spec, directory=str(control)))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(set(paths)) == 1
    deadline = time.monotonic() + 10
    while len(mux_processes(control)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mux_processes(control) == [mux.ping(paths[0])]


def test_password_never_on_command_line_or_environment(
    sshd: Sshd, control: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_BECOME_PASS", "env-secret-value")
    spec = _spec(sshd, user=BECOME_USER, client_keys=(), password=BECOME_PASSWORD)
    path = mux.ensure_server(spec, directory=str(control))
    result = asyncio.run(mux_session.MuxSession(spec, path).exec("id -un"))
    assert result.stdout == f"{BECOME_USER}\n".encode()
    (pid,) = mux_processes(control)
    secret = BECOME_PASSWORD.encode()
    assert secret not in Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert secret not in environ
    assert b"env-secret-value" not in environ
    assert BECOME_PASSWORD not in mux.mux_key(spec)


def test_host_key_mismatch_fails_closed(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    with pytest.raises(mux.MuxError) as info:
        mux.ensure_server(_spec(sshd, known_hosts=str(wrong)), directory=str(control))
    assert info.value.kind == "hostkey"
    assert info.value.unreachable
    assert "127.0.0.1" in str(info.value)
    assert wait_gone(control, 5)


def test_unknown_host_fails_under_strict_policy(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(mux.MuxError) as info:
        mux.ensure_server(_spec(sshd, known_hosts=str(empty)), directory=str(control))
    assert info.value.kind == "hostkey"


def test_wrong_password_is_an_authentication_failure(sshd: Sshd, control: Path) -> None:
    spec = _spec(sshd, user=BECOME_USER, client_keys=(), password="not-the-password")
    with pytest.raises(mux.MuxError) as info:
        mux.ensure_server(spec, directory=str(control))
    assert info.value.kind == "auth"
    assert "not-the-password" not in str(info.value)
    assert wait_gone(control, 5)


def test_too_long_control_path_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80)
    with pytest.raises(mux.MuxError, match="shorter control_path_dir"):
        mux.ensure_server(_spec(sshd), directory=str(deep))


def test_unreachable_port(control: Path) -> None:
    from test_connection_support import free_port

    spec = ConnectionSpec(host="127.0.0.1", port=free_port(), user="root", connect_timeout=3)
    with pytest.raises(mux.MuxError) as info:
        mux.ensure_server(spec, directory=str(control))
    assert info.value.kind == "unreachable"
    assert str(spec.port) in str(info.value)


def test_put_and_get_through_the_core(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    spec = _spec(sshd)
    session = mux_session.MuxSession(spec, mux.ensure_server(spec, directory=str(control)))
    local = tmp_path / "local.bin"
    data = os.urandom(5 * 1024 * 1024 + 3)
    local.write_bytes(data)
    local.chmod(0o640)
    remote = tmp_path / "remote.bin"
    back = tmp_path / "back.bin"
    asyncio.run(files.put(session, str(local), str(remote)))
    assert remote.read_bytes() == data
    assert remote.stat().st_mode & 0o777 == 0o640
    asyncio.run(files.get(session, str(remote), str(back)))
    assert back.read_bytes() == data
    with pytest.raises(files.TransferError, match="no-such-file"):
        asyncio.run(files.get(session, str(tmp_path / "no-such-file"), str(back)))


def test_process_copies_files_by_path(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    """put/get ops: the persistent process reads and writes the local file itself."""
    spec = _spec(sshd)
    path = mux.ensure_server(spec, directory=str(control))
    local = tmp_path / "local.bin"
    data = os.urandom(3 * 1024 * 1024 + 5)
    local.write_bytes(data)
    remote = tmp_path / "remote.bin"
    back = tmp_path / "back.bin"
    asyncio.run(mux_session.transfer(path, "put", str(local), str(remote)))
    assert remote.read_bytes() == data
    asyncio.run(mux_session.transfer(path, "get", str(remote), str(back)))
    assert back.read_bytes() == data
    missing = tmp_path / "no-such-file"
    with pytest.raises(files.TransferError, match=f"{missing} does not exist"):
        asyncio.run(mux_session.transfer(path, "get", str(missing), str(back)))
    with pytest.raises(files.TransferError, match=str(missing)):
        asyncio.run(mux_session.transfer(path, "put", str(missing), str(remote)))
    assert back.read_bytes() == data  # a failed get leaves the earlier file alone
    assert mux.ping(path) is not None  # failures do not take the process down


def test_become_runs_in_the_persistent_process(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    """Become SFTP channels and commands ride the process's connection, errors keep their type."""
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import BecomeError
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import BecomeSpec

    spec = _spec(sshd, user=BECOME_USER, password=BECOME_PASSWORD, client_keys=())
    path = mux.ensure_server(spec, directory=str(control))
    target = tmp_path / "written-as-root"
    tmp_path.chmod(0o777)
    root = mux_session.MuxSession(
        dataclasses.replace(spec, become=BecomeSpec(password=BECOME_PASSWORD)), path
    )

    async def as_root() -> tuple[mux_session.ExecResult, bool]:
        done = await root.exec("id -un; cat", b"via stdin")
        client = await root.open_sftp()
        try:
            handle = await client.open(os.fsencode(target), FXF_WRITE | FXF_CREAT)
            await client.write(handle, 0, b"root data")
            await client.close(handle)
            root_dir = (await client.lstat(b"/root/.")) is not None
        finally:
            await client.aclose()
        return done, root_dir

    done, root_dir = asyncio.run(as_root())
    assert (done.rc, done.stdout) == (0, b"root\nvia stdin")
    assert root_dir
    assert target.read_bytes() == b"root data" and target.stat().st_uid == 0

    wrong_become = BecomeSpec(password="not-it")
    wrong = mux_session.MuxSession(dataclasses.replace(spec, become=wrong_become), path)
    with pytest.raises(BecomeError, match="rejected the become password") as caught:
        asyncio.run(wrong.open_sftp())
    assert "not-it" not in str(caught.value) and BECOME_PASSWORD not in str(caught.value)
    with pytest.raises(BecomeError, match="rejected the become password"):
        asyncio.run(wrong.exec("true"))
    assert mux.ping(path) is not None
    assert len(mux_processes(control)) == 1


def test_transfers_reuse_idle_channels(
    core_asyncssh: AsyncSSHServer, control: Path, tmp_path: Path
) -> None:
    """The persistent process opens one SFTP channel ahead and put/get keep reusing it."""
    endpoint = core_asyncssh.endpoint()
    before = core_asyncssh.stats.sftp_sessions
    path = mux.ensure_server(spec_for(endpoint), directory=str(control))
    local = tmp_path / "local.bin"
    data = os.urandom(300_000)
    local.write_bytes(data)
    names = [f"pool-{os.getpid()}-{i}" for i in range(3)]
    try:
        remote = endpoint.remote_root
        for name in names:
            asyncio.run(mux_session.transfer(path, "put", str(local), f"{remote}/{name}"))
        back = tmp_path / "back.bin"
        asyncio.run(mux_session.transfer(path, "get", f"{remote}/{names[0]}", str(back)))
        assert back.read_bytes() == data
        assert all((endpoint.local_root / name).read_bytes() == data for name in names)
        assert core_asyncssh.stats.sftp_sessions - before == 1
    finally:
        mux.stop(path)
        for name in names:
            (endpoint.local_root / name).unlink(missing_ok=True)
