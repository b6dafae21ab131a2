"""One remote command on an asyncssh connection, its stdin sent without waiting for the exec reply.

``SSHClientConnection.create_process`` returns only after the server has answered the
``exec`` request, so a command's input costs one round trip more than with OpenSSH's ``ssh``,
which sends stdin right behind the request. ``RemoteCommand.start`` returns as soon as the
channel is open and the request is on the wire; input written then follows it in the same
stream (the server holds it until the command runs, or drops it if the request fails, which
``read_event`` then raises). Built on asyncssh's public session API only.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

# isort: split
from ansible_collections.pipelined.sftp.plugins.plugin_utils import (  # noqa: F401  # pylint: disable=unused-import
    asyncssh_import,
)

# isort: split
import asyncssh

Event = tuple[Literal["stdout", "stderr", "exit"], bytes, int]

PAUSE_AT = 1 << 20
"""Bytes of unread output after which the channel stops reading (its window then fills)."""


class CommandError(Exception):
    """The command could not be started; str(e) says why in one sentence."""


class _Session(asyncssh.SSHClientSession[bytes]):
    """Hands the channel over as soon as it opens and queues what the command sends."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[asyncssh.SSHClientChannel[bytes]] = loop.create_future()
        self.events: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.queued = 0
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan
        if not self.opened.done():
            self.opened.set_result(chan)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        name = "stderr" if datatype == asyncssh.EXTENDED_DATA_STDERR else "stdout"
        self.events.put_nowait((name, data))
        self.queued += len(data)
        if self.queued >= PAUSE_AT and self._chan is not None:
            self._chan.pause_reading()

    def taken(self, size: int) -> None:
        self.queued -= size
        if self.queued < PAUSE_AT and self._chan is not None:
            self._chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.events.put_nowait(("closed", b""))

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()


class RemoteCommand:
    """A running command: write stdin, then read stdout/stderr events and the exit status."""

    def __init__(
        self,
        chan: asyncssh.SSHClientChannel[bytes],
        session: _Session,
        request: asyncio.Task[object],
    ) -> None:
        self._chan = chan
        self._session = session
        self._request = request

    @classmethod
    async def start(cls, conn: asyncssh.SSHClientConnection, command: str) -> RemoteCommand:
        """Open a session channel and send ``command``; CommandError if the channel fails."""
        session = _Session()
        request: asyncio.Task[object] = asyncio.ensure_future(
            conn.create_session(lambda: session, command, encoding=None)
        )
        try:
            waits: list[asyncio.Future[Any]] = [session.opened, request]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            request.cancel()
            raise
        if not session.opened.done():
            try:
                request.result()
            except (asyncssh.Error, OSError) as exc:
                raise CommandError(_reason(exc)) from None
            raise CommandError("the server opened no channel")  # not reached: see connection_made
        return cls(session.opened.result(), session, request)

    @property
    def confirmed(self) -> bool:
        """The server has answered the exec request (accepted or refused)."""
        return self._request.done()

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the command's stdin."""
        if data:
            self._chan.write(data)

    def write_eof(self) -> None:
        """Close the command's stdin."""
        self._chan.write_eof()

    async def drain(self) -> None:
        """Wait until the channel accepts more input."""
        await self._session.can_write.wait()

    async def read_event(self) -> Event:
        """Next ("stdout"|"stderr", data, 0), or ("exit", b"", status) once the channel closes.

        Raises CommandError when the server refused to run the command.
        """
        name, data = await self._session.events.get()
        if name != "closed":
            self._session.taken(len(data))
            return ("stdout" if name == "stdout" else "stderr"), data, 0
        self._session.events.put_nowait((name, data))  # later calls see the exit again
        try:
            await self._request
        except (asyncssh.Error, OSError) as exc:
            raise CommandError(_reason(exc)) from None
        status = self._chan.get_exit_status()
        return "exit", b"", status if status is not None and status >= 0 else 255

    @property
    def exit_signal(self) -> str | None:
        """Name of the signal that ended the command, if one did."""
        signal = self._chan.get_exit_signal()
        return signal[0] if signal else None

    def close(self) -> None:
        """Close the channel (stops the command if it still runs)."""
        self._chan.close()
        if not self._request.done():
            self._request.cancel()
        with contextlib.suppress(BaseException):
            if self._request.done() and not self._request.cancelled():
                self._request.exception()


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", "") or exc or type(exc).__name__)
