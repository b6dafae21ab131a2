"""The per-server cap on outstanding SFTP requests and open handles.

Listing has a lane of its own inside the cap, so directory reads never starve behind
file transfers; the total never exceeds the configured cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class Budget:
    """Requests and handles one server may have outstanding at once."""

    def __init__(self, max_requests: int, max_handles: int) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, not {max_requests}")
        self.max_requests = max_requests
        self.max_handles = max(1, max_handles)
        listing = max_requests // 8 if max_requests >= 2 else 0
        self._transfer = asyncio.Semaphore(max_requests - listing)
        self._listing = asyncio.Semaphore(listing) if listing else self._transfer
        self._handles = asyncio.Semaphore(self.max_handles)
        self.outstanding = 0
        self.peak = 0
        self._background: set[asyncio.Task[None]] = set()

    def request(self, listing: bool = False) -> _Slot:
        """Hold one request slot while the request is outstanding (async with)."""
        return _Slot(self, self._listing if listing else self._transfer)

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

    def _release_transfer(self, _reply: object) -> None:
        self._given_back(self._transfer)

    def _taken(self) -> None:
        self.outstanding += 1
        if self.outstanding > self.peak:
            self.peak = self.outstanding

    def _given_back(self, lane: asyncio.Semaphore) -> None:
        self.outstanding -= 1
        lane.release()

    def limit_handles(self, max_handles: int) -> None:
        """Lower the handle cap to what the server allows (before any handle is open)."""
        self.max_handles = max(1, max_handles)
        self._handles = asyncio.Semaphore(self.max_handles)

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
        async with self._handles:
            yield


class _Slot:
    """One request slot of a Budget lane, held for the body of an async with."""

    __slots__ = ("_budget", "_lane")

    def __init__(self, budget: Budget, lane: asyncio.Semaphore) -> None:
        self._budget = budget
        self._lane = lane

    async def __aenter__(self) -> None:
        await self._lane.acquire()
        self._budget._taken()

    async def __aexit__(self, *exc: object) -> None:
        self._budget._given_back(self._lane)
