"""A thin SFTP version 3 client over any byte stream pair.

Every request made in one event-loop turn is written to the stream in one write: the
SSH layer then packs many SFTP requests into few SSH packets, which is where most of
the per-request CPU goes (see DESIGN.md, "Performance stance"). Replies are matched to
requests by id; many requests may be outstanding at once. Bounding them is the caller's
job (see budget.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Packet types (draft-ietf-secsh-filexfer-02).
FXP_INIT = 1
FXP_VERSION = 2
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_READ = 5
FXP_WRITE = 6
FXP_LSTAT = 7
FXP_FSTAT = 8
FXP_SETSTAT = 9
FXP_FSETSTAT = 10
FXP_OPENDIR = 11
FXP_READDIR = 12
FXP_REMOVE = 13
FXP_MKDIR = 14
FXP_RMDIR = 15
FXP_REALPATH = 16
FXP_STAT = 17
FXP_RENAME = 18
FXP_READLINK = 19
FXP_SYMLINK = 20
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_DATA = 103
FXP_NAME = 104
FXP_ATTRS = 105
FXP_EXTENDED = 200
FXP_EXTENDED_REPLY = 201

FXF_READ = 0x01
FXF_WRITE = 0x02
FXF_APPEND = 0x04
FXF_CREAT = 0x08
FXF_TRUNC = 0x10
FXF_EXCL = 0x20

FX_OK = 0
FX_EOF = 1
FX_NO_SUCH_FILE = 2
FX_PERMISSION_DENIED = 3
FX_FAILURE = 4
FX_BAD_MESSAGE = 5
FX_NO_CONNECTION = 6
FX_CONNECTION_LOST = 7
FX_OP_UNSUPPORTED = 8

ATTR_SIZE = 0x01
ATTR_UIDGID = 0x02
ATTR_PERMISSIONS = 0x04
ATTR_ACMODTIME = 0x08
ATTR_EXTENDED = 0x80000000

_STATUS_TEXT = {
    FX_EOF: "end of file",
    FX_NO_SUCH_FILE: "no such file or directory",
    FX_PERMISSION_DENIED: "permission denied",
    FX_FAILURE: "failure",
    FX_BAD_MESSAGE: "bad message",
    FX_NO_CONNECTION: "no connection",
    FX_CONNECTION_LOST: "connection lost",
    FX_OP_UNSUPPORTED: "operation unsupported",
}

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEADER = struct.Struct(">IBI")  # length, type, request id

READ_CHUNK = 1 << 20
CLOSE_WAIT = 2.0
"""Seconds aclose() waits for answers and for the server to close the channel."""
SERVER_READ_SIZE = 16 * 1024
"""What OpenSSH's sftp-server reads from its input per turn of its loop, in which it
handles one request (see `SFTPClient.limit_unanswered`)."""
POSIX_RENAME = b"posix-rename@openssh.com"
MAX_REPLY = 1 << 24  # refuse replies above 16 MiB: a hostile server must not exhaust memory


class SFTPError(Exception):
    """An SFTP request failed; str() is one sentence naming the path and the cause."""

    def __init__(self, code: int, message: str = "", path: bytes | None = None) -> None:
        self.code = code
        self.server_message = message
        self.path = path
        reason = message.strip() or _STATUS_TEXT.get(code, f"error {code}")
        self.reason = reason.rstrip(".")
        text = f"{display_path(path)}: {self.reason}" if path is not None else self.reason
        super().__init__(text)


def mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (whoever needs it gets it another way), so
    asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def display_path(path: bytes | str | None) -> str:
    """A path for humans; undecodable bytes shown as escapes."""
    if path is None:
        return ""
    if isinstance(path, str):
        return path
    return path.decode("utf-8", "backslashreplace")


@dataclass
class Attrs:
    """SFTP v3 file attributes; None means "not present"."""

    size: int | None = None
    uid: int | None = None
    gid: int | None = None
    permissions: int | None = None
    atime: int | None = None
    mtime: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.permissions is not None and stat.S_ISDIR(self.permissions)

    @property
    def is_reg(self) -> bool:
        return self.permissions is not None and stat.S_ISREG(self.permissions)

    @property
    def is_link(self) -> bool:
        return self.permissions is not None and stat.S_ISLNK(self.permissions)

    def encode(self) -> bytes:
        flags = 0
        parts: list[bytes] = []
        if self.size is not None:
            flags |= ATTR_SIZE
            parts.append(_U64.pack(self.size))
        if self.uid is not None and self.gid is not None:
            flags |= ATTR_UIDGID
            parts.append(_U32.pack(self.uid) + _U32.pack(self.gid))
        if self.permissions is not None:
            flags |= ATTR_PERMISSIONS
            parts.append(_U32.pack(self.permissions))
        if self.mtime is not None:
            flags |= ATTR_ACMODTIME
            atime = self.atime if self.atime is not None else self.mtime
            parts.append(_U32.pack(atime & 0xFFFFFFFF) + _U32.pack(self.mtime & 0xFFFFFFFF))
        return _U32.pack(flags) + b"".join(parts)


@dataclass
class Name:
    """One READDIR entry."""

    filename: bytes
    attrs: Attrs


@dataclass(frozen=True)
class ServerLimits:
    """What the server accepts (limits@openssh.com, or conservative defaults)."""

    max_packet: int = 34000
    max_read: int = 32768
    max_write: int = 32768
    max_handles: int = 64


class _Reader(Protocol):
    async def readexactly(self, n: int, /) -> bytes: ...

    async def read(self, n: int, /) -> bytes: ...


class _Malformed(Exception):
    """The server's byte stream is not SFTP."""


class _Writer(Protocol):
    def write(self, data: bytes, /) -> None: ...

    def close(self) -> None: ...


class _Buffer:
    """Cursor over one reply body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u32(self) -> int:
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        (value,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return int(value)

    def string(self) -> bytes:
        length = self.u32()
        end = self.pos + length
        if end > len(self.data):
            raise SFTPError(FX_BAD_MESSAGE, "truncated string in server reply")
        value = self.data[self.pos : end]
        self.pos = end
        return value

    def attrs(self) -> Attrs:
        flags = self.u32()
        attrs = Attrs()
        if flags & ATTR_SIZE:
            attrs.size = self.u64()
        if flags & ATTR_UIDGID:
            attrs.uid = self.u32()
            attrs.gid = self.u32()
        if flags & ATTR_PERMISSIONS:
            attrs.permissions = self.u32()
        if flags & ATTR_ACMODTIME:
            attrs.atime = self.u32()
            attrs.mtime = self.u32()
        if flags & ATTR_EXTENDED:
            for _extension in range(self.u32()):
                self.string()
                self.string()
        return attrs


def _string(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


RawReply = tuple[int, _Buffer]
"""A request's raw reply: packet type and body, decoded by status_of() / data_of()."""
Reply = asyncio.Future[RawReply]
OnReply = Callable[[RawReply | SFTPError], None]
"""Called with a request's raw reply, or with the error that ended the session first."""


def answers_in_order(server_version: str) -> bool:
    """Whether a server, by its SSH software version, handles each SFTP channel's
    requests one at a time in the order sent: OpenSSH's sftp-server and asyncssh's
    server do. Others may run requests concurrently."""
    return "OpenSSH" in server_version or "AsyncSSH" in server_version


class SFTPClient:
    """SFTP v3 requests over a (reader, writer) stream pair, many in flight at once."""

    def __init__(
        self,
        reader: _Reader,
        writer: _Writer,
        *,
        nonstandard_symlink: bool = True,
        ordered: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._nonstandard_symlink = nonstandard_symlink
        self.ordered = ordered
        """The server answers requests strictly in the order sent (OpenSSH's sftp-server)."""
        self._on_close = on_close
        self._pending: dict[int, Reply | OnReply] = {}
        self._next_id = 0
        self._outbox: list[bytes] = []
        self._flush_scheduled = False
        self._reader_task: asyncio.Task[None] | None = None
        self._closed_error: SFTPError | None = None
        self._idle: asyncio.Future[None] | None = None
        """Resolved by the reply reader once nothing is outstanding, while aclose waits."""
        self.extensions: dict[bytes, bytes] = {}
        self.version = 0
        self.requests_sent = 0
        self.release: Callable[[SFTPClient], bool] | None = None
        """Offered the client on aclose; returning True keeps the channel open (a pool)."""
        self._started: asyncio.Future[None] | None = None
        self._window: int | None = None
        self._unanswered = 0
        self._sizes: dict[int, int] = {}
        self._held: deque[tuple[int, list[bytes]]] = deque()

    def limit_unanswered(self, window: int) -> None:
        """Send at most `window` bytes of small requests (below `SERVER_READ_SIZE`) that
        are not answered yet, holding the rest back in order (a request larger than the
        window still goes once nothing is unanswered).

        OpenSSH's sftp-server reads its input 16 KiB at a time but handles one request per
        read, so whatever the client sends ahead piles up in its input buffer, which it
        grows and compacts by copying the whole buffer: with megabytes queued there, a
        push's server spent 0.15-0.4 s of CPU on those copies alone (docs/performance.md,
        ninth session). The SSH channel's window does not bound that buffer, sshd refills
        it as soon as sftp-server has read the data. A request of `SERVER_READ_SIZE` or
        more takes at least one read of its own, so it never piles up there: bulk WRITEs
        are not counted (a 1 MiB-file push at 10 ms took 3.1 s with them, 2.3 s without)."""
        self._window = max(1, window)
        self._send_held()

    @property
    def closed(self) -> bool:
        """The channel is gone (closed, lost, or failed): no request can succeed."""
        return self._closed_error is not None

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    # -- lifecycle -----------------------------------------------------------------

    async def start(
        self,
        timeout: float | None = None,
        explain: Callable[[BaseException], Awaitable[BaseException]] | None = None,
    ) -> None:
        """Exchange INIT / VERSION and start reading replies (see `begin`)."""
        self.begin(timeout, explain)
        await self.started()

    def begin(
        self,
        timeout: float | None = None,
        explain: Callable[[BaseException], Awaitable[BaseException]] | None = None,
    ) -> None:
        """Send INIT and start reading: the VERSION answer, then replies.

        Requests may be queued at once: they follow INIT on the wire, which a server that
        handles requests in the order sent (`ordered`) runs after INIT, so they cost no
        round trip of their own. If no VERSION comes within `timeout` seconds, or the
        stream ends or carries something else first, `explain(cause)` gives the error
        `started()` raises, and queued requests fail with its text."""
        loop = asyncio.get_running_loop()
        self._started = started = loop.create_future()
        started.add_done_callback(mark_retrieved)
        self._writer.write(_U32.pack(5) + bytes([FXP_INIT]) + _U32.pack(3))
        self._reader_task = loop.create_task(self._handshake_then_read(started, timeout, explain))

    async def started(self) -> None:
        """Wait for the server's VERSION; raise why the session did not start."""
        if self._started is None:
            raise SFTPError(FX_NO_CONNECTION, "the SFTP session was not started")
        await asyncio.shield(self._started)

    @property
    def starting(self) -> bool:
        """INIT is sent and the VERSION answer has not come yet."""
        return self._started is not None and not self._started.done()

    @property
    def start_error(self) -> BaseException | None:
        """Why the session did not start, once known (None: it started, or is starting)."""
        started = self._started
        if started is None or not started.done() or started.cancelled():
            return None
        return started.exception()

    async def _handshake_then_read(
        self,
        started: asyncio.Future[None],
        timeout: float | None,
        explain: Callable[[BaseException], Awaitable[BaseException]] | None,
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._read_version()
        except asyncio.CancelledError:
            self._end_start(SFTPError(FX_CONNECTION_LOST, "the SFTP session was closed"))
            raise
        except Exception as cause:
            try:
                error = await explain(cause) if explain is not None else cause
            except Exception as other:
                error = other
            self._end_start(error)
            return
        started.set_result(None)
        await self._read_replies()

    def _end_start(self, error: BaseException) -> None:
        """The session will not start: say why to `started()` and to queued requests."""
        if self._started is not None and not self._started.done():
            self._started.set_exception(error)
        code = error.code if isinstance(error, SFTPError) else FX_CONNECTION_LOST
        self._fail_all(SFTPError(code, str(error)))

    async def _read_version(self) -> None:
        header = await self._reader.readexactly(5)
        length, ptype = struct.unpack(">IB", header)
        if ptype != FXP_VERSION or length > MAX_REPLY:
            raise SFTPError(FX_BAD_MESSAGE, "the server did not answer the SFTP handshake")
        body = _Buffer(await self._reader.readexactly(length - 1))
        self.version = body.u32()
        while body.pos < len(body.data):
            name = body.string()
            self.extensions[name] = body.string()

    def adopt(self, version: int, extensions: dict[bytes, bytes]) -> None:
        """Start reading replies on a session whose INIT / VERSION exchange was done by
        another client (see :meth:`detach`), with the version and extensions it got."""
        self.version = version
        self.extensions = dict(extensions)
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._started.set_result(None)
        self._reader_task = loop.create_task(self._read_replies())

    async def detach(self) -> tuple[_Reader, _Writer]:
        """Stop reading replies and hand over the streams, for another client to
        :meth:`adopt`. Only between requests: nothing may be outstanding."""
        if self._pending or self._outbox:
            raise SFTPError(FX_FAILURE, "cannot hand over an SFTP session with requests in flight")
        task, self._reader_task = self._reader_task, None
        self._on_close = None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        return self._reader, self._writer

    async def limits(self) -> ServerLimits:
        """The server's limits; conservative defaults when it does not say.

        On an in-order server still starting, the request goes out at once, behind INIT:
        a server without the extension answers it with an error, read as "no limits"."""
        speculate = self.ordered and self.starting
        if not speculate:
            await self.started()
            if b"limits@openssh.com" not in self.extensions:
                return ServerLimits()
        try:
            data = await self.extended(b"limits@openssh.com", b"")
        except SFTPError as exc:
            if not speculate or exc.code in (FX_CONNECTION_LOST, FX_NO_CONNECTION):
                raise
            return ServerLimits()
        if len(data) < 32:
            return ServerLimits()
        reply = _Buffer(data)
        max_packet, max_read, max_write, max_handles = (reply.u64() for _field in range(4))
        defaults = ServerLimits()
        return ServerLimits(
            max_packet=max_packet or defaults.max_packet,
            max_read=max_read or defaults.max_read,
            max_write=max_write or defaults.max_write,
            max_handles=max_handles or 1 << 30,
        )

    async def aclose(self) -> None:
        """Close the channel once outstanding requests are answered (a few seconds at
        most); requests still waiting then fail. With nothing left unanswered the server's
        own close is not waited for (a round trip that changes nothing); otherwise it is,
        so that no late reply is written into a closed channel.

        An idle, healthy client is first offered to ``release``, which may keep it open."""
        release, self.release = self.release, None
        idle = not (self.closed or self._pending or self._outbox)
        if release is not None and idle and release(self):
            return
        self._flush()
        reader = self._reader_task
        if reader is not None and self._pending and not reader.done():
            self._idle = asyncio.get_running_loop().create_future()
            done = asyncio.FIRST_COMPLETED
            await asyncio.wait([self._idle, reader], timeout=CLOSE_WAIT, return_when=done)
        self._writer.close()
        if reader is not None:
            if not reader.done() and self._pending:
                await asyncio.wait([reader], timeout=CLOSE_WAIT)
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_all(SFTPError(FX_CONNECTION_LOST, "the SFTP session was closed"))

    # -- plumbing ------------------------------------------------------------------

    def _request(self, ptype: int, payload: bytes | list[bytes]) -> Reply:
        future: Reply = asyncio.get_running_loop().create_future()
        self._enqueue(ptype, payload, future)
        return future

    def send(self, ptype: int, payload: bytes | list[bytes], on_reply: OnReply) -> None:
        """Send a request now; `on_reply` gets its raw reply (or the session's end) from
        the reply reader: no future, no task wake-up. It must not raise."""
        self._enqueue(ptype, payload, on_reply)

    def _enqueue(self, ptype: int, payload: bytes | list[bytes], waiter: Reply | OnReply) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        self._next_id = request_id = (self._next_id + 1) & 0xFFFFFFFF
        self._pending[request_id] = waiter
        self.requests_sent += 1
        size = sum(len(part) for part in payload) if isinstance(payload, list) else len(payload)
        header = _HEADER.pack(size + 5, ptype, request_id)
        parts = [header, *payload] if isinstance(payload, list) else [header + payload]
        window = self._window
        if window is not None:
            cost = size if size < SERVER_READ_SIZE else 0
            if cost:
                self._sizes[request_id] = cost
            if self._held or (cost and self._unanswered and self._unanswered + cost > window):
                self._held.append((cost, parts))
                return
            self._unanswered += cost
        self._outbox.extend(parts)
        self._schedule_flush()

    def _send_held(self) -> None:
        """Send the requests held back that the window now allows, in order."""
        held, window = self._held, self._window or 0
        while held and (not self._unanswered or self._unanswered + held[0][0] <= window):
            size, parts = held.popleft()
            self._unanswered += size
            self._outbox.extend(parts)
        if self._outbox:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Write the outbox once this turn of the event loop ends: one write for every
        request of the turn."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._outbox:
            data = b"".join(self._outbox)
            self._outbox.clear()
            self._writer.write(data)

    async def _read_replies(self) -> None:
        error = SFTPError(FX_CONNECTION_LOST, "the SFTP server closed the connection")
        buffer = bytearray()
        try:
            while True:
                # Read whatever has arrived and dispatch every whole reply in it: one
                # stream read for many replies.
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    break
                buffer += chunk
                start = 0
                answered = 0
                sizes = self._sizes
                while len(buffer) - start >= 9:
                    length, ptype, request_id = _HEADER.unpack_from(buffer, start)
                    if length > MAX_REPLY or length < 5:
                        raise _Malformed(f"the server sent a {length}-byte reply")
                    end = start + 4 + length
                    if end > len(buffer):
                        break
                    waiter = self._pending.pop(request_id, None)
                    if sizes:
                        answered += sizes.pop(request_id, 0)
                    if isinstance(waiter, asyncio.Future):
                        if not waiter.done():
                            waiter.set_result((ptype, _Buffer(bytes(buffer[start + 9 : end]))))
                    elif waiter is not None:
                        waiter((ptype, _Buffer(bytes(buffer[start + 9 : end]))))
                    start = end
                del buffer[:start]
                if answered:
                    self._unanswered -= answered
                    if self._held:
                        self._send_held()
                if self._idle is not None and not self._pending and not self._idle.done():
                    self._idle.set_result(None)
        except _Malformed as exc:
            error = SFTPError(FX_BAD_MESSAGE, str(exc))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, EOFError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a reply callback failed: end the session loudly, not hang
            error = SFTPError(FX_FAILURE, f"internal error while handling a reply: {exc!r}")
        finally:
            self._fail_all(error)

    def _fail_all(self, error: SFTPError) -> None:
        if self._closed_error is None:
            self._closed_error = error
            if self._on_close is not None:
                self._on_close()
        pending, self._pending = self._pending, {}
        self._held.clear()
        self._sizes.clear()
        for waiter in pending.values():
            if not isinstance(waiter, asyncio.Future):
                with contextlib.suppress(Exception):  # every waiter must hear of the end
                    waiter(SFTPError(error.code, error.server_message))
            elif not waiter.done():
                waiter.set_exception(SFTPError(error.code, error.server_message))

    async def _call(self, ptype: int, payload: bytes | list[bytes], path: bytes | None) -> RawReply:
        try:
            return await self._request(ptype, payload)
        except SFTPError as exc:
            if exc.path is None and path is not None:
                raise SFTPError(exc.code, exc.server_message, path) from None
            raise

    @staticmethod
    def _raise_status(body: _Buffer, path: bytes | None) -> None:
        code = body.u32()
        if code != FX_OK:
            message = body.string().decode("utf-8", "replace") if body.pos < len(body.data) else ""
            raise SFTPError(code, message, path)

    async def _status(self, ptype: int, payload: bytes | list[bytes], path: bytes | None) -> None:
        rtype, body = await self._call(ptype, payload, path)
        if rtype != FXP_STATUS:
            raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}", path)
        self._raise_status(body, path)

    async def _expect(
        self, ptype: int, payload: bytes | list[bytes], path: bytes | None, want: int
    ) -> _Buffer:
        rtype, body = await self._call(ptype, payload, path)
        if rtype == want:
            return body
        if rtype == FXP_STATUS:
            self._raise_status(body, path)
        raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}", path)

    # -- requests sent now, answered later (the hot path of small files) ------------------

    def write_nowait(self, handle: bytes, offset: int, data: bytes) -> Reply:
        """Send a WRITE now; check the reply later with status_of()."""
        return self._request(FXP_WRITE, self.write_payload(handle, offset, data))

    def fsetstat_nowait(self, handle: bytes, attrs: Attrs) -> Reply:
        return self._request(FXP_FSETSTAT, self.handle_payload(handle, attrs))

    def close_nowait(self, handle: bytes) -> Reply:
        return self._request(FXP_CLOSE, self.handle_payload(handle))

    def read_nowait(self, handle: bytes, offset: int, length: int) -> Reply:
        return self._request(FXP_READ, self.read_payload(handle, offset, length))

    def setstat_nowait(self, path: bytes, attrs: Attrs) -> Reply:
        return self._request(FXP_SETSTAT, _string(path) + attrs.encode())

    def rmdir_nowait(self, path: bytes) -> Reply:
        return self._request(FXP_RMDIR, _string(path))

    @staticmethod
    def _unpacked(reply: RawReply | SFTPError) -> RawReply:
        """A reply ready to decode from its start; the error a callback got instead, raised."""
        if isinstance(reply, SFTPError):
            raise reply
        reply[1].pos = 0
        return reply

    @classmethod
    def status_of(cls, reply: RawReply | SFTPError, path: bytes | None = None) -> None:
        """Raise SFTPError unless a STATUS reply says OK."""
        rtype, body = cls._unpacked(reply)
        if rtype != FXP_STATUS:
            raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}", path)
        cls._raise_status(body, path)

    @classmethod
    def handle_of(cls, reply: RawReply | SFTPError, path: bytes | None = None) -> bytes:
        """The handle of an OPEN or OPENDIR reply; raise SFTPError for a failure."""
        rtype, body = cls._unpacked(reply)
        if rtype == FXP_HANDLE:
            return body.string()
        if rtype == FXP_STATUS:
            cls._raise_status(body, path)
        raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}", path)

    @classmethod
    def data_of(cls, reply: RawReply | SFTPError) -> bytes:
        """The bytes of a READ reply; b"" at end of file."""
        rtype, body = cls._unpacked(reply)
        if rtype == FXP_DATA:
            return body.string()
        if rtype == FXP_STATUS:
            if body.u32() == FX_EOF:
                return b""
            body.pos = 0
            cls._raise_status(body, None)
        raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}")

    @staticmethod
    def open_payload(path: bytes, pflags: int, attrs: Attrs | None = None) -> bytes:
        return _string(path) + _U32.pack(pflags) + (attrs or Attrs()).encode()

    @staticmethod
    def write_payload(handle: bytes, offset: int, data: bytes) -> list[bytes]:
        return [_string(handle) + _U64.pack(offset) + _U32.pack(len(data)), data]

    @staticmethod
    def path_payload(path: bytes) -> bytes:
        """The payload of REMOVE, RMDIR, LSTAT and the like."""
        return _string(path)

    @staticmethod
    def read_payload(handle: bytes, offset: int, length: int) -> bytes:
        return _string(handle) + _U64.pack(offset) + _U32.pack(length)

    @staticmethod
    def handle_payload(handle: bytes, attrs: Attrs | None = None) -> bytes:
        """The payload of CLOSE (no attrs) or FSETSTAT."""
        return _string(handle) if attrs is None else _string(handle) + attrs.encode()

    @staticmethod
    def posix_rename_payload(old: bytes, new: bytes) -> bytes:
        return _string(POSIX_RENAME) + _string(old) + _string(new)

    # -- requests --------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: Attrs | None = None) -> bytes:
        payload = self.open_payload(path, pflags, attrs)
        return (await self._expect(FXP_OPEN, payload, path, FXP_HANDLE)).string()

    async def close(self, handle: bytes) -> None:
        await self._status(FXP_CLOSE, _string(handle), None)

    async def read(self, handle: bytes, offset: int, length: int) -> bytes:
        payload = _string(handle) + _U64.pack(offset) + _U32.pack(length)
        rtype, body = await self._call(FXP_READ, payload, None)
        if rtype == FXP_DATA:
            return body.string()
        if rtype == FXP_STATUS:
            code = body.u32()
            if code == FX_EOF:
                return b""
            body.pos = 0
            self._raise_status(body, None)
        raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}")

    async def write(self, handle: bytes, offset: int, data: bytes | memoryview) -> None:
        head = _string(handle) + _U64.pack(offset) + _U32.pack(len(data))
        await self._status(FXP_WRITE, [head, bytes(data)], None)

    async def fstat(self, handle: bytes) -> Attrs:
        return (await self._expect(FXP_FSTAT, _string(handle), None, FXP_ATTRS)).attrs()

    async def lstat(self, path: bytes) -> Attrs:
        return (await self._expect(FXP_LSTAT, _string(path), path, FXP_ATTRS)).attrs()

    async def stat(self, path: bytes) -> Attrs:
        return (await self._expect(FXP_STAT, _string(path), path, FXP_ATTRS)).attrs()

    async def setstat(self, path: bytes, attrs: Attrs) -> None:
        await self._status(FXP_SETSTAT, _string(path) + attrs.encode(), path)

    async def fsetstat(self, handle: bytes, attrs: Attrs) -> None:
        await self._status(FXP_FSETSTAT, _string(handle) + attrs.encode(), None)

    async def opendir(self, path: bytes) -> bytes:
        return (await self._expect(FXP_OPENDIR, _string(path), path, FXP_HANDLE)).string()

    async def readdir(self, handle: bytes) -> list[Name] | None:
        """The next chunk of entries, or None at the end of the directory."""
        rtype, body = await self._call(FXP_READDIR, _string(handle), None)
        if rtype == FXP_STATUS:
            if body.u32() == FX_EOF:
                return None
            body.pos = 0
            self._raise_status(body, None)
        if rtype != FXP_NAME:
            raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}")
        names = []
        for _name in range(body.u32()):
            filename = body.string()
            body.string()  # longname
            names.append(Name(filename, body.attrs()))
        return names

    async def remove(self, path: bytes) -> None:
        await self._status(FXP_REMOVE, _string(path), path)

    async def mkdir(self, path: bytes, attrs: Attrs | None = None) -> None:
        await self._status(FXP_MKDIR, _string(path) + (attrs or Attrs()).encode(), path)

    async def rmdir(self, path: bytes) -> None:
        await self._status(FXP_RMDIR, _string(path), path)

    async def realpath(self, path: bytes) -> bytes:
        body = await self._expect(FXP_REALPATH, _string(path), path, FXP_NAME)
        if body.u32() < 1:
            raise SFTPError(FX_BAD_MESSAGE, "empty REALPATH reply", path)
        return body.string()

    async def rename(self, old: bytes, new: bytes) -> None:
        await self._status(FXP_RENAME, _string(old) + _string(new), new)

    async def posix_rename(self, old: bytes, new: bytes) -> None:
        """Atomic rename that replaces `new` (posix-rename@openssh.com)."""
        await self._status(FXP_EXTENDED, self.posix_rename_payload(old, new), new)

    async def readlink(self, path: bytes) -> bytes:
        body = await self._expect(FXP_READLINK, _string(path), path, FXP_NAME)
        if body.u32() < 1:
            raise SFTPError(FX_BAD_MESSAGE, "empty READLINK reply", path)
        return body.string()

    async def symlink(self, linkpath: bytes, target: bytes) -> None:
        """Create `linkpath` pointing at `target`."""
        if self._nonstandard_symlink:  # OpenSSH swaps the arguments of the draft
            payload = _string(target) + _string(linkpath)
        else:
            payload = _string(linkpath) + _string(target)
        await self._status(FXP_SYMLINK, payload, linkpath)

    async def fsync(self, handle: bytes) -> None:
        await self._status(FXP_EXTENDED, _string(b"fsync@openssh.com") + _string(handle), None)

    async def extended(self, name: bytes, payload: bytes) -> bytes:
        """An extended request; returns the EXTENDED_REPLY data (b"" for a plain OK)."""
        rtype, body = await self._call(FXP_EXTENDED, _string(name) + payload, None)
        if rtype == FXP_EXTENDED_REPLY:
            return body.data
        if rtype == FXP_STATUS:
            self._raise_status(body, None)
            return b""
        raise SFTPError(FX_BAD_MESSAGE, f"unexpected reply type {rtype}")


def has_extension(client: SFTPClient, name: bytes) -> bool:
    """Whether the server announced an extension (e.g. b"posix-rename@openssh.com")."""
    return name in client.extensions


__all__: list[Any] = [
    "Attrs",
    "Name",
    "SFTPClient",
    "SFTPError",
    "ServerLimits",
    "display_path",
    "has_extension",
    "mark_retrieved",
]
