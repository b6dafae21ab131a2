"""The in-process asyncssh server: SFTP upload and listing, exec, request counting."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import asyncssh
import pytest

from tests.fixtures.asyncssh_server import TEST_PASSWORD, AsyncSSHServer

FXP_WRITE = 6


async def test_upload_listing_and_chroot(asyncssh_server: AsyncSSHServer) -> None:
    async with await asyncssh_server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.mkdir("/dir")
        async with sftp.open("/dir/hello.txt", "wb") as f:
            await f.write(b"hello world\n")
        assert sorted(await sftp.listdir("/dir")) == [".", "..", "hello.txt"]
        # SFTP paths are rooted in the server's directory
        assert await sftp.realpath("/..") == "/"
    assert (asyncssh_server.root / "dir" / "hello.txt").read_bytes() == b"hello world\n"


async def test_exec_runs_in_root_with_exit_status(asyncssh_server: AsyncSSHServer) -> None:
    (asyncssh_server.root / "data.bin").write_bytes(b"x" * 1000)
    async with await asyncssh_server.connect() as conn:
        result = await conn.run("sha256sum data.bin; echo oops >&2; exit 7")
        assert result.exit_status == 7
        assert result.stdout == f"{hashlib.sha256(b'x' * 1000).hexdigest()}  data.bin\n"
        assert result.stderr == "oops\n"
        echoed = await conn.run("cat", input="piped input")
        assert echoed.stdout == "piped input"
    assert asyncssh_server.stats.exec_commands[0].startswith("sha256sum")


async def test_in_flight_counter_sees_concurrent_writes(asyncssh_server: AsyncSSHServer) -> None:
    stats = asyncssh_server.stats
    async with await asyncssh_server.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/big", "wb") as f:
            stats.reset()
            chunk = b"z" * 4096
            async with asyncio.TaskGroup() as tg:
                for i in range(128):
                    tg.create_task(f.write(chunk, i * len(chunk)))
        assert stats.by_type[FXP_WRITE] == 128
    assert stats.max_in_flight >= 32, stats
    assert stats.max_in_flight <= 128 + 2, stats  # the writes, plus at most open/close
    assert stats.in_flight == 0
    assert (asyncssh_server.root / "big").stat().st_size == 128 * 4096


async def test_serial_requests_stay_at_one_in_flight(asyncssh_server: AsyncSSHServer) -> None:
    async with await asyncssh_server.connect() as conn, conn.start_sftp_client() as sftp:
        asyncssh_server.stats.reset()
        for i in range(10):
            await sftp.mkdir(f"/d{i}")
    assert asyncssh_server.stats.max_in_flight == 1


async def test_rejects_unknown_key_and_accepts_password(asyncssh_server: AsyncSSHServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    kwargs = asyncssh_server.connect_kwargs()
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(**{**kwargs, "client_keys": [other], "password": None})
    kwargs.update(client_keys=None, password=TEST_PASSWORD)
    async with asyncssh.connect(**kwargs) as conn:
        assert (await conn.run("echo ok")).stdout == "ok\n"


async def test_host_key_is_pinned(asyncssh_server: AsyncSSHServer, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong.write_text(f"[127.0.0.1]:{asyncssh_server.port} {other}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh_server.connect(known_hosts=str(wrong))


def test_threaded_server_from_sync_code(asyncssh_server_threaded: AsyncSSHServer) -> None:
    async def upload() -> Sequence[str]:
        server = asyncssh_server_threaded
        async with await server.connect() as conn, conn.start_sftp_client() as sftp:
            async with sftp.open("/from-thread", "wb") as f:
                await f.write(b"ok")
            names = await sftp.listdir("/")
        return names

    assert "from-thread" in asyncio.run(upload())
    assert (asyncssh_server_threaded.root / "from-thread").read_bytes() == b"ok"


async def test_readlink_returns_stored_targets(asyncssh_server: AsyncSSHServer) -> None:
    root = asyncssh_server.root
    (root / "sub").mkdir()
    (root / "sub" / "rel").symlink_to("../file")
    (root / "sub" / "up-and-out").symlink_to("../../outside")
    (root / "abs-outside").symlink_to("/etc/hostname")
    (root / "abs-inside").symlink_to(root / "sub")
    async with await asyncssh_server.connect() as conn, conn.start_sftp_client() as sftp:
        assert await sftp.readlink("/sub/rel") == "../file"
        assert await sftp.readlink("/sub/up-and-out") == "../../outside"
        assert await sftp.readlink("/abs-outside") == "/etc/hostname"
        assert await sftp.readlink("/abs-inside") == "/sub"
        await sftp.symlink("/sub", "/made-absolute")
        assert await sftp.readlink("/made-absolute") == "/sub"
