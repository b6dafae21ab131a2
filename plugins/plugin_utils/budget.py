"""The per-server cap on outstanding SFTP requests and open handles.

Listing has a lane of its own inside the cap, so directory reads never starve behind
file transfers; the total never exceeds the configured cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024
"""File data held in memory at once (read and not yet written) per server."""


class Budget:
    """Requests and handles one server may have outstanding at once."""

    def __init__(self, max_requests: int, max_handles: int) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, not {max_requests}")
        self.max_requests = max_requests
        self.max_handles = max(1, max_handles)
        listing = max_requests // 8 if max_requests >= 2 else 0
        self._transfer = Lane(max_requests - listing)
        self._listing = Lane(listing) if listing else self._transfer
        self._handles = Lane(self.max_handles)
        self.outstanding = 0
        self.peak = 0
        self.bytes = ByteBudget(MAX_BYTES_IN_FLIGHT)
        self._background: set[asyncio.Task[None]] = set()

    def request(self, listing: bool = False) -> _Slot:
        """Hold one request slot while the request is outstanding (async with)."""
        return _Slot(self, self._listing if listing else self._transfer, 1)

    def requests(self, count: int) -> _Slot:
        """Hold `count` transfer slots at once, for requests sent back to back, until every
        reply has landed (async with). Cheaper than `issue` per request (no callback per
        reply); `count` must fit (`batch_fits`)."""
        return _Slot(self, self._transfer, count)

    def batch_fits(self, count: int) -> bool:
        """Whether `count` requests can share one reservation (see `requests`)."""
        return count <= self._transfer.capacity

    async def issue(self, send: Callable[[], asyncio.Future[T]]) -> asyncio.Future[T]:
        """Take a transfer slot, send a request, and free the slot when its reply lands."""
        await self._transfer.acquire()
        self._taken()
        try:
            reply = send()
        except BaseException:
            self._given_back(self._transfer)
            raise
        reply.add_done_callback(self._release_transfer)
        return reply

    async def hold_first(self, handle: bool = True) -> None:
        """Take the transfer slot of the first request of a chain of reply callbacks (see
        chains.py), and an open-handle slot unless `handle` is False; the chain gives them
        back with `release_requests` and `release_handle`, and takes its later steps'
        slots with `when_free`."""
        if handle:
            await self._handles.acquire()
        try:
            await self._transfer.acquire(1)
        except BaseException:
            if handle:
                self._handles.release()
            raise
        self._taken()

    def when_free(self, count: int, then: Callable[[], None]) -> None:
        """Call `then` once `count` transfer slots are taken for it (now, if they are
        free): for requests sent from a reply callback, which cannot await. `then` must
        not raise; give the slots back with `release_requests`."""

        def granted() -> None:
            self._taken(count)
            then()

        self._transfer.call_when_free(count, granted)

    def release_handle(self) -> None:
        self._handles.release()

    def release_requests(self, count: int) -> None:
        self._given_back(self._transfer, count)

    def _release_transfer(self, _reply: object) -> None:
        self._given_back(self._transfer)

    def _taken(self, count: int = 1) -> None:
        self.outstanding += count
        if self.outstanding > self.peak:
            self.peak = self.outstanding

    def _given_back(self, lane: Lane, count: int = 1) -> None:
        self.outstanding -= count
        lane.release(count)

    def limit_handles(self, max_handles: int) -> None:
        """Lower the handle cap to what the server allows (before any handle is open)."""
        self.max_handles = max(1, max_handles)
        self._handles = Lane(self.max_handles)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run clean-up work (e.g. closing a handle) without waiting for it."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background clean-up work."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    @asynccontextmanager
    async def handle(self) -> AsyncIterator[None]:
        """Hold one open-handle slot while a file or directory is open."""
        await self._handles.acquire()
        try:
            yield
        finally:
            self._handles.release()


class _Slot:
    """Request slots of a Budget lane, held for the body of an async with."""

    __slots__ = ("_budget", "_count", "_lane")

    def __init__(self, budget: Budget, lane: Lane, count: int) -> None:
        self._budget = budget
        self._lane = lane
        self._count = count

    async def __aenter__(self) -> None:
        await self._lane.acquire(self._count)
        self._budget._taken(self._count)

    async def __aexit__(self, *exc: object) -> None:
        self._budget._given_back(self._lane, self._count)


class Lane:
    """Request slots: a counting semaphore whose holders may take several slots at once,
    granted first come, first served."""

    __slots__ = ("_waiters", "capacity", "free")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None] | Callable[[], None]]] = deque()

    def try_acquire(self, count: int = 1) -> bool:
        """Take `count` slots if they are free now and nobody waits."""
        if self._waiters or self.free < count:
            return False
        self.free -= count
        return True

    async def acquire(self, count: int = 1) -> None:
        """Wait for `count` slots (at most `capacity`)."""
        if self.try_acquire(count):
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(count)
            raise

    def call_when_free(self, count: int, granted: Callable[[], None]) -> None:
        """Call `granted` holding `count` slots: now if they are free, else in turn."""
        if self.try_acquire(count):
            granted()
        else:
            self._waiters.append((count, granted))

    def release(self, count: int = 1) -> None:
        self.free += count
        waiters = self._waiters
        while waiters:
            wanted, granted = waiters[0]
            if isinstance(granted, asyncio.Future) and granted.done():  # cancelled waiting
                waiters.popleft()
                continue
            if self.free < wanted:
                break
            waiters.popleft()
            self.free -= wanted
            if isinstance(granted, asyncio.Future):
                granted.set_result(None)
            else:
                granted()


class ByteBudget:
    """A cap on file bytes held in memory, granted first come, first served.

    A request above the cap is clamped to it, so it waits for an empty budget but never
    deadlocks.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        """Wait until `size` bytes fit; returns the amount to release later."""
        size = min(max(size, 0), self.cap)
        if not self._waiters and self.held + size <= self.cap:
            self._take(size)
            return size
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((size, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(size)
            raise
        return size

    def try_acquire(self, size: int) -> int | None:
        """Take `size` bytes if they fit now and nobody waits; None otherwise."""
        size = min(max(size, 0), self.cap)
        if self._waiters or self.held + size > self.cap:
            return None
        self._take(size)
        return size

    def release(self, size: int) -> None:
        self.held -= size
        while self._waiters and self.held + self._waiters[0][0] <= self.cap:
            size, granted = self._waiters.popleft()
            if not granted.done():
                self._take(size)
                granted.set_result(None)

    def _take(self, size: int) -> None:
        self.held += size
        self.peak = max(self.peak, self.held)

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes for the body of an async with."""
        taken = await self.acquire(size)
        try:
            yield
        finally:
            self.release(taken)
