"""Small files moved as chains of reply callbacks: each step is sent from the reply to the
previous one, with no task and no future per file.

A tree of small files is bound by the client's CPU per file (measured: ~110 µs per file
through a task per file, a third of it in the task and future machinery). The steps and
the order of requests are those of `transfer.py`'s task path; only the driving differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Budget
from ansible_collections.pipelined.sftp.plugins.plugin_utils.local_io import LocalBatches
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXF_CREAT,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    FXP_CLOSE,
    FXP_EXTENDED,
    FXP_FSETSTAT,
    FXP_OPEN,
    FXP_READ,
    FXP_WRITE,
    Attrs,
    RawReply,
    SFTPClient,
    SFTPError,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import (
    OPEN_ATTRS,
    ChangedDuringTransfer,
    StoreJob,
    store_many,
)

WriteDone = Callable[[SFTPError | None, bool], None]
"""Called once when a write ends: the error (None on success), and whether a temporary
file may be left behind for the caller to remove."""

ReadDone = Callable[[list[bytes] | BaseException], None]
"""Called once when a read ends: the file's chunks, or what went wrong."""


class ReadAgain(Exception):
    """A READ came back short of the end without being at it: the task path, which can
    read on from there, should fetch the file instead."""


class _OnHandle:
    """One file's chain: OPEN; then its requests on the handle, back to back (`_body`).

    The caller holds an open-handle slot and one request slot (for the OPEN) of `budget`;
    the chain gives both back, taking the slots of each later step as it comes (as the
    task path does), so a file holds only the slots its requests in flight need.
    """

    __slots__ = ("_block", "_budget", "_client", "_error", "_held", "_path", "_size", "_waiting")

    def __init__(
        self, client: SFTPClient, budget: Budget, path: bytes, size: int, block: int
    ) -> None:
        self._client = client
        self._budget = budget
        self._path = path
        self._size = size
        self._block = block
        self._error: SFTPError | None = None
        self._held = 0
        self._waiting = 0

    @staticmethod
    def requests(size: int, block: int) -> int:
        """Request slots a file of `size` bytes needs at once (its widest step)."""
        return -(-size // block) + 2

    def _open(self, pflags: int, attrs: Attrs | None = None) -> None:
        payload = SFTPClient.open_payload(self._path, pflags, attrs)
        try:
            self._client.send(FXP_OPEN, payload, self._opened)
        except SFTPError as exc:  # the session is already gone
            self._opened(exc)

    def _opened(self, reply: RawReply | SFTPError) -> None:
        budget = self._budget
        budget.release_requests(1)
        try:
            handle = SFTPClient.handle_of(reply, self._path)
        except SFTPError as exc:
            budget.release_handle()
            self._failed(exc, opened=False)
            return
        self._held = self._waiting = self._body_requests()
        budget.when_free(self._held, partial(self._send_body, handle))

    def _body_requests(self) -> int:
        """Requests `_body` sends (at most `requests(size, block)`)."""
        return self.requests(self._size, self._block)

    def _send_body(self, handle: bytes) -> None:
        # Sent in one go, so no reply can arrive before all are counted; only the first
        # send can find the session gone, and then none was sent.
        try:
            self._body(handle)
        except SFTPError as exc:
            self._body_done()
            self._failed(exc, opened=True)

    def _answered(self) -> bool:
        """Count one reply of the body; True (slots and handle given back) at the last."""
        self._waiting -= 1
        if self._waiting:
            return False
        self._body_done()
        return True

    def _body_done(self) -> None:
        self._budget.release_requests(self._held)
        self._budget.release_handle()

    def _body(self, handle: bytes) -> None:
        raise NotImplementedError

    def _failed(self, exc: SFTPError, opened: bool) -> None:
        raise NotImplementedError


class SmallWrite(_OnHandle):
    """Write one small file whose content is in memory: OPEN; then every WRITE, the
    FSETSTAT and the CLOSE back to back; then, when written under a temporary name, the
    posix-rename over the final name."""

    __slots__ = ("_attrs", "_data", "_done", "_final")

    def __init__(
        self,
        client: SFTPClient,
        budget: Budget,
        data: bytes,
        target: bytes,
        final: bytes,
        block: int,
        attrs: Attrs,
        done: WriteDone,
    ) -> None:
        super().__init__(client, budget, target, len(data), block)
        self._data = data
        self._final = final
        self._attrs = attrs
        self._done = done

    def start(self) -> None:
        self._open(FXF_WRITE | FXF_CREAT | FXF_TRUNC, OPEN_ATTRS)

    def _failed(self, exc: SFTPError, opened: bool) -> None:
        self._done(exc, opened)

    def _body(self, handle: bytes) -> None:
        client, data, block, answered = self._client, self._data, self._block, self._answer
        for offset in range(0, len(data), block):
            payload = SFTPClient.write_payload(handle, offset, data[offset : offset + block])
            client.send(FXP_WRITE, payload, answered)
        client.send(FXP_FSETSTAT, SFTPClient.handle_payload(handle, self._attrs), answered)
        client.send(FXP_CLOSE, SFTPClient.handle_payload(handle), answered)

    def _answer(self, reply: RawReply | SFTPError) -> None:
        if self._error is None:
            try:
                SFTPClient.status_of(reply)
            except SFTPError as exc:
                self._error = exc
        if not self._answered():
            return
        self._data = b""
        if self._error is not None:
            self._done(self._error, True)
        elif self._path == self._final:
            self._done(None, False)
        else:
            self._budget.when_free(1, self._send_rename)

    def _send_rename(self) -> None:
        payload = SFTPClient.posix_rename_payload(self._path, self._final)
        try:
            self._client.send(FXP_EXTENDED, payload, self._renamed)
        except SFTPError as exc:
            self._renamed(exc)

    def _renamed(self, reply: RawReply | SFTPError) -> None:
        self._budget.release_requests(1)
        try:
            SFTPClient.status_of(reply, self._final)
        except SFTPError as exc:
            self._done(exc, True)
            return
        self._done(None, False)


class SmallRead(_OnHandle):
    """Read one small file whole: OPEN; then every READ and the CLOSE back to back. The
    caller also holds the file's bytes.

    A file that grew shows in the last READ, which asks for a whole block, when the file
    does not end on a block boundary and the server answers a READ in full up to the end of
    a file (OpenSSH's and asyncssh's: `ordered`). Otherwise one more READ, past the end,
    shows it (an empty file, a size that is a multiple of the block, other servers)."""

    __slots__ = ("_chunks", "_done")

    def __init__(
        self,
        client: SFTPClient,
        budget: Budget,
        remote: bytes,
        size: int,
        block: int,
        done: ReadDone,
    ) -> None:
        super().__init__(client, budget, remote, size, block)
        self._done = done
        self._chunks: list[bytes] = []

    def start(self) -> None:
        self._open(FXF_READ)

    def _failed(self, exc: SFTPError, opened: bool) -> None:
        self._done(exc)

    def _reads_past_end(self) -> bool:
        """Whether the last content READ cannot show a file that grew (see the class)."""
        return self._size % self._block == 0 or not self._client.ordered

    def _body_requests(self) -> int:
        return -(-self._size // self._block) + self._reads_past_end() + 1

    def _body(self, handle: bytes) -> None:
        offsets = list(range(0, self._size, self._block))
        if self._reads_past_end():
            offsets.append(self._size)
        self._chunks = [b""] * len(offsets)
        client = self._client
        for index, at in enumerate(offsets):
            payload = SFTPClient.read_payload(handle, at, self._block)
            client.send(FXP_READ, payload, partial(self._got, index))
        client.send(FXP_CLOSE, SFTPClient.handle_payload(handle), self._closed)

    def _got(self, index: int, reply: RawReply | SFTPError) -> None:
        if self._error is None:
            try:
                self._chunks[index] = SFTPClient.data_of(reply)
            except SFTPError as exc:
                self._error = exc
        if self._answered():
            self._done(self._error or self._checked())

    def _closed(self, _reply: RawReply | SFTPError) -> None:
        """A CLOSE after every READ was answered loses nothing if it fails."""
        if self._answered():
            self._done(self._error or self._checked())

    def _checked(self) -> list[bytes] | BaseException:
        """The file's chunks, or why they are not the file as listed."""
        chunks, self._chunks = self._chunks, []
        past_end = chunks.pop() if self._reads_past_end() else b""
        for index, chunk in enumerate(chunks):
            if len(chunk) < min(self._block, self._size - index * self._block):
                return (
                    ReadAgain()
                    if chunk
                    else ChangedDuringTransfer("the file shrank while it was being read")
                )
        last_want = self._size - (len(chunks) - 1) * self._block
        if past_end or (chunks and len(chunks[-1]) > last_want):
            return ChangedDuringTransfer("the file grew while it was being read")
        return chunks


STORE_BATCH_FILES = 32

Stored = Callable[[OSError | None], None]


class LocalStores:
    """Whole files written to local disk in batches (the files ready in one event-loop
    turn, at most STORE_BATCH_FILES), run where `LocalBatches` puts them."""

    def __init__(self) -> None:
        self._jobs: list[StoreJob] = []
        self._callbacks: list[Stored] = []
        self._scheduled = False
        self._batches = LocalBatches()

    def add(self, job: StoreJob, on_stored: Stored) -> None:
        """Write `job` soon; `on_stored` gets None, or the OSError that stopped it, from a
        later event-loop turn."""
        self._jobs.append(job)
        self._callbacks.append(on_stored)
        if len(self._jobs) >= STORE_BATCH_FILES:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._jobs:
            return
        jobs, callbacks = self._jobs, self._callbacks
        self._jobs, self._callbacks = [], []
        self._batches.submit(partial(store_many, jobs), len(jobs), partial(self._stored, callbacks))

    @staticmethod
    def _stored(callbacks: list[Stored], stored: list[OSError | None] | BaseException) -> None:
        if isinstance(stored, BaseException):
            cancelled = isinstance(stored, asyncio.CancelledError)
            error = OSError("the local write was cancelled" if cancelled else str(stored))
            stored = [error] * len(callbacks)
        for on_stored, result in zip(callbacks, stored, strict=True):
            on_stored(result)
