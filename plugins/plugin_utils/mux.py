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
import json
import os
import socket
import sys
import time
from typing import Any

# isort: split
from ansible_collections.pipelined.sftp.plugins.plugin_utils import (  # noqa: F401  # pylint: disable=unused-import
    asyncssh_import,
)

# isort: split
import asyncssh

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mc
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_files as files
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_proto as mp
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    AuthError,
    BecomeError,
    ConnectError,
    HostKeyError,
    SSHSession,
    open_session,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient
from ansible_collections.pipelined.sftp.plugins.plugin_utils.remote_command import (
    CommandError,
    RemoteCommand,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)

DEFAULT_IDLE_TIMEOUT = mc.DEFAULT_IDLE_TIMEOUT
MuxError = mc.MuxError


# --------------------------------------------------------------------------- SSH connect


def _kind(exc: ConnectError) -> str:
    if isinstance(exc, HostKeyError):
        return "hostkey"
    if isinstance(exc, AuthError):
        return "auth"
    return "unreachable" if exc.unreachable else "error"


def _error_frame(exc: ConnectError) -> bytes:
    """An ERROR frame the client turns back into the same kind of error."""
    answer: dict[str, Any] = {"message": str(exc), "kind": _kind(exc)}
    if isinstance(exc, BecomeError):
        answer.update(kind="become", unreachable=exc.unreachable, needs_password=exc.needs_password)
    return mp.json_frame(mp.ERROR, answer)


async def open_connection(spec: ConnectionSpec) -> SSHSession:
    """Open the SSH session described by ``spec``; MuxError says why it failed."""
    try:
        return await open_session(spec)
    except ConnectError as exc:
        raise MuxError(str(exc), _kind(exc)) from None


# --------------------------------------------------------------------------- server


class ChannelPool:
    """The persistent connection's session for put and get: keeps up to ``keep`` idle SFTP
    channels for the next transfer, which then skips opening one (a server session and
    process start, ~85 ms of server CPU on OpenSSH)."""

    def __init__(self, session: SSHSession, keep: int = 4) -> None:
        self.spec = session.spec
        self._session = session
        self._keep = keep
        self._idle: list[SFTPClient] = []
        self._prefilling: asyncio.Task[None] | None = None

    def prefill(self) -> asyncio.Task[None]:
        """Open one channel ahead of the first transfer, in the background (best effort)."""
        self._prefilling = asyncio.ensure_future(self._prefill())
        return self._prefilling

    async def _prefill(self) -> None:
        try:
            client = await self._session.open_sftp()
        except Exception:
            return
        if not self._release(client):
            await client.aclose()

    async def open_sftp(self, *, early: bool = False) -> SFTPClient:
        if self._prefilling is not None and not self._prefilling.done():
            await asyncio.shield(self._prefilling)  # the channel on its way is the one to use
        while self._idle:
            client = self._idle.pop()
            if not client.closed:
                client.release = self._release
                return client
        client = await self._session.open_sftp(early=early)
        client.release = self._release
        return client

    def _release(self, client: SFTPClient) -> bool:
        if len(self._idle) >= self._keep:
            return False
        self._idle.append(client)
        return True

    async def exec(self, command: str, stdin: bytes | None = None) -> Any:
        return await self._session.exec(command, stdin)

    async def aclose(self) -> None:
        """Close the idle channels (the connection stays)."""
        idle, self._idle = self._idle, []
        for client in idle:
            await client.aclose()


class MuxServer:
    """Serves exec and sftp requests over a unix socket on one SSH connection."""

    def __init__(self, session: SSHSession, idle_timeout: float, path: str, ino: int) -> None:
        self.session = session
        self.conn = session.conn
        self.path = path
        self._ino = ino
        self._server: asyncio.Server | None = None
        self._retired = False
        self.idle_timeout = idle_timeout
        self.active = 0
        self.last_activity = time.monotonic()
        self.stop = asyncio.Event()
        self._become_sessions: dict[str, SSHSession] = {}
        self.pool = ChannelPool(session)

    async def serve(self, sock: socket.socket) -> None:
        """Accept clients on ``sock`` until idle, stopped, or the SSH connection is gone."""
        server = await asyncio.start_unix_server(self._client, sock=sock, limit=4 * mp.CHUNK)
        self._server = server
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
            self.retire()

    def retire(self) -> None:
        """Stop taking clients at once: remove our socket file and close the listener.

        Only the first call acts. Closing the listener frees the socket file's inode, and
        the file system may give that number to the next process's socket at the same
        path: a later inode check would remove the successor's socket.
        """
        if self._retired:
            return
        self._retired = True
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        if self._server is not None:
            self._server.close()

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
                self.retire()  # before answering: the next client must find a new process
                writer.write(mp.json_frame(mp.OK, {}))
                self.stop.set()
            elif op == "exec":
                await self._exec(request, reader, writer)
            elif op == "sftp":
                await self._sftp(request, reader, writer)
            elif op in ("put", "get"):
                await self._file(op, request, writer)
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
        # The client's SFTP layer needs the server software (OpenSSH swaps SYMLINK's
        # arguments and answers strictly in order).
        server_version = str(self.conn.get_extra_info("server_version", ""))
        writer.write(mp.json_frame(mp.OK, {"server_version": server_version}))
        return proc

    async def _exec(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        command = request.get("command")
        if not isinstance(command, str):
            writer.write(mp.json_frame(mp.ERROR, {"message": "exec request without command."}))
            return
        if request.get("become") is not None:
            await self._exec_become(command, request["become"], reader, writer)
            return
        try:
            remote = await RemoteCommand.start(self.conn, command)
        except CommandError as exc:
            writer.write(mp.json_frame(mp.ERROR, {"message": f"Cannot open exec channel: {exc}"}))
            return
        # OK goes out before the server has confirmed the exec: the client's stdin then
        # follows the request without waiting a round trip (as OpenSSH's ssh does).
        writer.write(mp.json_frame(mp.OK, {}))
        try:
            await _pump_exec(remote, reader, writer)
        finally:
            remote.close()

    async def _file(self, op: str, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Copy one file here, reading or writing the local path directly: its bytes never
        pass through the client's socket."""
        src, dest = request.get("src"), request.get("dest")
        if not isinstance(src, str) or not isinstance(dest, str):
            writer.write(mp.json_frame(mp.ERROR, {"message": f"{op} request without paths."}))
            return
        try:
            await (files.put if op == "put" else files.get)(self.pool, src, dest)
        except files.TransferError as exc:
            writer.write(mp.json_frame(mp.ERROR, {"message": str(exc), "kind": "transfer"}))
            return
        except ConnectError as exc:
            writer.write(_error_frame(exc))
            return
        writer.write(mp.json_frame(mp.OK, {}))

    def _become_session(self, become: Any) -> SSHSession:
        """A session under ``become`` (a BecomeSpec as a dict) on this process's connection;
        kept, so sudo's sftp-server path is looked up once."""
        if not isinstance(become, dict):
            raise BecomeError("the become settings sent to the persistent connection are invalid")
        key = json.dumps(become, sort_keys=True)
        session = self._become_sessions.get(key)
        if session is None:
            try:
                spec = dataclasses.replace(self.session.spec, become=BecomeSpec(**become))
            except TypeError:
                raise BecomeError(
                    "the become settings sent to the persistent connection are invalid"
                ) from None
            session = SSHSession(spec, self.conn)
            if len(self._become_sessions) >= 8:
                self._become_sessions.pop(next(iter(self._become_sessions)))
            self._become_sessions[key] = session
        return session

    async def _exec_become(
        self,
        command: str,
        become: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Run ``command`` under become once the client's stdin is complete."""
        writer.write(mp.json_frame(mp.OK, {}))
        stdin = bytearray()
        while True:
            got = await mp.read_frame(reader)
            if got is None:
                return
            kind, data = got
            if kind == mp.STDIN:
                stdin += data
            elif kind == mp.EOF:
                break
        try:
            done = await self._become_session(become).exec(command, bytes(stdin) or None)
        except ConnectError as exc:
            writer.write(_error_frame(exc))
            return
        for i in range(0, len(done.stdout), mp.CHUNK):
            writer.write(mp.frame(mp.STDOUT, done.stdout[i : i + mp.CHUNK]))
        for i in range(0, len(done.stderr), mp.CHUNK):
            writer.write(mp.frame(mp.STDERR, done.stderr[i : i + mp.CHUNK]))
        writer.write(mp.json_frame(mp.EXIT, {"rc": done.rc, "signal": None}))

    async def _sftp(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if request.get("become") is not None:
            await self._sftp_become(request["become"], reader, writer)
            return
        command = request.get("command")
        if isinstance(command, str):
            proc = await self._open(writer, "sftp", command=command)
        else:
            proc = await self._open(writer, "sftp", subsystem="sftp")
        if proc is None:
            return
        try:
            await _splice(proc.stdin, proc.stdout, reader, writer, proc.stderr)
        finally:
            proc.close()

    async def _sftp_become(
        self, become: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """An SFTP channel under become: sudo and the SFTP handshake happen here, then the
        client adopts the session (version and extensions come with OK)."""
        try:
            client = await self._become_session(become).open_sftp()
        except ConnectError as exc:
            writer.write(_error_frame(exc))
            return
        channel_out, channel_in = await client.detach()
        extensions = {name.hex(): value.hex() for name, value in client.extensions.items()}
        writer.write(
            mp.json_frame(mp.OK, {"sftp_version": client.version, "extensions": extensions})
        )
        try:
            await _splice(channel_in, channel_out, reader, writer, None)
        finally:
            channel_in.close()


async def _pump_exec(
    remote: RemoteCommand, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async def stdin() -> None:
        while True:
            got = await mp.read_frame(reader)
            if got is None:  # client went away: stop the command
                remote.close()
                return
            kind, data = got
            if kind == mp.STDIN:
                remote.write(data)
                await remote.drain()
            elif kind == mp.EOF:
                remote.write_eof()
                return

    feeder = asyncio.ensure_future(stdin())
    try:
        while True:
            try:
                name, data, rc = await remote.read_event()
            except CommandError as exc:
                message = f"Cannot run the command: {exc}"
                writer.write(mp.json_frame(mp.ERROR, {"message": message}))
                return
            if name == "exit":
                break
            writer.write(mp.frame(mp.STDOUT if name == "stdout" else mp.STDERR, data))
            await writer.drain()
    finally:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder
    writer.write(mp.json_frame(mp.EXIT, {"rc": rc, "signal": remote.exit_signal}))


async def _splice(
    channel_in: Any,
    channel_out: Any,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    channel_err: Any,
) -> None:
    """Pipe the client's socket into ``channel_in`` and ``channel_out`` back to it until
    the channel ends; ``channel_err`` (when given) is read and dropped."""

    async def up() -> None:
        while True:
            data = await reader.read(mp.CHUNK)
            if not data:
                channel_in.write_eof()
                return
            channel_in.write(data)
            await channel_in.drain()

    async def down() -> None:
        while True:
            data = await channel_out.read(mp.CHUNK)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    async def discard_stderr() -> None:
        while await channel_err.read(mp.CHUNK):
            pass

    uploader = asyncio.ensure_future(up())
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(down())
            if channel_err is not None:
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
    for _attempt in range(2):
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
            if mc.ping(path):
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
        server = MuxServer(session, idle_timeout, path, ino)
        _report({"ok": True, "pid": os.getpid()})
        # The first copy/template/fetch then finds an SFTP channel open (a channel is a
        # server session and sftp-server process: ~85 ms on OpenSSH).
        prefill = server.pool.prefill()
        try:
            await server.serve(sock)
        finally:
            server.retire()
            sock.close()
            # a channel cut off mid-setup can take the connection down: let it finish
            await asyncio.wait([prefill], timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.pool.aclose(), 5)
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
        spec = mc.spec_from_dict(json.loads(line)["spec"])
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


if __name__ == "__main__":
    sys.exit(main())
