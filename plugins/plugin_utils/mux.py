"""Persistent SSH connection process for the connection plugin (what ControlPersist is to ssh).

One process per (user, host, port, keys, jump, host key settings) holds an asyncssh
connection and listens on a unix socket in a private directory. Clients ask it to run
commands (streamed stdin/stdout/stderr, exit status) or to open an SFTP channel, after which
their socket is a raw byte pipe to that channel. The process exits after ``idle_timeout``
seconds without clients, or when its SSH connection drops, and removes its socket.

Secrets reach the process through its stdin pipe, never its command line or environment.
Nothing here imports Ansible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import select
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_proto as mp
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    AuthError,
    ConnectError,
    ExecResult,
    HostKeyError,
    SSHSession,
    open_session,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_CONTROL_DIR = "~/.ansible/cp"
_MODULE = "ansible_collections.pipelined.sftp.plugins.plugin_utils.mux"


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


# --------------------------------------------------------------------------- SSH connect


def _kind(exc: ConnectError) -> str:
    if isinstance(exc, HostKeyError):
        return "hostkey"
    if isinstance(exc, AuthError):
        return "auth"
    return "unreachable" if exc.unreachable else "error"


async def open_connection(spec: ConnectionSpec) -> SSHSession:
    """Open the SSH session described by ``spec``; MuxError says why it failed."""
    try:
        return await open_session(spec)
    except ConnectError as exc:
        raise MuxError(str(exc), _kind(exc)) from None


# --------------------------------------------------------------------------- server


class MuxServer:
    """Serves exec and sftp requests over a unix socket on one SSH connection."""

    def __init__(self, session: SSHSession, idle_timeout: float) -> None:
        self.session = session
        self.conn = session.conn
        self.idle_timeout = idle_timeout
        self.active = 0
        self.last_activity = time.monotonic()
        self.stop = asyncio.Event()

    async def serve(self, sock: socket.socket) -> None:
        """Accept clients on ``sock`` until idle, stopped, or the SSH connection is gone."""
        server = await asyncio.start_unix_server(self._client, sock=sock)
        try:
            closed = asyncio.ensure_future(self.conn.wait_closed())
            stopped = asyncio.ensure_future(self.stop.wait())
            try:
                tick = max(0.05, min(1.0, self.idle_timeout / 4))
                while not (closed.done() or stopped.done()):
                    await asyncio.wait({closed, stopped}, timeout=tick)
                    idle = time.monotonic() - self.last_activity
                    if self.active == 0 and idle >= self.idle_timeout:
                        break
            finally:
                closed.cancel()
                stopped.cancel()
        finally:
            server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            got = await asyncio.wait_for(mp.read_frame(reader), 30)
            if got is None or got[0] != mp.REQUEST:
                return
            request = mp.parse_json(got[1])
            op = request.get("op")
            if op == "ping":
                writer.write(mp.json_frame(mp.OK, {"pid": os.getpid()}))
            elif op == "stop":
                writer.write(mp.json_frame(mp.OK, {}))
                self.stop.set()
            elif op == "exec":
                await self._exec(request, reader, writer)
            elif op == "sftp":
                await self._sftp(request, reader, writer)
            else:
                writer.write(mp.json_frame(mp.ERROR, {"message": f"Unknown request {op!r}."}))
            await writer.drain()
        except (TimeoutError, mp.ProtocolError, OSError, asyncssh.Error):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)
            self.active -= 1
            self.last_activity = time.monotonic()

    async def _open(
        self, writer: asyncio.StreamWriter, what: str, **kwargs: Any
    ) -> asyncssh.SSHClientProcess[bytes] | None:
        try:
            proc: asyncssh.SSHClientProcess[bytes] = await self.conn.create_process(
                encoding=None, **kwargs
            )
        except (asyncssh.Error, OSError) as exc:
            message = f"Cannot open {what} channel: {exc}"
            writer.write(mp.json_frame(mp.ERROR, {"message": message}))
            return None
        writer.write(mp.json_frame(mp.OK, {}))
        return proc

    async def _exec(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        command = request.get("command")
        if not isinstance(command, str):
            writer.write(mp.json_frame(mp.ERROR, {"message": "exec request without command."}))
            return
        proc = await self._open(writer, "exec", command=command)
        if proc is None:
            return
        try:
            await _pump_exec(proc, reader, writer)
        finally:
            proc.close()

    async def _sftp(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        command = request.get("command")
        if isinstance(command, str):
            proc = await self._open(writer, "sftp", command=command)
        else:
            proc = await self._open(writer, "sftp", subsystem="sftp")
        if proc is None:
            return
        try:
            await _splice(proc, reader, writer)
        finally:
            proc.close()


async def _pump_exec(
    proc: asyncssh.SSHClientProcess[bytes],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    async def stdin() -> None:
        while True:
            got = await mp.read_frame(reader)
            if got is None:  # client went away: stop the command
                proc.close()
                return
            kind, data = got
            if kind == mp.STDIN:
                proc.stdin.write(data)
                await proc.stdin.drain()
            elif kind == mp.EOF:
                proc.stdin.write_eof()
                return

    async def output(stream: asyncssh.SSHReader[bytes], kind: int) -> None:
        while True:
            data = await stream.read(mp.CHUNK)
            if not data:
                return
            writer.write(mp.frame(kind, data))
            await writer.drain()

    feeder = asyncio.ensure_future(stdin())
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(output(proc.stdout, mp.STDOUT))
            group.create_task(output(proc.stderr, mp.STDERR))
        completed = await proc.wait()
    finally:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder
    rc = completed.exit_status
    if rc is None or rc < 0:
        rc = 255
    writer.write(mp.json_frame(mp.EXIT, {"rc": rc, "signal": completed.exit_signal}))


async def _splice(
    proc: asyncssh.SSHClientProcess[bytes],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    async def up() -> None:
        while True:
            data = await reader.read(mp.CHUNK)
            if not data:
                proc.stdin.write_eof()
                return
            proc.stdin.write(data)
            await proc.stdin.drain()

    async def down() -> None:
        while True:
            data = await proc.stdout.read(mp.CHUNK)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    async def discard_stderr() -> None:
        while await proc.stderr.read(mp.CHUNK):
            pass

    uploader = asyncio.ensure_future(up())
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(down())
            group.create_task(discard_stderr())
    finally:
        uploader.cancel()
        with contextlib.suppress(BaseException):
            await uploader


def _bind(path: str) -> tuple[socket.socket, int] | None:
    """Bind a listening socket at ``path`` atomically; None if a live server already owns it.

    Returns the socket and the inode of ``path``, so only our own socket file is removed.
    """
    tmp = f"{path[:-5]}.{os.getpid()}"
    for _ in range(2):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        old_umask = os.umask(0o177)
        try:
            sock.bind(tmp)
        finally:
            os.umask(old_umask)
        sock.listen(64)
        try:
            os.link(tmp, path)
        except FileExistsError:
            sock.close()
            os.unlink(tmp)
            if ping(path):
                return None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale socket of a process that died
            continue
        ino = os.stat(path).st_ino
        os.unlink(tmp)
        return sock, ino
    raise MuxError(f"Cannot create control socket {path}.")


async def _serve_main(spec: ConnectionSpec, path: str, idle_timeout: float) -> int:
    try:
        session = await open_connection(spec)
    except MuxError as exc:
        _report({"ok": False, "kind": exc.kind, "message": str(exc)})
        return 1
    except Exception as exc:
        message = f"Cannot connect to {spec.display()}: {str(exc) or type(exc).__name__}"
        _report({"ok": False, "kind": "unreachable", "message": message})
        return 1
    try:
        bound = _bind(path)
        if bound is None:
            _report({"ok": True, "pid": None})
            return 0
        sock, ino = bound
        server = MuxServer(session, idle_timeout)
        _report({"ok": True, "pid": os.getpid()})
        try:
            await server.serve(sock)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == ino:
                    os.unlink(path)
            sock.close()
    finally:
        await session.aclose()
    return 0


def _report(value: dict[str, Any]) -> None:
    """Tell the launching client how the start went, then detach from its pipe."""
    with contextlib.suppress(OSError):
        os.write(1, (json.dumps(value) + "\n").encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the persistent connection process: spec JSON arrives on stdin."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    args = parser.parse_args(argv)
    line = sys.stdin.buffer.readline(1024 * 1024)
    try:
        spec = spec_from_dict(json.loads(line)["spec"])
    except (ValueError, KeyError, TypeError) as exc:
        sys.stdout.write(
            json.dumps(
                {"ok": False, "kind": "error", "message": f"Invalid connection request: {exc}"}
            )
            + "\n"
        )
        return 2
    if os.fork() > 0:  # detach: the launcher reaps this parent at once
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if not os.environ.get("PIPELINED_SFTP_MUX_LOG"):
        os.dup2(devnull, 2)
    os.close(devnull)
    with contextlib.suppress(OSError):
        os.chdir("/")
    try:
        return asyncio.run(_serve_main(spec, args.socket, args.idle_timeout))
    except Exception as exc:  # the launcher waits for one answer line: always give one
        message = f"The persistent connection to {spec.display()} failed: {exc}"
        _report({"ok": False, "kind": "error", "message": message})
        return 1


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
        kind, _ = mp.read_frame_sync(sock)
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
    env = dict(os.environ)
    root = _collections_root()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", _MODULE, "--socket", path, "--idle-timeout", str(idle_timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=_debug_log(),
        start_new_session=True,
        close_fds=True,
        env=env,
        cwd="/",
    )
    assert proc.stdin is not None and proc.stdout is not None
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
            ready, _, _ = select.select([fd], [], [], remaining)
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
    path: str, request: dict[str, Any]
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

    async def read_event(self) -> tuple[str, bytes | int]:
        """Next ("stdout"|"stderr", bytes) or ("exit", rc)."""
        got = await mp.read_frame(self._reader)
        if got is None:
            raise MuxError(
                "The persistent connection closed while a command was running.", "unreachable"
            )
        kind, payload = got
        if kind == mp.STDOUT:
            return "stdout", payload
        if kind == mp.STDERR:
            return "stderr", payload
        if kind == mp.EXIT:
            rc = mp.parse_json(payload).get("rc", 255)
            return "exit", rc if isinstance(rc, int) else 255
        raise mp.ProtocolError(f"unexpected frame type {kind} during exec")

    def close(self) -> None:
        self._writer.close()


class DirectExec:
    """The same event interface over an asyncssh process on an in-process connection."""

    def __init__(self, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        self._proc = proc
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._open = {"stdout": proc.stdout, "stderr": proc.stderr}

    @classmethod
    async def start(cls, conn: asyncssh.SSHClientConnection, command: str) -> DirectExec:
        return cls(await conn.create_process(command, encoding=None))

    def write(self, data: bytes) -> None:
        self._proc.stdin.write(data)

    def write_eof(self) -> None:
        self._proc.stdin.write_eof()

    async def drain(self) -> None:
        await self._proc.stdin.drain()

    async def read_event(self) -> tuple[str, bytes | int]:
        while self._open:
            for name, stream in self._open.items():
                if name not in self._pending:
                    self._pending[name] = asyncio.ensure_future(stream.read(mp.CHUNK))
            done, _ = await asyncio.wait(
                self._pending.values(), return_when=asyncio.FIRST_COMPLETED
            )
            for name in list(self._pending):
                task = self._pending[name]
                if task in done:
                    del self._pending[name]
                    data = task.result()
                    if data:
                        return name, data
                    del self._open[name]
        completed = await self._proc.wait()
        rc = completed.exit_status
        return "exit", rc if rc is not None and rc >= 0 else 255

    def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._proc.close()


async def open_sftp_streams(
    path: str, command: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw byte pipe to a new SFTP channel of the persistent connection at ``path``."""
    request: dict[str, Any] = {"op": "sftp"}
    if command is not None:
        request["command"] = command
    return await _request(path, request)


# --------------------------------------------------------------------------- core sessions


async def collect(channel: MuxExec | DirectExec, stdin: bytes | None) -> ExecResult:
    """Feed ``stdin`` to a started command and gather all its output."""
    if stdin:
        channel.write(stdin)
    channel.write_eof()
    await channel.drain()
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        while True:
            name, value = await channel.read_event()
            if name == "exit":
                assert isinstance(value, int)
                return ExecResult(value, b"".join(out), b"".join(err))
            assert isinstance(value, bytes)
            (out if name == "stdout" else err).append(value)
    finally:
        channel.close()


async def _start_sftp(reader: Any, writer: Any) -> SFTPClient:
    client = SFTPClient(reader, writer)
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
            self._become = await open_session(self.spec)
        return self._become

    async def open_sftp(self) -> SFTPClient:
        """A new started SFTP client on its own channel."""
        if self.spec.become is not None:
            return await (await self._become_session()).open_sftp()
        reader, writer = await open_sftp_streams(self.path)
        return await _start_sftp(reader, writer)

    async def exec(self, command: str, stdin: bytes | None = None) -> ExecResult:
        """Run ``command`` and return its exit status and output."""
        if self.spec.become is not None:
            return await (await self._become_session()).exec(command, stdin)
        return await collect(await MuxExec.start(self.path, command), stdin)

    async def aclose(self) -> None:
        """Release what this session opened; the persistent connection itself stays."""
        if self._become is not None:
            session, self._become = self._become, None
            await session.aclose()


if __name__ == "__main__":
    sys.exit(main())
