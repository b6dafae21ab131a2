"""SSH sessions for the transfer core: connect from a ConnectionSpec, open SFTP channels.

`open_session` turns a plain `ConnectionSpec` into an `SSHSession`: one asyncssh connection
(through jump hosts when asked), host keys checked by policy, no prompts ever. The session
opens as many SFTP channels as the transfer wants, each a new SSH channel; with become they
run sftp-server under sudo on an exec channel. Every failure is a `ConnectError` (or one of
its subclasses) whose message is one sentence naming the host and the cause, never a secret.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, cast

# isort: split
from ansible_collections.pipelined.sftp.plugins.plugin_utils import (  # noqa: F401  # pylint: disable=unused-import
    asyncssh_import,
)

# isort: split
import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.encryption import get_default_encryption_algs
from asyncssh.mac import get_default_mac_algs
from asyncssh.stream import SSHClientStreamSession

from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    SFTPClient,
    SFTPError,
    answers_in_order,
    mark_retrieved,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import BecomeSpec, ConnectionSpec

PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
"""Cheapest ciphers for asyncssh's per-packet CPU cost; asyncssh's defaults follow."""

SFTP_SERVER_PATHS = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
)
"""Where sftp-server is looked for on the target when become does not name it."""

MAX_PKTSIZE = 32 * 1024
"""Largest SSH channel data packet we accept (sshd's own default)."""

_STDERR_KEEP = 4096  # bytes of an SFTP channel's stderr kept for error messages
_PROMPT_PREFIX = "[pipelined.sftp sudo password "
_SUDO_SORRY = re.compile(rb"Sorry, try again|incorrect password attempt", re.IGNORECASE)


class ConnectError(Exception):
    """Opening or using an SSH session failed; `unreachable` tells Ansible the host is down."""

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.unreachable = unreachable


class HostKeyError(ConnectError):
    """The server's host key is unknown or does not match known_hosts (fails closed)."""


class AuthError(ConnectError):
    """The server refused authentication, or a private key could not be loaded."""


class BecomeError(ConnectError):
    """Privilege escalation failed: sudo wants a password or tty it cannot get, or refuses."""

    def __init__(
        self, message: str, *, unreachable: bool = False, needs_password: bool = False
    ) -> None:
        super().__init__(message, unreachable=unreachable)
        self.needs_password = needs_password
        """sudo -n failed only because it wants a password (worth retrying with one)."""


@dataclass(frozen=True)
class ExecResult:
    """Exit status and output of one remote command."""

    rc: int
    stdout: bytes
    stderr: bytes


class Session(Protocol):
    """What the transfer code uses of a session (see docs/internals.md)."""

    spec: ConnectionSpec

    async def open_sftp(self, *, early: bool = False) -> SFTPClient: ...

    async def exec(self, command: str, stdin: bytes | None = None) -> ExecResult: ...

    async def aclose(self) -> None: ...


# -- secrets and messages --------------------------------------------------------------


def _secrets(spec: ConnectionSpec) -> list[str]:
    """Every secret reachable from spec (jump hosts included)."""
    found: list[str] = []
    hop: ConnectionSpec | None = spec
    while hop is not None:
        found += [s for s in (hop.password, hop.passphrase) if s]
        if hop.become is not None and hop.become.password:
            found.append(hop.become.password)
        hop = hop.jump
    return found


def _scrub(text: str, spec: ConnectionSpec) -> str:
    """text with any secret of spec masked (belt and braces: messages never embed one)."""
    for secret in _secrets(spec):
        text = text.replace(secret, "********")
    return text


def _one_line(text: str | bytes, limit: int = 300) -> str:
    """A server-supplied message squeezed into one short line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _err(cls: type[ConnectError], spec: ConnectionSpec, message: str, **kw: bool) -> ConnectError:
    return cls(_scrub(message, spec), **kw)


# -- connection options ----------------------------------------------------------------


def _encryption_algs(spec: ConnectionSpec) -> list[str]:
    if spec.ciphers:
        return list(spec.ciphers)
    defaults = [alg.decode("ascii") for alg in get_default_encryption_algs()]
    preferred = [alg for alg in PREFERRED_CIPHERS if alg in defaults]
    return preferred + [alg for alg in defaults if alg not in preferred]


def _mac_algs() -> list[str]:
    defaults = [alg.decode("ascii") for alg in get_default_mac_algs()]
    etm = [alg for alg in defaults if alg.endswith("-etm@openssh.com")]
    return etm + [alg for alg in defaults if alg not in etm]


def _known_hosts_path(spec: ConnectionSpec) -> str:
    return os.path.expanduser(spec.known_hosts or "~/.ssh/known_hosts")


def _read_known_hosts(spec: ConnectionSpec, path: str) -> asyncssh.SSHKnownHosts:
    """The known_hosts file's entries; none when the file does not exist."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            data = f.read()
    except FileNotFoundError:
        data = ""
    except OSError as exc:
        raise _err(
            HostKeyError,
            spec,
            f"could not read known_hosts file {path} for {spec.display()}: {exc.strerror}",
        ) from None
    try:
        return asyncssh.import_known_hosts(data)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise _err(
            HostKeyError,
            spec,
            f"known_hosts file {path} for {spec.display()} is malformed: {_one_line(str(exc))}",
        ) from None


def _known_hosts_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Client(asyncssh.SSHClient):
    """Decides about host keys known_hosts does not already trust, and remembers why."""

    def __init__(self, spec: ConnectionSpec, path: str) -> None:
        self._spec = spec
        self._path = path
        self.problem: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        spec = self._spec
        try:
            current = _read_known_hosts(spec, self._path)
        except HostKeyError as exc:
            self.problem = exc.message
            return False
        host_keys, ca_keys = current.match(host, addr, port)[:2]
        if key in host_keys:
            return True  # another process recorded it since we read the file
        if host_keys or ca_keys:
            self.problem = (
                f"host key of {spec.display()} does not match the key recorded in "
                f"{self._path}; refusing to connect (the host key changed or this is an attack)"
            )
            return False
        if spec.host_key_policy != "accept-new":
            self.problem = (
                f"host key of {spec.display()} is unknown: {self._path} has no key for "
                f"{_known_hosts_pattern(host, port)} (policy strict)"
            )
            return False
        blob = " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])
        line = f"{_known_hosts_pattern(host, port)} {blob}\n"
        try:
            _append_line(self._path, line)
        except OSError as exc:
            self.problem = (
                f"could not record the host key of {spec.display()} in {self._path}: {exc.strerror}"
            )
            return False
        return True


def _append_line(path: str, line: str) -> None:
    """Append one line to path in one write, creating it (0600) and its directory (0700)."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _load_keys(spec: ConnectionSpec) -> list[asyncssh.SSHKeyPair]:
    pairs: list[asyncssh.SSHKeyPair] = []
    for path in spec.client_keys:
        where = f"private key file {path} for {spec.display()}"
        try:
            pairs.extend(asyncssh.load_keypairs([path], passphrase=spec.passphrase))
        except OSError as exc:
            raise _err(AuthError, spec, f"could not read {where}: {exc.strerror}") from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            text = str(exc).lower()
            if "bcrypt" in text:
                message = (
                    f"{where} is encrypted in OpenSSH format, which needs the Python package "
                    "bcrypt on the controller"
                )
            elif "passphrase must be specified" in text:
                message = f"{where} is encrypted and no passphrase was given"
            elif "passphrase" in text or "decrypt" in text:
                message = f"could not decrypt {where}: wrong passphrase"
            else:
                message = f"{where} is not a usable private key: {_one_line(str(exc))}"
            raise _err(AuthError, spec, message) from None
    return pairs


def _options(spec: ConnectionSpec) -> dict[str, Any]:
    """asyncssh.connect keyword arguments for spec (host key and tunnel excluded)."""
    options: dict[str, Any] = {
        "port": spec.port,
        "config": None,
        "connect_timeout": spec.connect_timeout or None,
        "login_timeout": spec.connect_timeout or 0,
        "keepalive_interval": spec.keepalive_interval or None,
        "compression_algs": ["zlib@openssh.com", "zlib", "none"] if spec.compression else ["none"],
        "encryption_algs": _encryption_algs(spec),
        "mac_algs": _mac_algs(),
        "window": spec.window,
        "max_pktsize": MAX_PKTSIZE,
        "agent_forwarding": False,
        "x11_forwarding": False,
        "preferred_auth": "publickey,keyboard-interactive,password",
        "password": spec.password,
    }
    if spec.user:
        options["username"] = spec.user
    if spec.client_keys:
        options["client_keys"] = _load_keys(spec)
        options["agent_path"] = None
    elif spec.password is not None:
        options["client_keys"] = None
        options["agent_path"] = None
    elif spec.passphrase is not None:
        options["passphrase"] = spec.passphrase  # for the default keys
    return options


# -- connecting ------------------------------------------------------------------------


def _hops(spec: ConnectionSpec) -> list[ConnectionSpec]:
    """Jump hosts outermost first, then spec itself."""
    chain: list[ConnectionSpec] = []
    hop: ConnectionSpec | None = spec
    while hop is not None:
        if len(chain) >= 8:
            raise _err(ConnectError, spec, f"more than 8 jump hosts for {spec.display()}")
        chain.append(hop)
        hop = hop.jump
    chain.reverse()
    return chain


async def _connect_hop(
    hop: ConnectionSpec, tunnel: asyncssh.SSHClientConnection | None, via: str
) -> asyncssh.SSHClientConnection:
    """One asyncssh connection to hop (through tunnel when given), errors mapped."""
    name = hop.display() + via
    options = _options(hop)
    client: _Client | None = None
    if hop.host_key_policy == "off":
        options["known_hosts"] = None
    else:
        path = _known_hosts_path(hop)
        options["known_hosts"] = _read_known_hosts(hop, path)
        client = _Client(hop, path)
    if client is not None:
        bound = client
        options["client_factory"] = lambda: bound
    if tunnel is not None:
        options["tunnel"] = tunnel
    timeout = hop.connect_timeout or None
    try:
        async with asyncio.timeout(timeout):
            return await asyncssh.connect(hop.host, **options)
    except TimeoutError:
        message = f"could not connect to {name}: timed out after {timeout:g} s"
        raise _err(ConnectError, hop, message) from None
    except asyncssh.HostKeyNotVerifiable as exc:
        problem = client.problem if client is not None and client.problem else None
        message = problem or f"host key of {name} was not accepted: {_one_line(exc.reason)}"
        if via and problem:
            message += via
        raise _err(HostKeyError, hop, message) from None
    except asyncssh.PermissionDenied:
        tried = []
        if hop.client_keys:
            tried.append("keys " + ", ".join(hop.client_keys))
        if hop.password is not None:
            tried.append("a password")
        if not tried:
            tried.append("the default keys and ssh-agent")
        message = f"authentication to {name} failed: the server refused {' and '.join(tried)}"
        raise _err(AuthError, hop, message) from None
    except asyncssh.ChannelOpenError as exc:
        message = f"could not connect to {name}: {_one_line(exc.reason)}"
        raise _err(ConnectError, hop, message) from None
    except asyncssh.DisconnectError as exc:
        message = f"the SSH connection to {name} failed: {_one_line(exc.reason)}"
        raise _err(ConnectError, hop, message) from None
    except ValueError as exc:  # asyncssh rejected an option, e.g. an unknown cipher
        message = f"invalid SSH settings for {name}: {_one_line(str(exc))}"
        raise _err(ConnectError, hop, message, unreachable=False) from None
    except socket.gaierror as exc:
        message = f"could not connect to {name}: host name not found ({exc.strerror})"
        raise _err(ConnectError, hop, message) from None
    except OSError as exc:
        if exc.errno:
            cause = os.strerror(exc.errno).lower()
        else:
            cause = _one_line(str(exc)) or type(exc).__name__
        raise _err(ConnectError, hop, f"could not connect to {name}: {cause}") from None


async def open_session(spec: ConnectionSpec) -> SSHSession:
    """Connect to spec.host (through its jump hosts); raises ConnectError or a subclass."""
    conns: list[asyncssh.SSHClientConnection] = []
    try:
        via = ""
        for hop in _hops(spec):
            tunnel = conns[-1] if conns else None
            conns.append(await _connect_hop(hop, tunnel, via))
            via = f" through jump host {hop.display()}"
    except BaseException:
        await _close_all(conns)
        raise
    return SSHSession(spec, conns[-1], conns[:-1])


async def _close_all(conns: Sequence[asyncssh.SSHClientConnection]) -> None:
    for conn in reversed(conns):
        conn.close()
        try:
            async with asyncio.timeout(5):
                await conn.wait_closed()
        except (TimeoutError, OSError, asyncssh.Error):
            pass


# -- sessions --------------------------------------------------------------------------

T = TypeVar("T")
# A channel that went away raises EOFError (asyncio.IncompleteReadError is one),
# ConnectionError or asyncssh.Error. They are spelled out at each `except`, not named once:
# pylint resolves `asyncssh` to plugins/connection/asyncssh.py and would then report a
# named tuple of them as catching non-exceptions.


class _Stderr:
    """Drains a channel's stderr so it never stalls the channel, keeping what it read."""

    def __init__(self, reader: asyncssh.SSHReader[bytes], keep: int | None) -> None:
        self._reader = reader
        self._keep = keep
        self.data = bytearray()
        self.changed = asyncio.Event()
        self.eof = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                chunk = await self._reader.read(65536)
                if not chunk:
                    break
                self.data += chunk
                if self._keep is not None and len(self.data) > self._keep:
                    del self.data[: len(self.data) - self._keep]
                self.changed.set()
        except (asyncssh.Error, OSError):
            pass
        finally:
            self.eof.set()
            self.changed.set()

    async def wait_for(self, needle: bytes, count: int = 1) -> bool:
        """True once needle occurred count times; False at EOF without it."""
        while self.data.count(needle) < count:
            if self.eof.is_set():
                return False
            self.changed.clear()
            await self.changed.wait()
        return True


async def _read_past(stdout: asyncssh.SSHReader[bytes], marker: bytes) -> bytes | None:
    """What stdout carries after marker; None when it ends first."""
    buf = b""
    while marker not in buf:
        chunk = await stdout.read(65536)
        if not chunk:
            return None
        buf += chunk
    return buf.split(marker, 1)[1]


class SSHSession:
    """An open SSH connection to spec; opens SFTP channels and runs commands."""

    def __init__(
        self,
        spec: ConnectionSpec,
        conn: asyncssh.SSHClientConnection,
        jumps: Sequence[asyncssh.SSHClientConnection] = (),
    ) -> None:
        self.spec = spec
        self.conn = conn
        self._jumps = list(jumps)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sftp_server = spec.become.sftp_server if spec.become else None
        self._probe_lock = asyncio.Lock()
        self._sudo_needs_password = False

    async def __aenter__(self) -> SSHSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every channel and the connection (and the jump hosts' connections)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await _close_all([*self._jumps, self.conn])

    # -- sftp --------------------------------------------------------------------------

    async def open_sftp(self, *, early: bool = False) -> SFTPClient:
        """A new, started SFTP client on its own channel (under sudo with become).

        With `early`, on a server that runs requests in the order sent (OpenSSH,
        asyncssh), return as soon as INIT is sent: requests queued now go out right behind
        it, a round trip sooner, and `SFTPClient.started()` raises the same error as a
        session that does not start would have raised here."""
        if self.spec.become is None:
            return await self._plain_sftp(early)
        server = await self._find_sftp_server()
        return await self._with_sudo(lambda prompt: self._become_sftp(server, prompt))

    async def _plain_sftp(self, early: bool) -> SFTPClient:
        # INIT goes right behind the subsystem request (one round trip less).
        channel = await self._open_channel_early("an SFTP channel", subsystem="sftp")
        stderr = self._drain(channel.stderr, _STDERR_KEEP)
        version = str(self.conn.get_extra_info("server_version", ""))
        client = SFTPClient(
            channel.stdout,
            channel.stdin,
            nonstandard_symlink="OpenSSH" in version,
            ordered=answers_in_order(version),
        )
        explain = partial(self._sftp_did_not_start, channel, stderr)
        client.begin(self.spec.connect_timeout or None, explain)
        if early and client.ordered:
            return client
        try:
            await client.started()
        except asyncio.CancelledError:
            channel.stdin.close()
            raise
        return client

    async def _sftp_did_not_start(
        self, channel: _EarlyChannel, stderr: _Stderr, cause: BaseException
    ) -> BaseException:
        """The error for an SFTP session that gave no VERSION answer (see SFTPClient.begin)."""
        channel.stdin.close()
        timeout = self.spec.connect_timeout or None
        what = f"the SFTP subsystem on {self.spec.display()}"
        if isinstance(cause, TimeoutError):
            message = f"{what} did not answer within {timeout:g} s"
            return _err(ConnectError, self.spec, message, unreachable=False)
        if not isinstance(cause, (EOFError, OSError, asyncssh.Error, ValueError, SFTPError)):
            return cause
        if not channel.request.done():  # the answer to the subsystem request
            await asyncio.wait([channel.request], timeout=timeout)
        refused = channel.request.done() and channel.request.exception()
        if refused:
            return self._channel_error("an SFTP channel", refused)
        detail = _one_line(bytes(stderr.data)) or (
            "the channel closed"
            if isinstance(cause, asyncio.IncompleteReadError)
            else _one_line(str(cause))
        )
        return _err(ConnectError, self.spec, f"{what} did not start: {detail}", unreachable=False)

    async def _become_sftp(self, server: str, prompt: str | None) -> SFTPClient:
        command = self._sudo_command([server], prompt)
        stdin, stdout, err = await self._open_channel("an exec channel for sudo", command=command)
        stderr = self._drain(err, _STDERR_KEEP)
        # sftp-server under sudo is OpenSSH's: in-order replies, swapped symlink arguments.
        client = SFTPClient(stdout, stdin, nonstandard_symlink=True, ordered=True)
        try:
            if prompt is not None:
                await self._send_password(prompt, stdin, stderr, server)
            started, _start_result = await self._unless_sudo_gives_up(
                client.start(), stderr, prompt, server
            )
            if not started:
                raise await self._become_failure(stderr, prompt, server)
        except BaseException:
            stdin.close()
            raise
        return client

    async def _find_sftp_server(self) -> str:
        """spec.become.sftp_server, or the first sftp-server found on the target (once)."""
        async with self._probe_lock:
            if self._sftp_server is None:
                script = (
                    f"for p in {' '.join(SFTP_SERVER_PATHS)}; "
                    "do [ -x $p ] && echo $p && break; done; true"
                )
                result = await self._exec_plain(script, None)
                found = result.stdout.decode("utf-8", "replace").split()
                if not found:
                    raise _err(
                        BecomeError,
                        self.spec,
                        f"no sftp-server found on {self.spec.display()} (looked in "
                        f"{', '.join(SFTP_SERVER_PATHS)}); set the become sftp_server path",
                    )
                self._sftp_server = found[0]
            return self._sftp_server

    # -- exec --------------------------------------------------------------------------

    async def exec(self, command: str, stdin: bytes | None = None) -> ExecResult:
        """Run a shell command (under sudo with become) and collect its output."""
        if self.spec.become is None:
            return await self._exec_plain(command, stdin)
        return await self._with_sudo(lambda prompt: self._exec_become(command, stdin, prompt))

    async def _exec_plain(self, command: str, stdin: bytes | None) -> ExecResult:
        try:
            result = await self.conn.run(
                command,
                **({"input": stdin} if stdin else {"stdin": asyncssh.DEVNULL}),
                encoding=None,
                check=False,
                window=self.spec.window,
                max_pktsize=MAX_PKTSIZE,
            )
        except asyncssh.ChannelOpenError as exc:
            message = f"could not run a command on {self.spec.display()}: {_one_line(exc.reason)}"
            raise _err(ConnectError, self.spec, message, unreachable=False) from None
        except (asyncssh.DisconnectError, OSError) as exc:
            message = f"the SSH connection to {self.spec.display()} was lost: {_one_line(str(exc))}"
            raise _err(ConnectError, self.spec, message) from None
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        err = result.stderr if isinstance(result.stderr, bytes) else b""
        rc = result.returncode
        return ExecResult(rc=255 if rc is None else rc, stdout=out, stderr=err)

    async def _exec_become(
        self, command: str, stdin: bytes | None, prompt: str | None
    ) -> ExecResult:
        marker = f"pipelined.sftp-become-{secrets.token_hex(8)}"
        sudo = self._sudo_command(["/bin/sh", "-c", f"echo {marker}; {command}"], prompt)
        writer, stdout, err = await self._open_channel("an exec channel for sudo", command=sudo)
        stderr = self._drain(err, None)
        try:
            if prompt is not None:
                await self._send_password(prompt, writer, stderr, "/bin/sh")
            _answered, out = await self._unless_sudo_gives_up(
                _read_past(stdout, marker.encode() + b"\n"), stderr, prompt, "/bin/sh"
            )
            if out is None:
                raise await self._become_failure(stderr, prompt, "/bin/sh")
            if stdin:
                writer.write(stdin)
            writer.write_eof()
            out += await stdout.read()
            await stderr.eof.wait()
            channel = cast("asyncssh.SSHClientChannel[bytes]", writer.channel)
            await channel.wait_closed()
            rc = channel.get_returncode()
        except (EOFError, ConnectionError, asyncssh.Error) as exc:
            message = f"the SSH connection to {self.spec.display()} was lost: {_one_line(str(exc))}"
            raise _err(ConnectError, self.spec, message) from None
        finally:
            writer.close()
        data = bytes(stderr.data)
        if prompt is not None:
            data = data.replace(prompt.encode(), b"", 1)
        return ExecResult(rc=255 if rc is None else rc, stdout=out, stderr=data)

    # -- sudo --------------------------------------------------------------------------

    def _become(self) -> BecomeSpec:
        if self.spec.become is None:
            raise BecomeError(f"no become settings for {self.spec.display()}", unreachable=False)
        return self.spec.become

    async def _with_sudo(self, attempt: Callable[[str | None], Awaitable[T]]) -> T:
        """attempt without a password (sudo -n), then with one when sudo asks and we have it.

        attempt gets sudo's password prompt, or None for sudo -n.
        """
        become = self._become()
        if not self._sudo_needs_password:
            try:
                return await attempt(None)
            except BecomeError as exc:
                if not (exc.needs_password and become.password):
                    raise
                self._sudo_needs_password = True
        return await attempt(_PROMPT_PREFIX + secrets.token_hex(8) + "]")

    def _sudo_command(self, argv: Sequence[str], prompt: str | None) -> str:
        become = self._become()
        parts = [become.exe]
        parts += ["-n"] if prompt is None else ["-k", "-S", "-p", prompt]
        parts += ["-u", become.user, "--", *argv]
        return " ".join(shlex.quote(part) for part in parts)

    async def _send_password(
        self, prompt: str, stdin: asyncssh.SSHWriter[bytes], stderr: _Stderr, what: str
    ) -> None:
        """Answer sudo's password prompt once; BecomeError when it never comes."""
        become = self._become()
        if become.password is None:
            raise BecomeError(
                f"sudo on {self.spec.display()} asks for a password and none was given",
                unreachable=False,
            )
        timeout = self.spec.connect_timeout or None
        try:
            async with asyncio.timeout(timeout):
                prompted = await stderr.wait_for(prompt.encode())
        except TimeoutError:
            message = (
                f"sudo on {self.spec.display()} did not ask for the become password "
                f"within {timeout:g} s"
            )
            raise _err(BecomeError, self.spec, message) from None
        if not prompted:
            raise await self._become_failure(stderr, prompt, what)
        stdin.write(become.password.encode("utf-8") + b"\n")

    async def _unless_sudo_gives_up(
        self, step: Awaitable[T], stderr: _Stderr, prompt: str | None, what: str
    ) -> tuple[bool, T | None]:
        """(True, step's result), or (False, None) when the channel closed or sudo prompted
        again (the password was rejected) before step finished."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(_as_coroutine(step))
        watch = loop.create_task(stderr.wait_for(prompt.encode(), 2)) if prompt else None
        timeout = self.spec.connect_timeout or None
        try:
            waiting: set[asyncio.Task[Any]] = {task} if watch is None else {task, watch}
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                exc = task.exception()
                if exc is None:
                    return True, task.result()
                if isinstance(exc, (EOFError, OSError, asyncssh.Error)):
                    return False, None
                raise exc
            if watch is not None and watch.done():
                return False, None
            detail = _one_line(bytes(stderr.data).replace((prompt or "").encode(), b""))
            message = f"sudo on {self.spec.display()} did not start {what} within {timeout:g} s" + (
                f": {detail}" if detail else ""
            )
            raise _err(BecomeError, self.spec, message)
        finally:
            for pending in (task, watch):
                if pending is not None and not pending.done():
                    pending.cancel()
                    try:
                        await pending
                    except (asyncio.CancelledError, Exception):
                        pass

    async def _become_failure(self, stderr: _Stderr, prompt: str | None, what: str) -> BecomeError:
        """The BecomeError explaining, from sudo's stderr, why what did not run."""
        try:
            async with asyncio.timeout(2):
                await stderr.eof.wait()  # sudo's message may trail the channel close
        except TimeoutError:
            pass
        become = self._become()
        host = self.spec.display()
        raw = bytes(stderr.data)
        if prompt is not None:
            raw = raw.replace(prompt.encode(), b"")
        detail = _one_line(raw)
        text = detail.lower()
        wants_password = "password is required" in text or "terminal is required" in text
        if prompt is not None and (
            _SUDO_SORRY.search(raw) or stderr.data.count(prompt.encode()) > 1
        ):
            message = f"sudo on {host} rejected the become password"
        elif wants_password:
            message = (
                f"sudo on {host} requires a password to run {what} as {become.user}; "
                "set the become password"
            )
        elif "must have a tty" in text or "no tty present" in text:
            message = f"sudo on {host} requires a tty (requiretty), which this transfer cannot use"
        elif "sudoers" in text or "not allowed" in text or "may not run" in text:
            message = f"sudo on {host} does not allow running {what} as {become.user}: {detail}"
        elif "not found" in text and become.exe in text:
            message = f"{become.exe} is not installed on {host}"
        else:
            detail = detail or "the channel closed without a message"
            message = f"could not run {what} as {become.user} through sudo on {host}: {detail}"
        return BecomeError(
            _scrub(message, self.spec), needs_password=prompt is None and wants_password
        )

    # -- plumbing ----------------------------------------------------------------------

    def _drain(self, reader: asyncssh.SSHReader[bytes], keep: int | None) -> _Stderr:
        stderr = _Stderr(reader, keep)
        task = asyncio.get_running_loop().create_task(stderr.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return stderr

    async def _open_channel(
        self, what: str, **kwargs: Any
    ) -> tuple[asyncssh.SSHWriter[bytes], asyncssh.SSHReader[bytes], asyncssh.SSHReader[bytes]]:
        try:
            return await self.conn.open_session(
                encoding=None, window=self.spec.window, max_pktsize=MAX_PKTSIZE, **kwargs
            )
        except (asyncssh.ChannelOpenError, asyncssh.DisconnectError, OSError) as exc:
            raise self._channel_error(what, exc) from None

    async def _open_channel_early(self, what: str, **kwargs: Any) -> _EarlyChannel:
        """Like `_open_channel`, but back as soon as the channel is open and its request
        (subsystem, exec) is on the wire, without waiting for the server's answer: input
        written now follows the request, which saves a round trip."""
        session = _EarlyStreamSession()
        request = asyncio.ensure_future(
            self.conn.create_session(
                lambda: session,
                encoding=None,
                window=self.spec.window,
                max_pktsize=MAX_PKTSIZE,
                **kwargs,
            )
        )
        request.add_done_callback(mark_retrieved)
        waits: list[asyncio.Future[Any]] = [session.opened, request]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            request.cancel()
            raise
        if not session.opened.done():
            exc = request.exception()
            raise self._channel_error(what, exc or OSError("no channel")) from None
        chan = session.opened.result()
        return _EarlyChannel(
            asyncssh.SSHWriter(session, chan),
            asyncssh.SSHReader(session, chan),
            asyncssh.SSHReader(session, chan, asyncssh.EXTENDED_DATA_STDERR),
            request,
        )

    def _channel_error(self, what: str, exc: BaseException) -> ConnectError:
        if isinstance(exc, asyncssh.ChannelOpenError):
            message = f"could not open {what} on {self.spec.display()}: {_one_line(exc.reason)}"
            return _err(ConnectError, self.spec, message, unreachable=False)
        message = f"the SSH connection to {self.spec.display()} was lost: {_one_line(str(exc))}"
        return _err(ConnectError, self.spec, message)


class _EarlyStreamSession(SSHClientStreamSession[bytes]):
    """asyncssh's stream session (pinned asyncssh: `asyncssh.stream`), handing its channel
    over as soon as the channel opens, before the server answers the session's request."""

    def __init__(self) -> None:
        super().__init__()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[asyncssh.SSHClientChannel[bytes]] = loop.create_future()

    def connection_made(self, chan: SSHChannel[bytes]) -> None:
        super().connection_made(chan)
        if not self.opened.done():
            self.opened.set_result(cast("asyncssh.SSHClientChannel[bytes]", chan))


@dataclass
class _EarlyChannel:
    stdin: asyncssh.SSHWriter[bytes]
    stdout: asyncssh.SSHReader[bytes]
    stderr: asyncssh.SSHReader[bytes]
    request: asyncio.Future[Any]
    """The session request's outcome: raises ChannelOpenError if the server refused it."""


async def _as_coroutine(step: Awaitable[T]) -> T:
    return await step
