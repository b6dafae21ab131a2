"""connect.py against real servers: OpenSSH sshd on loopback, the in-process asyncssh server,
real sudo with real users (tests run as root)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncssh
import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    AuthError,
    BecomeError,
    ConnectError,
    HostKeyError,
    SSHSession,
    open_session,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
    RemoveOptions,
    TransferOptions,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXF_CREAT,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPClient,
    SFTPError,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)
from tests.fixtures.asyncssh_server import TEST_PASSWORD, AsyncSSHServer
from tests.fixtures.keys import KeyPair, generate_keypair, write_known_hosts
from tests.fixtures.sshd import SFTP_SERVER as SHARED_SFTP_SERVER
from tests.fixtures.sshd import SSHDServer, ensure_user, sshd_server

SFTP_SERVER = str(SHARED_SFTP_SERVER)
NOPASSWD_USER = "pscon1"  # may run only sftp-server and /bin/sh as root, without a password
PASSWD_USER = "pscon2"  # must give its password to sudo
PASSWD_USER_PASSWORD = "Pscon2-sudo-pw-41"
TTY_USER = "pscon3"  # sudo insists on a tty (requiretty)
SUDOERS = Path("/etc/sudoers.d/pipelined-sftp-connect-test")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs sshd, sudo, useradd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_become_users() -> None:
    """Three real login users with narrow sudo rules of their own (idempotent)."""
    ensure_user(NOPASSWD_USER, sudo=False)
    ensure_user(PASSWD_USER, sudo=False, password=PASSWD_USER_PASSWORD)
    ensure_user(TTY_USER, sudo=False)
    rule = (
        f"{NOPASSWD_USER} ALL=(root) NOPASSWD: {SFTP_SERVER}, /bin/sh\n"
        f"{PASSWD_USER} ALL=(root) PASSWD: {SFTP_SERVER}, /bin/sh\n"
        f"{TTY_USER} ALL=(root) NOPASSWD: {SFTP_SERVER}\n"
        f"Defaults:{TTY_USER} requiretty\n"
    )
    if not SUDOERS.exists() or SUDOERS.read_text() != rule:
        tmp = SUDOERS.with_name(SUDOERS.name + ".new")  # no dot: sudo skips it, visudo checks it
        tmp.write_text(rule)
        tmp.chmod(0o440)
        subprocess.run(["visudo", "-c", "-q", "-f", str(tmp)], check=True)
        tmp.rename(SUDOERS)


def _sshd_spec(server: SSHDServer, **kw: object) -> ConnectionSpec:
    base = ConnectionSpec(
        host=server.host,
        port=server.port,
        user="root",
        client_keys=(str(server.client_key.private_path),),
        known_hosts=str(server.known_hosts),
        connect_timeout=10,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@dataclass
class Sshd:
    """The shared sshd fixture, with a spec factory."""

    server: SSHDServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host_key(self) -> KeyPair:
        return self.server.host_key

    @property
    def client_key(self) -> KeyPair:
        return self.server.client_key

    def spec(self, **kw: object) -> ConnectionSpec:
        return _sshd_spec(self.server, **kw)


@pytest.fixture(scope="module")
def sshd(sshd_server: SSHDServer) -> Sshd:
    _ensure_become_users()
    return Sshd(sshd_server)


@pytest.fixture(scope="module")
def assh(asyncssh_server_threaded: AsyncSSHServer) -> AsyncSSHServer:
    """The in-process asyncssh server (own loop, own thread), with password auth."""
    return asyncssh_server_threaded


def _assh_spec(server: AsyncSSHServer, **kw: object) -> ConnectionSpec:
    base = ConnectionSpec(
        host=server.host,
        port=server.port,
        user=server.username,
        client_keys=(str(server.client_key.private_path),),
        known_hosts=str(server.known_hosts),
        connect_timeout=10,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _session(spec: ConnectionSpec) -> AsyncIterator[SSHSession]:
    session = await open_session(spec)
    try:
        yield session
    finally:
        await session.aclose()


async def _write_file(sftp: SFTPClient, path: bytes, data: bytes) -> None:
    handle = await sftp.open(path, FXF_WRITE | FXF_CREAT | FXF_TRUNC)
    try:
        for offset in range(0, len(data), 32768):  # within any server's max write
            await sftp.write(handle, offset, data[offset : offset + 32768])
    finally:
        await sftp.close(handle)


async def _read_file(sftp: SFTPClient, path: bytes, size: int) -> bytes:
    handle = await sftp.open(path, FXF_READ)
    try:
        chunks = []
        offset = 0
        while offset < size:
            chunk = await sftp.read(handle, offset, min(32768, size - offset))
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    finally:
        await sftp.close(handle)


def _assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        for secret in secrets:
            assert secret not in text


# -- connect, sftp, exec ---------------------------------------------------------------


async def test_sshd_key_auth_sftp_and_exec(sshd: Sshd, tmp_path: Path) -> None:
    async with _session(sshd.spec()) as session:
        sftp = await session.open_sftp()
        other = await session.open_sftp()  # a second, independent channel
        try:
            assert sftp.version == 3
            assert b"limits@openssh.com" in sftp.extensions
            limits = await sftp.limits()
            assert limits.max_write >= 32768
            target = os.fsencode(tmp_path / "hello")
            await _write_file(sftp, target, b"hello world")
            assert (tmp_path / "hello").read_bytes() == b"hello world"
            assert (await other.stat(target)).size == 11
        finally:
            await sftp.aclose()
            await other.aclose()
        result = await session.exec("echo out; echo err >&2; exit 3")
        assert (result.rc, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
        result = await session.exec("cat", stdin=b"\x00binary\xff")
        assert result.stdout == b"\x00binary\xff"
        async with asyncio.timeout(10):  # no stdin means EOF, not a stdin left open
            assert (await session.exec("cat")).stdout == b""
            assert (await session.exec("cat", stdin=b"")).stdout == b""


async def test_cipher_preference_and_compression(sshd: Sshd, assh: AsyncSSHServer) -> None:
    async with _session(sshd.spec()) as session:
        assert session.conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert session.conn.get_extra_info("send_compression") == "none"
    # sshd here says "Compression no": asking for compression falls back to none
    spec = sshd.spec(ciphers=("aes128-ctr",), compression=True)
    async with _session(spec) as session:
        assert session.conn.get_extra_info("send_cipher") == "aes128-ctr"
        assert session.conn.get_extra_info("send_mac").endswith("-etm@openssh.com")
        assert session.conn.get_extra_info("send_compression") == "none"
        assert (await session.exec("echo ok")).stdout == b"ok\n"
    async with _session(_assh_spec(assh, compression=True)) as session:
        assert session.conn.get_extra_info("send_compression").startswith("zlib")
        assert (await session.exec("echo ok")).stdout == b"ok\n"


async def test_password_auth_against_asyncssh_server(assh: AsyncSSHServer) -> None:
    spec = _assh_spec(assh, client_keys=(), password=TEST_PASSWORD)
    async with _session(spec) as session:
        sftp = await session.open_sftp()
        try:
            assert await sftp.realpath(b".") == b"/"
            await _write_file(sftp, b"/pw-auth", b"x" * 100_000)
            assert (assh.root / "pw-auth").stat().st_size == 100_000
        finally:
            await sftp.aclose()


async def test_wrong_password_is_auth_error_without_the_secret(assh: AsyncSSHServer) -> None:
    secret = "Wr0ng-S3cret-pw"
    spec = _assh_spec(assh, client_keys=(), password=secret)
    with pytest.raises(AuthError) as info:
        await open_session(spec)
    assert info.value.unreachable
    assert spec.display() in str(info.value)
    _assert_no_secret(info.value, secret)


async def test_wrong_key_is_auth_error(sshd: Sshd, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other_key")
    spec = sshd.spec(client_keys=(str(other.private_path),))
    with pytest.raises(AuthError) as info:
        await open_session(spec)
    assert info.value.unreachable
    message = str(info.value)
    assert "root@127.0.0.1:" in message and "refused" in message
    assert str(other.private_path) in message


@pytest.mark.parametrize("key_format", ["openssh", "pkcs8-pem"])
async def test_encrypted_key_passphrase(sshd: Sshd, tmp_path: Path, key_format: str) -> None:
    passphrase = "Key-Passphrase-93"
    key = asyncssh.import_private_key(sshd.client_key.private_path.read_bytes())
    path = tmp_path / "encrypted_key"
    path.write_bytes(key.export_private_key(key_format, passphrase=passphrase, rounds=64))
    path.chmod(0o600)
    async with _session(sshd.spec(client_keys=(str(path),), passphrase=passphrase)) as session:
        assert (await session.exec("echo ok")).rc == 0
    with pytest.raises(AuthError) as info:
        await open_session(sshd.spec(client_keys=(str(path),)))
    assert str(info.value) == (
        f"private key file {path} for root@127.0.0.1:{sshd.port} is encrypted "
        "and no passphrase was given"
    )
    wrong = "Not-The-Passphrase"
    with pytest.raises(AuthError) as info:
        await open_session(sshd.spec(client_keys=(str(path),), passphrase=wrong))
    assert str(path) in str(info.value) and "wrong passphrase" in str(info.value)
    assert info.value.unreachable
    _assert_no_secret(info.value, wrong, passphrase)


async def test_unreadable_key_file(sshd: Sshd, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_key"
    with pytest.raises(AuthError) as info:
        await open_session(sshd.spec(client_keys=(str(missing),)))
    assert str(info.value) == (
        f"could not read private key file {missing} for root@127.0.0.1:{sshd.port}: "
        "No such file or directory"
    )


# -- host keys -------------------------------------------------------------------------


async def test_strict_mismatch_fails_closed(sshd: Sshd, tmp_path: Path) -> None:
    impostor = generate_keypair(tmp_path / "impostor")
    known = write_known_hosts(tmp_path / "known_hosts", impostor, [("127.0.0.1", sshd.port)])
    for policy in ("strict", "accept-new"):
        with pytest.raises(HostKeyError) as info:
            await open_session(sshd.spec(known_hosts=str(known), host_key_policy=policy))
        message = str(info.value)
        assert f"127.0.0.1:{sshd.port}" in message and str(known) in message
        assert "does not match" in message
        assert info.value.unreachable
    # fails closed: the file is untouched
    assert known.read_text().count("\n") == 1


async def test_strict_unknown_host_fails(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "missing" / "known_hosts"
    with pytest.raises(HostKeyError) as info:
        await open_session(sshd.spec(known_hosts=str(known)))
    assert "unknown" in str(info.value) and str(known) in str(info.value)
    assert not known.exists()


async def test_accept_new_records_key_then_strict_works(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "new" / "known_hosts"
    async with _session(sshd.spec(known_hosts=str(known), host_key_policy="accept-new")):
        pass
    assert known.stat().st_mode & 0o777 == 0o600
    lines = known.read_text().splitlines()
    assert lines == [f"[127.0.0.1]:{sshd.port} {sshd.host_key.public_key}"]
    async with _session(sshd.spec(known_hosts=str(known), host_key_policy="strict")) as s:
        assert (await s.exec("true")).rc == 0
    async with _session(sshd.spec(known_hosts=str(known), host_key_policy="accept-new")):
        pass
    assert len(known.read_text().splitlines()) == 1  # not appended twice


async def test_accept_new_keeps_other_hosts_entries(sshd: Sshd, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other_host")
    known = tmp_path / "known_hosts"
    known.write_text(f"elsewhere.example {other.public_key}")  # no trailing newline
    async with _session(sshd.spec(known_hosts=str(known), host_key_policy="accept-new")):
        pass
    assert known.read_text().splitlines() == [
        f"elsewhere.example {other.public_key}",
        f"[127.0.0.1]:{sshd.port} {sshd.host_key.public_key}",
    ]


async def test_policy_off_ignores_mismatch(sshd: Sshd, tmp_path: Path) -> None:
    impostor = generate_keypair(tmp_path / "impostor")
    known = write_known_hosts(tmp_path / "known_hosts", impostor, [("127.0.0.1", sshd.port)])
    async with _session(sshd.spec(known_hosts=str(known), host_key_policy="off")) as session:
        assert (await session.exec("echo ok")).stdout == b"ok\n"


# -- jump hosts ------------------------------------------------------------------------


async def test_jump_through_asyncssh_server(sshd: Sshd, assh: AsyncSSHServer) -> None:
    spec = sshd.spec(jump=_assh_spec(assh))
    async with _session(spec) as session:
        sftp = await session.open_sftp()
        try:
            assert (await sftp.stat(b"/")).is_dir
        finally:
            await sftp.aclose()
        # the target connection rides on a channel of the jump connection, not a socket
        # (the only socket underneath is the one to the jump server)
        assert session.conn.get_extra_info("socket").getpeername()[1] == assh.port


async def test_jump_through_sshd_to_asyncssh_server(sshd: Sshd, assh: AsyncSSHServer) -> None:
    spec = _assh_spec(assh, jump=sshd.spec())
    before = assh.stats.sftp_sessions
    async with _session(spec) as session:
        sftp = await session.open_sftp()
        await sftp.aclose()
    assert assh.stats.sftp_sessions == before + 1


async def test_jump_auth_failure_names_the_jump_host(
    sshd: Sshd, assh: AsyncSSHServer, tmp_path: Path
) -> None:
    bad = generate_keypair(tmp_path / "bad")
    jump = _assh_spec(assh, client_keys=(str(bad.private_path),))
    with pytest.raises(AuthError) as info:
        await open_session(sshd.spec(jump=jump))
    assert jump.display() in str(info.value)


async def test_target_refused_through_jump(assh: AsyncSSHServer) -> None:
    port = _free_port()
    spec = ConnectionSpec(host="127.0.0.1", port=port, user="root", jump=_assh_spec(assh))
    with pytest.raises(ConnectError) as info:
        await open_session(spec)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "through jump host" in message


# -- unreachable -----------------------------------------------------------------------


async def test_silent_server_times_out() -> None:
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        loop = asyncio.get_running_loop()

        async def accept() -> None:
            conn, _address = await loop.sock_accept(listener)
            accepted.append(conn)  # says nothing, keeps it open

        acceptor = asyncio.create_task(accept())
        spec = ConnectionSpec(host="127.0.0.1", port=port, user="u", connect_timeout=1.0)
        start = time.monotonic()
        try:
            with pytest.raises(ConnectError) as info:
                await open_session(spec)
        finally:
            acceptor.cancel()
            for conn in accepted:
                conn.close()
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3
    assert accepted, "the client never reached the silent server"
    assert str(info.value) == f"could not connect to u@127.0.0.1:{port}: timed out after 1 s"
    assert info.value.unreachable
    assert info.type is ConnectError  # not a subclass: neither key, auth nor become failed


async def test_refused_port() -> None:
    port = _free_port()
    spec = ConnectionSpec(host="127.0.0.1", port=port, user="u")
    with pytest.raises(ConnectError) as info:
        await open_session(spec)
    assert str(info.value).startswith(f"could not connect to u@127.0.0.1:{port}: ")
    assert "refused" in str(info.value).lower()
    assert info.value.unreachable


async def test_unknown_host_name() -> None:
    spec = ConnectionSpec(host="no-such-host.invalid", user="u", connect_timeout=5)
    with pytest.raises(ConnectError) as info:
        await open_session(spec)
    assert "no-such-host.invalid" in str(info.value)
    assert "not found" in str(info.value)


# -- become ----------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every test user may write into (pytest's tmp_path is root-only)."""
    shared = Path(tempfile.mkdtemp(prefix="pstest-connect-shared-"))
    shared.chmod(0o777)
    try:
        yield shared
    finally:
        shutil.rmtree(shared, ignore_errors=True)


async def test_become_nopasswd_writes_as_root(sshd: Sshd, shared_dir: Path) -> None:
    plain = sshd.spec(user=NOPASSWD_USER)
    async with _session(plain) as session:
        sftp = await session.open_sftp()
        try:
            await _write_file(sftp, os.fsencode(shared_dir / "plain"), b"p")
        finally:
            await sftp.aclose()
    assert (shared_dir / "plain").stat().st_uid != 0

    async with _session(replace(plain, become=BecomeSpec(user="root"))) as session:
        sftp = await session.open_sftp()
        try:
            data = os.urandom(300_000)
            await _write_file(sftp, os.fsencode(shared_dir / "rooted"), data)
            assert await _read_file(sftp, os.fsencode(shared_dir / "rooted"), len(data)) == data
        finally:
            await sftp.aclose()
        result = await session.exec("id -u; cat", stdin=b"piped")
        assert (result.rc, result.stdout) == (0, b"0\npiped")
        assert (await session.exec("exit 7")).rc == 7
        async with asyncio.timeout(10):
            assert (await session.exec("cat")).stdout == b""
    assert (shared_dir / "rooted").stat().st_uid == 0


async def test_become_without_password_when_sudo_wants_one(sshd: Sshd) -> None:
    spec = sshd.spec(user=PASSWD_USER, become=BecomeSpec(user="root"))
    async with _session(spec) as session:
        with pytest.raises(BecomeError) as info:
            await session.open_sftp()
        assert str(info.value) == (
            f"sudo on {spec.display()} requires a password to run {SFTP_SERVER} as root; "
            "set the become password"
        )
        assert not info.value.unreachable
        with pytest.raises(BecomeError):
            await session.exec("true")


async def test_become_with_password(sshd: Sshd, shared_dir: Path) -> None:
    become = BecomeSpec(user="root", password=PASSWD_USER_PASSWORD, sftp_server=SFTP_SERVER)
    spec = sshd.spec(user=PASSWD_USER, become=become)
    async with _session(spec) as session:
        sftp = await session.open_sftp()
        try:
            # sudo read exactly the password line: the SFTP stream after it is intact
            data = os.urandom(200_000)
            await _write_file(sftp, os.fsencode(shared_dir / "pw"), data)
            assert await _read_file(sftp, os.fsencode(shared_dir / "pw"), len(data)) == data
        finally:
            await sftp.aclose()
        result = await session.exec("id -u; cat", stdin=b"after password")
        assert (result.rc, result.stdout) == (0, b"0\nafter password")
        assert PASSWD_USER_PASSWORD.encode() not in result.stderr
    assert (shared_dir / "pw").stat().st_uid == 0


@pytest.mark.slow
async def test_become_wrong_password(sshd: Sshd) -> None:
    wrong = "Definitely-Wrong-pw"
    spec = sshd.spec(user=PASSWD_USER, become=BecomeSpec(user="root", password=wrong))
    async with _session(spec) as session:
        with pytest.raises(BecomeError) as info:
            await session.open_sftp()
        assert str(info.value) == f"sudo on {spec.display()} rejected the become password"
        _assert_no_secret(info.value, wrong)
        with pytest.raises(BecomeError) as info:
            await session.exec("true")
        assert "rejected the become password" in str(info.value)


async def test_become_missing_sudo(sshd: Sshd) -> None:
    spec = sshd.spec(user=NOPASSWD_USER, become=BecomeSpec(exe="no-such-sudo"))
    async with _session(spec) as session:
        with pytest.raises(BecomeError) as info:
            await session.open_sftp()
    assert str(info.value) == f"no-such-sudo is not installed on {spec.display()}"


async def test_become_command_not_allowed(sshd: Sshd) -> None:
    # pstest may run sftp-server only at its real path
    spec = sshd.spec(user=NOPASSWD_USER, become=BecomeSpec(sftp_server="/bin/true"))
    async with _session(spec) as session:
        with pytest.raises(BecomeError) as info:
            await session.open_sftp()
    assert str(info.value) == (
        f"sudo on {spec.display()} requires a password to run /bin/true as root; "
        "set the become password"
    )


async def test_become_requiretty(sshd: Sshd) -> None:
    spec = sshd.spec(user=TTY_USER, become=BecomeSpec(user="root"))
    async with _session(spec) as session:
        with pytest.raises(BecomeError) as info:
            await session.open_sftp()
    assert str(info.value) == (
        f"sudo on {spec.display()} requires a tty (requiretty), which this transfer cannot use"
    )


async def test_become_channels_in_parallel(sshd: Sshd, shared_dir: Path) -> None:
    become = BecomeSpec(user="root", password=PASSWD_USER_PASSWORD)  # sftp-server probed
    async with _session(sshd.spec(user=PASSWD_USER, become=become)) as session:
        async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(session.open_sftp()) for _client in range(4)]
        clients = [task.result() for task in tasks]
        try:
            for i, sftp in enumerate(clients):
                await _write_file(sftp, os.fsencode(shared_dir / f"f{i}"), b"%d" % i)
        finally:
            for sftp in clients:
                await sftp.aclose()
    assert [(shared_dir / f"f{i}").stat().st_uid for i in range(4)] == [0] * 4


async def test_refused_sftp_subsystem_is_a_clear_error(assh: AsyncSSHServer) -> None:
    """INIT is sent right behind the subsystem request: a refusal must still read as one."""
    assh.refuse_sftp = True
    try:
        async with _session(_assh_spec(assh)) as session:
            with pytest.raises(ConnectError) as info:
                await session.open_sftp()
            assert (await session.exec("echo still usable")).rc == 0
    finally:
        assh.refuse_sftp = False
    assert str(info.value).startswith(
        f"could not open an SFTP channel on {_assh_spec(assh).display()}: "
    ), str(info.value)
    assert not info.value.unreachable


async def test_sftp_server_that_does_not_start() -> None:
    with sshd_server(sftp_server="/nonexistent/sftp-server") as broken:
        async with _session(_sshd_spec(broken)) as session:
            with pytest.raises(ConnectError) as info:
                await session.open_sftp()
            assert (await session.exec("echo still usable")).rc == 0
    assert str(info.value).startswith(
        f"the SFTP subsystem on {_sshd_spec(broken).display()} did not start: "
    )
    assert not info.value.unreachable


async def test_early_sftp_sends_requests_behind_init(sshd: Sshd, tmp_path: Path) -> None:
    """open_sftp(early=True) returns before the VERSION answer; requests queued then go out
    behind INIT and are answered, and the limits asked for that way are the server's."""
    (tmp_path / "there").write_bytes(b"12345")
    async with _session(sshd.spec()) as session:
        sftp = await session.open_sftp(early=True)
        assert sftp.starting  # returned without reading anything
        asked = asyncio.gather(sftp.stat(os.fsencode(tmp_path / "there")), sftp.limits())
        other = await session.open_sftp()
        try:
            assert not other.starting  # the default waits for VERSION
            attrs, limits = await asked
            await sftp.started()
            assert attrs.size == 5
            assert b"limits@openssh.com" in sftp.extensions
            assert limits == await other.limits()
            assert limits.max_write > 32768  # the server's, not the defaults
        finally:
            await sftp.aclose()
            await other.aclose()


async def test_early_sftp_on_the_asyncssh_server(assh: AsyncSSHServer) -> None:
    async with _session(_assh_spec(assh)) as session:
        sftp = await session.open_sftp(early=True)
        try:
            assert sftp.starting and sftp.ordered
            await _write_file(sftp, b"/early", b"behind init")
            await sftp.started()
            assert (await sftp.stat(b"/early")).size == len(b"behind init")
        finally:
            await sftp.aclose()


async def test_early_sftp_refused_reads_as_the_refusal(assh: AsyncSSHServer) -> None:
    """Requests queued behind INIT on a channel the server refuses fail with the same
    sentence that started() raises as a ConnectError."""
    assh.refuse_sftp = True
    try:
        async with _session(_assh_spec(assh)) as session:
            sftp = await session.open_sftp(early=True)
            with pytest.raises(SFTPError) as queued:
                await sftp.stat(b"/")
            with pytest.raises(ConnectError) as info:
                await sftp.started()
            assert sftp.closed and sftp.start_error is info.value
            await sftp.aclose()
            assert (await session.exec("echo still usable")).rc == 0
    finally:
        assh.refuse_sftp = False
    message = str(info.value)
    assert message.startswith(f"could not open an SFTP channel on {_assh_spec(assh).display()}: ")
    assert message.rstrip(".") in str(queued.value)
    assert not info.value.unreachable


async def test_runs_on_an_sftp_server_that_does_not_start(tmp_path: Path) -> None:
    """push, pull and remove send their first requests behind INIT: when the session does
    not start, each still fails with the connection's error, not a lost request's."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    with sshd_server(sftp_server="/nonexistent/sftp-server") as broken:
        spec = _sshd_spec(broken)
        async with _session(spec) as session:
            runs = {
                "push": api.push(
                    session, str(tmp_path / "src"), str(tmp_path / "dest"), TransferOptions()
                ),
                "pull": api.pull(
                    session, str(tmp_path / "src"), str(tmp_path / "back"), TransferOptions()
                ),
                "remove": api.remove(session, [str(tmp_path / "src")], RemoveOptions()),
            }
            for name, run in runs.items():
                with pytest.raises(ConnectError) as info:
                    await run
                assert str(info.value).startswith(
                    f"the SFTP subsystem on {spec.display()} did not start: "
                ), (name, str(info.value))
    assert (tmp_path / "src" / "f").read_bytes() == b"x"
    assert not (tmp_path / "dest").exists() and not (tmp_path / "back").exists()


async def test_unknown_cipher_is_a_settings_error(sshd: Sshd) -> None:
    with pytest.raises(ConnectError) as info:
        await open_session(sshd.spec(ciphers=("rot13",)))
    assert "rot13" in str(info.value) and not info.value.unreachable
