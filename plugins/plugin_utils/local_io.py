"""Where batches of small local file reads and writes, and listings of small local
directories, run: on the event loop while they are quick, on a worker thread once they are
slow.

A batch of cached or tmpfs files takes a few microseconds per file. Handing it to a worker
thread costs more client CPU than that: the hop, the wake-up of the loop, and the two
threads taking the GIL in turns at every system call (measured: reading on the loop cut
the client's CPU by 17 % in a 5,000-file push to tmpfs). A batch that waits on a disk must
not hold up the loop, though, so once batches turn out slow, every later batch of the run
goes to a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

T = TypeVar("T")

SLOW_BATCH = 0.02
"""Seconds one batch may hold the event loop; a slower one sends later batches to a thread."""

SLOW_FILE = 0.0002
"""Seconds per file, averaged over a window of WINDOW_FILES files, above which later
batches go to a thread (one batch alone is too noisy to judge: a GC pass, a preemption)."""

WINDOW_FILES = 64


class LocalBatches:
    """Runs batches of local file work for one transfer."""

    def __init__(self) -> None:
        self.on_thread = False
        """Batches go to a worker thread (set once batches are slow, never unset)."""
        self._window_seconds = 0.0
        self._window_files = 0

    async def run(self, work: Callable[[], T], files: int | Callable[[T], int]) -> T:
        """work() for a batch of `files` files (or as many as `files(result)` counts), on
        the loop or on a thread."""
        if self.on_thread:
            return await asyncio.to_thread(work)
        return self._timed(work, files)

    def submit(
        self, work: Callable[[], T], files: int, done: Callable[[T | BaseException], None]
    ) -> None:
        """work() for a batch of `files` files; done() gets its result or exception, always
        from a later event-loop turn than this call."""
        loop = asyncio.get_running_loop()
        if self.on_thread:
            future = loop.run_in_executor(None, work)
            future.add_done_callback(partial(_deliver, done))
        else:
            loop.call_soon(self._run_inline, work, files, done)

    def _run_inline(
        self, work: Callable[[], T], files: int, done: Callable[[T | BaseException], None]
    ) -> None:
        try:
            result: T | BaseException = self._timed(work, files)
        except Exception as exc:  # handed to done(), as a thread's failure would be
            result = exc
        done(result)

    def _timed(self, work: Callable[[], T], files: int | Callable[[T], int]) -> T:
        start = time.perf_counter()
        try:
            result = work()
        except BaseException:
            self._judge(time.perf_counter() - start, files if isinstance(files, int) else 1)
            raise
        self._judge(time.perf_counter() - start, files if isinstance(files, int) else files(result))
        return result

    def _judge(self, seconds: float, files: int) -> None:
        self._window_seconds += seconds
        self._window_files += files
        if seconds > SLOW_BATCH:
            self.on_thread = True
        elif self._window_files >= WINDOW_FILES:
            self.on_thread = self._window_seconds > SLOW_FILE * self._window_files
            self._window_seconds = 0.0
            self._window_files = 0


def _deliver(done: Callable[[T | BaseException], None], finished: asyncio.Future[T]) -> None:
    """Hand a thread's result, or what stopped it, to done()."""
    if finished.cancelled():
        done(asyncio.CancelledError())
        return
    error = finished.exception()
    done(error if error is not None else finished.result())
