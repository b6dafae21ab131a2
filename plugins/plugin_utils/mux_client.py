"""Client side of the persistent connection process (see ``mux``): start, reach, use, stop.

Light on purpose: the connection plugin imports this in every task's worker process, so it
imports neither asyncssh nor Ansible nor asyncio (commands run over a blocking socket; the
async side is ``mux_session``). Secrets reach the process through its stdin pipe, never its
command line or environment.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_proto as mp
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)

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


def refusal(payload: bytes, prefix: str = "") -> Exception:
    """The exception an ERROR frame stands for: the core's BecomeError for become failures
    (so actions report them as they do without the persistent connection), mux_files'
    TransferError for a failed copy, else MuxError."""
    answer = mp.parse_json(payload) if payload else {}
    message = str(answer.get("message") or "request refused")
    if answer.get("kind") == "transfer":
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.mux_files import (
            TransferError,
        )

        return TransferError(message)
    if answer.get("kind") == "become":
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import BecomeError

        return BecomeError(
            message,
            unreachable=bool(answer.get("unreachable")),
            needs_password=bool(answer.get("needs_password")),
        )
    return MuxError(prefix + message, str(answer.get("kind") or "error"))


def cannot_reach(path: str, exc: OSError) -> MuxError:
    """The error for a persistent connection whose socket does not answer."""
    return MuxError(
        f"Cannot reach the persistent connection at {path}: {exc.strerror}.", "unreachable"
    )


def stdin_frames(data: bytes) -> bytes:
    """``data`` as STDIN frames of at most CHUNK bytes each."""
    return b"".join(
        mp.frame(mp.STDIN, data[i : i + mp.CHUNK]) for i in range(0, len(data), mp.CHUNK)
    )


def exec_event(kind: int, payload: bytes) -> tuple[str, bytes, int]:
    """The event a frame of a running command stands for (ERROR frames raise)."""
    if kind == mp.STDOUT:
        return "stdout", payload, 0
    if kind == mp.STDERR:
        return "stderr", payload, 0
    if kind == mp.EXIT:
        rc = mp.parse_json(payload).get("rc", 255)
        return "exit", b"", rc if isinstance(rc, int) else 255
    if kind == mp.ERROR:
        raise refusal(payload)
    raise mp.ProtocolError(f"unexpected frame type {kind} during exec")


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


class MuxCommand:
    """One remote command through the persistent connection, over a blocking unix socket.

    The same events as :class:`MuxExec` without an event loop, so a task's worker process
    runs a command without importing asyncio. Input written is sent while waiting for
    events (never blocking on a peer that is itself waiting for us to read).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._outgoing = bytearray()
        self._incoming = bytearray()

    @classmethod
    def start(cls, path: str, command: str, timeout: float = 30.0) -> MuxCommand:
        try:
            sock = _connect_sync(path, timeout)
        except OSError as exc:
            raise cannot_reach(path, exc) from None
        try:
            sock.sendall(mp.json_frame(mp.REQUEST, {"op": "exec", "command": command}))
            kind, payload = mp.read_frame_sync(sock)
        except (OSError, mp.ProtocolError):
            sock.close()
            raise MuxError(
                f"The persistent connection at {path} closed the request.", "unreachable"
            ) from None
        if kind != mp.OK:
            sock.close()
            message = mp.parse_json(payload).get("message", "request refused") if payload else ""
            raise MuxError(f"The persistent connection refused the request: {message}")
        sock.setblocking(False)
        return cls(sock)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the command's stdin."""
        self._outgoing += stdin_frames(data)

    def write_eof(self) -> None:
        """Queue the end of the command's stdin."""
        self._outgoing += mp.frame(mp.EOF)

    def read_event(self, timeout: float | None = None) -> tuple[str, bytes, int]:
        """Next ("stdout"|"stderr", data, 0) or ("exit", b"", exit status).

        Raises TimeoutError after ``timeout`` seconds without one, MuxError when the
        persistent connection goes away or could not run the command.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._next_event()
            if event is not None:
                return event
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            writers = [self._sock] if self._outgoing else []
            readable, writable, _errors = select.select([self._sock], writers, [], wait)
            if not readable and not writable:
                raise TimeoutError
            try:
                if writable:
                    sent = self._sock.send(self._outgoing[: 4 * mp.CHUNK])
                    del self._outgoing[:sent]
                if readable:
                    data = self._sock.recv(4 * mp.CHUNK)
                    if not data:
                        raise ConnectionResetError
                    self._incoming += data
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                raise MuxError(
                    "The persistent connection closed while a command was running.",
                    "unreachable",
                ) from None

    def _next_event(self) -> tuple[str, bytes, int] | None:
        buffered = self._incoming
        if len(buffered) < mp.HEADER.size:
            return None
        kind, length = mp.HEADER.unpack_from(buffered)
        if length > mp.MAX_FRAME:
            raise mp.ProtocolError(f"frame of {length} bytes exceeds the {mp.MAX_FRAME} byte limit")
        end = mp.HEADER.size + length
        if len(buffered) < end:
            return None
        payload = bytes(buffered[mp.HEADER.size : end])
        del buffered[:end]
        return exec_event(kind, payload)

    def close(self) -> None:
        self._sock.close()
