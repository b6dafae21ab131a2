"""Client side of the persistent connection process (see ``mux``): start, reach, use, stop.

Light on purpose: the connection plugin imports this in every task's worker process, so it
imports neither asyncssh nor Ansible. Secrets reach the process through its stdin pipe, never
its command line or environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import select
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_proto as mp
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)

if TYPE_CHECKING:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_CONTROL_DIR = "~/.ansible/cp"
SERVER_MODULE = "ansible_collections.pipelined.sftp.plugins.plugin_utils.mux"
_SECRETISH = re.compile(r"PASS|SECRET|TOKEN|VAULT", re.IGNORECASE)


class MuxError(Exception):
    """The persistent connection could not be started or reached.

    ``kind`` is ``unreachable``, ``hostkey``, ``auth`` or ``error``; str(e) is one sentence.
    """

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def unreachable(self) -> bool:
        return self.kind in ("unreachable", "hostkey", "auth")


# --------------------------------------------------------------------------- spec handling


def spec_to_dict(spec: ConnectionSpec) -> dict[str, Any]:
    """Plain JSON-able form of a spec, secrets included (for the private stdin pipe only)."""
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict[str, Any]) -> ConnectionSpec:
    """Inverse of :func:`spec_to_dict`."""
    values = dict(data)
    jump = values.get("jump")
    values["jump"] = spec_from_dict(jump) if jump else None
    become = values.get("become")
    values["become"] = BecomeSpec(**become) if become else None
    values["client_keys"] = tuple(values.get("client_keys") or ())
    ciphers = values.get("ciphers")
    values["ciphers"] = tuple(ciphers) if ciphers is not None else None
    return ConnectionSpec(**values)


def _identity(spec: ConnectionSpec) -> dict[str, Any]:
    return {
        "host": spec.host,
        "port": spec.port,
        "user": spec.user,
        "keys": list(spec.client_keys),
        "known_hosts": spec.known_hosts,
        "policy": spec.host_key_policy,
        "ciphers": list(spec.ciphers) if spec.ciphers is not None else None,
        "compression": spec.compression,
        "jump": _identity(spec.jump) if spec.jump else None,
    }


def mux_key(spec: ConnectionSpec) -> str:
    """Name of the persistent connection serving ``spec`` (a hash; secrets excluded)."""
    blob = json.dumps(_identity(spec), sort_keys=True).encode()
    return "psftp-" + hashlib.sha256(blob).hexdigest()[:20]


def control_dir(path: str | None = None) -> Path:
    """Create (mode 0700) and return the directory holding the control sockets."""
    directory = Path(os.path.expanduser(path or DEFAULT_CONTROL_DIR))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid():
        raise MuxError(f"Control directory {directory} is not owned by the current user.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    return directory


MAX_SOCKET_PATH = 96
"""Longest control socket path accepted (unix socket addresses hold 107 bytes; the
process binds a temporary name a few bytes longer first)."""


def socket_path_for(spec: ConnectionSpec, directory: str | None = None) -> str:
    """Path of the control socket for ``spec``; MuxError when the directory's path is too long."""
    path = str(control_dir(directory) / (mux_key(spec) + ".sock"))
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise MuxError(
            f"Control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "set a shorter control_path_dir."
        )
    return path


# --------------------------------------------------------------------------- client side


def _connect_sync(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def ping(path: str, timeout: float = 5.0) -> int | None:
    """Pid of the live server at ``path``, or None when nothing answers there."""
    try:
        sock = _connect_sync(path, timeout)
    except OSError:
        return None
    try:
        sock.sendall(mp.json_frame(mp.REQUEST, {"op": "ping"}))
        kind, payload = mp.read_frame_sync(sock)
        if kind != mp.OK:
            return None
        pid = mp.parse_json(payload).get("pid")
        return pid if isinstance(pid, int) else None
    except (OSError, mp.ProtocolError):
        return None
    finally:
        sock.close()


def stop(path: str, timeout: float = 5.0) -> bool:
    """Ask the server at ``path`` to close its connection and exit; True if one answered."""
    try:
        sock = _connect_sync(path, timeout)
    except OSError:
        return False
    try:
        sock.sendall(mp.json_frame(mp.REQUEST, {"op": "stop"}))
        kind, _payload = mp.read_frame_sync(sock)
        return kind == mp.OK
    except (OSError, mp.ProtocolError):
        return False
    finally:
        sock.close()


def _collections_root() -> str:
    """Directory holding ``ansible_collections`` this module was imported from."""
    # .../ansible_collections/pipelined/sftp/plugins/plugin_utils/mux.py; not resolved, so
    # a symlinked collection keeps its import path.
    return str(Path(__file__).absolute().parents[5])


def _debug_log() -> int:
    """Where the process's errors go: $PIPELINED_SFTP_MUX_LOG (appended) or nowhere."""
    log = os.environ.get("PIPELINED_SFTP_MUX_LOG")
    if log:
        return os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return subprocess.DEVNULL


def ensure_server(
    spec: ConnectionSpec,
    *,
    directory: str | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> str:
    """Return the socket of a live persistent connection for ``spec``, starting one if needed.

    Raises MuxError (``unreachable`` for connect, host key and authentication failures).
    """
    path = socket_path_for(spec, directory)
    if ping(path) is not None:
        return path
    # the process needs no secret from the environment (the spec carries its own)
    env = {k: v for k, v in os.environ.items() if not _SECRETISH.search(k)}
    root = _collections_root()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--socket",
            path,
            "--idle-timeout",
            str(idle_timeout),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=_debug_log(),
        start_new_session=True,
        close_fds=True,
        env=env,
        cwd="/",
    )
    if proc.stdin is None or proc.stdout is None:  # cannot happen with PIPE; keeps mypy sure
        raise MuxError("Cannot talk to the persistent connection process.")
    try:
        proc.stdin.write((json.dumps({"spec": spec_to_dict(spec)}) + "\n").encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + max(spec.connect_timeout, 1.0) * (3 if spec.jump else 2) + 15
    line = b""
    fd = proc.stdout.fileno()
    try:
        while not line.endswith(b"\n") and len(line) < 65536:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MuxError(
                    f"Timed out starting the persistent connection to {spec.display()}.",
                    "unreachable",
                )
            ready = select.select([fd], [], [], remaining)[0]
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            line += chunk
    finally:
        proc.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    try:
        answer = json.loads(line)
    except ValueError:
        raise MuxError(
            f"The persistent connection process for {spec.display()} exited without answering."
        ) from None
    if not answer.get("ok"):
        raise MuxError(str(answer.get("message")), str(answer.get("kind", "error")))
    if ping(path) is None:
        raise MuxError(f"The persistent connection to {spec.display()} is not answering on {path}.")
    return path


async def _request(
    path: str, request: dict[str, Any], info: dict[str, Any] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=4 * mp.CHUNK)
    except OSError as exc:
        raise MuxError(
            f"Cannot reach the persistent connection at {path}: {exc.strerror}.", "unreachable"
        ) from None
    writer.write(mp.json_frame(mp.REQUEST, request))
    got = await mp.read_frame(reader)
    if got is None:
        writer.close()
        raise MuxError(f"The persistent connection at {path} closed the request.", "unreachable")
    kind, payload = got
    if kind != mp.OK:
        writer.close()
        message = mp.parse_json(payload).get("message", "request refused") if payload else ""
        raise MuxError(f"The persistent connection refused the request: {message}")
    if info is not None and payload:
        info.update(mp.parse_json(payload))
    return reader, writer


class MuxExec:
    """One remote command through the persistent connection, read as a stream of events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def start(cls, path: str, command: str) -> MuxExec:
        reader, writer = await _request(path, {"op": "exec", "command": command})
        return cls(reader, writer)

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), mp.CHUNK):
            self._writer.write(mp.frame(mp.STDIN, data[i : i + mp.CHUNK]))

    def write_eof(self) -> None:
        self._writer.write(mp.frame(mp.EOF))

    async def drain(self) -> None:
        await self._writer.drain()

    async def read_event(self) -> tuple[str, bytes, int]:
        """Next ("stdout"|"stderr", data, 0) or ("exit", b"", exit status)."""
        got = await mp.read_frame(self._reader)
        if got is None:
            raise MuxError(
                "The persistent connection closed while a command was running.", "unreachable"
            )
        kind, payload = got
        if kind == mp.STDOUT:
            return "stdout", payload, 0
        if kind == mp.STDERR:
            return "stderr", payload, 0
        if kind == mp.EXIT:
            rc = mp.parse_json(payload).get("rc", 255)
            return "exit", b"", rc if isinstance(rc, int) else 255
        raise mp.ProtocolError(f"unexpected frame type {kind} during exec")

    def close(self) -> None:
        self._writer.close()


@dataclass(frozen=True)
class ExecResult:
    """Exit status and output of one remote command (as connect.ExecResult)."""

    rc: int
    stdout: bytes
    stderr: bytes


async def open_sftp_streams(
    path: str, command: str | None = None, info: dict[str, Any] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw byte pipe to a new SFTP channel of the persistent connection at ``path``.

    ``info`` receives what the connection process says of the server (server_version).
    """
    request: dict[str, Any] = {"op": "sftp"}
    if command is not None:
        request["command"] = command
    return await _request(path, request, info)


# --------------------------------------------------------------------------- core sessions


async def collect(channel: Any, stdin: bytes | None) -> ExecResult:
    """Feed ``stdin`` to a started command and gather all its output."""
    if stdin:
        channel.write(stdin)
    channel.write_eof()
    await channel.drain()
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        while True:
            name, data, rc = await channel.read_event()
            if name == "exit":
                return ExecResult(rc, b"".join(out), b"".join(err))
            (out if name == "stdout" else err).append(data)
    finally:
        channel.close()


async def _start_sftp(reader: Any, writer: Any, server_version: str) -> SFTPClient:
    openssh = "OpenSSH" in server_version
    client = SFTPClient(reader, writer, nonstandard_symlink=openssh, ordered=openssh)
    try:
        await client.start()
    except BaseException:
        writer.close()
        raise
    return client


class MuxSession:
    """A core Session whose channels come from the persistent connection process.

    Holds nothing but the socket path, so it works from any event loop and process. With
    ``spec.become`` set, SFTP channels and commands run under sudo on a connection of their
    own (opened on first use, closed by aclose), as the core's SSHSession does it.
    """

    def __init__(self, spec: ConnectionSpec, path: str) -> None:
        self.spec = spec
        self.path = path
        self._become: SSHSession | None = None

    async def _become_session(self) -> SSHSession:
        if self._become is None:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
                open_session,
            )

            self._become = await open_session(self.spec)
        return self._become

    async def open_sftp(self) -> SFTPClient:
        """A new started SFTP client on its own channel."""
        if self.spec.become is not None:
            return await (await self._become_session()).open_sftp()
        info: dict[str, Any] = {}
        reader, writer = await open_sftp_streams(self.path, info=info)
        return await _start_sftp(reader, writer, str(info.get("server_version", "")))

    async def exec(self, command: str, stdin: bytes | None = None) -> ExecResult:
        """Run ``command`` and return its exit status and output."""
        if self.spec.become is not None:
            done = await (await self._become_session()).exec(command, stdin)
            return ExecResult(done.rc, done.stdout, done.stderr)
        return await collect(await MuxExec.start(self.path, command), stdin)

    async def aclose(self) -> None:
        """Release what this session opened; the persistent connection itself stays."""
        if self._become is not None:
            session, self._become = self._become, None
            await session.aclose()
