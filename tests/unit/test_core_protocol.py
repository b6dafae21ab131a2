"""Entries the core must not transfer: special files, and names a hostile server makes up."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    SSHSession,
    open_session,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
    RemoveOptions,
    TransferOptions,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec
from tests.fixtures.keys import generate_keypair, write_known_hosts
from tests.unit.core_helpers import Target, failures, snapshot, write_file

pytest_plugins = ("tests.unit.core_fixtures",)


# -- special files ---------------------------------------------------------------------------


async def test_special_files_are_skipped_and_counted(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    write_file(src / "regular", b"r")
    os.mkfifo(src / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))
        report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == []
    assert (report.files, report.specials) == (1, 2)
    assert sorted(os.listdir(target.lpath("dst"))) == ["regular"]

    os.mkfifo(target.lpath("dst", "remote-fifo"))
    back = local_tmp / "back"
    report = await api.pull(session, target.rpath("dst"), str(back), TransferOptions())
    assert failures(report) == []
    assert (report.files, report.specials) == (1, 1)
    assert sorted(os.listdir(back)) == ["regular"]


async def test_special_file_as_the_source_is_refused(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    os.mkfifo(local_tmp / "fifo")
    with pytest.raises(api.TransferError, match="not a regular file"):
        await api.push(session, str(local_tmp / "fifo"), target.rpath("x"), TransferOptions())
    assert not target.lpath("x").exists()


# -- a hostile server --------------------------------------------------------------------------

# (name, is a directory)
HOSTILE_NAMES = (
    (b"..", False),
    (b".", True),
    (b"..", True),
    (b"../escaped", False),
    (b"../escaped-dir", True),
    (b"sub/../../escaped", False),
    (b"/abs-escaped", False),
    (b"/abs-escaped-dir", True),
    (b"nul\0x", False),
    (b"", False),
)


class HostileSFTPServer(asyncssh.SFTPServer):
    """Lists every directory with its real entries plus names that are not one component.

    Each made-up name claims to be a regular file or a directory, so a careless client
    would create it.
    """

    root: bytes = b""

    def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
        super().__init__(chan, chroot=self.root)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        for bad, is_dir in HOSTILE_NAMES:
            mode = 0o040755 if is_dir else 0o100644
            attrs = asyncssh.SFTPAttrs(size=5, permissions=mode, mtime=1, atime=1)
            yield asyncssh.SFTPName(bad, attrs=attrs)


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[SSHSession, Path]]:
    """A session to a hostile server, and the directory it serves (its "/")."""
    root = tmp_path / "served"
    root.mkdir()
    host_key = generate_keypair(tmp_path / "host_key", "host")
    client_key = generate_keypair(tmp_path / "client_key", "client")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(client_key.public_line + "\n")

    class Server(HostileSFTPServer):
        pass

    Server.root = os.fsencode(root)
    acceptor = await asyncssh.create_server(
        _Auth,
        "127.0.0.1",
        0,
        server_host_keys=[str(host_key.private_path)],
        authorized_client_keys=str(authorized),
        sftp_factory=Server,
        allow_scp=False,
    )
    port = acceptor.get_port()
    known_hosts = write_known_hosts(tmp_path / "known_hosts", host_key, [("127.0.0.1", port)])
    spec = ConnectionSpec(
        host="127.0.0.1",
        port=port,
        user="tester",
        client_keys=(str(client_key.private_path),),
        known_hosts=str(known_hosts),
    )
    session = await open_session(spec)
    try:
        yield session, root
    finally:
        await session.aclose()
        acceptor.close()
        await acceptor.wait_closed()


async def test_pull_never_writes_outside_dest(
    hostile: tuple[SSHSession, Path], tmp_path: Path
) -> None:
    session, served = hostile
    write_file(served / "tree" / "good", b"good")
    write_file(served / "tree" / "sub" / "inner", b"inner")
    area = tmp_path / "area"
    dest = area / "deep" / "dest"
    dest.parent.mkdir(parents=True)
    write_file(area / "bystander", b"untouched")
    before = snapshot(tmp_path)

    report = await api.pull(session, "/tree", str(dest), TransferOptions())

    after = snapshot(tmp_path)
    new_outside = {
        path for path in after.keys() - before.keys() if not path.startswith(b"area/deep/dest")
    }
    assert new_outside == set()
    assert after[b"area/bystander"] == before[b"area/bystander"]
    assert (dest / "good").read_bytes() == b"good"
    assert (dest / "sub" / "inner").read_bytes() == b"inner"
    assert sorted(os.listdir(dest)) == ["good", "sub"]
    assert sorted(os.listdir(dest / "sub")) == ["inner"]
    reasons = " ".join(reason for _path, reason in failures(report))
    assert "unsafe name" in reasons
    assert "escaped" in reasons


async def test_push_delete_leaves_hostile_names_alone(
    hostile: tuple[SSHSession, Path], tmp_path: Path
) -> None:
    session, served = hostile
    write_file(served / "bystander", b"untouched")
    write_file(served / "dst" / "extra", b"extra")
    src = tmp_path / "src"
    write_file(src / "a", b"a")
    report = await api.push(session, f"{src}/", "/dst", TransferOptions(delete=True))
    assert (served / "bystander").read_bytes() == b"untouched"
    assert sorted(os.listdir(served / "dst")) == ["a"]
    assert report.deleted == 1
    assert "unsafe name" in " ".join(reason for _path, reason in failures(report))


async def test_remove_leaves_hostile_names_alone(
    hostile: tuple[SSHSession, Path],
) -> None:
    session, served = hostile
    write_file(served / "bystander", b"untouched")
    write_file(served / "tree" / "f", b"f")
    report = await api.remove(session, ["/tree"], RemoveOptions())
    assert (served / "bystander").read_bytes() == b"untouched"
    assert "unsafe name" in " ".join(reason for _path, reason in failures(report))
