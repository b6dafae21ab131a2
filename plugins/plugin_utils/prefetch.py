"""Local work of a push done while it waits for the server: listings and small files.

A push's first requests wait for the server to start its SFTP session (on a target whose
login shell reads a ~/.bashrc, ~0.1 s) and answer one round trip; the client is idle
meanwhile. Listing the source tree and reading its small files takes about as long
(5,000 files on tmpfs: ~57 ms), so the push does it then and later takes the results
instead of doing the work again. Bounded in files and bytes: memory does not grow with the
tree.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import read_many
from ansible_collections.pipelined.sftp.plugins.plugin_utils.walk import (
    LocalListing,
    list_local_dir,
)

PREFETCH_FILES = 4096
PREFETCH_BYTES = 16 * 1024 * 1024
PREFETCH_ENTRIES = 16384
"""Entries listed at most (a tree of empty directories reads no file, yet must stop)."""
READ_STEP = 32
"""Files read between two turns of the event loop: its replies are not kept waiting."""
SLOW_STEP = 0.01
"""Seconds a listing or a step of reads may take before the prefetch stops: a cold or slow
disk would hold up the event loop (the push then reads on a thread, see local_io.py)."""


class LocalPrefetch:
    """Lists a local tree breadth first and reads its small files, until stopped or the
    caps are reached; `listing` and `data` hand each result over once."""

    def __init__(
        self,
        root: bytes,
        root_size: int,
        follow_links: bool,
        list_up_to: int,
        read_up_to: int,
    ) -> None:
        self._root = root
        self._root_size = root_size
        self._follow = follow_links
        self._list_up_to = list_up_to
        """Larger directories (by their size) are not listed: they take a thread, which the
        push gives them (see `Push._list_local`)."""
        self._read_up_to = read_up_to
        """Files larger than this are not read (0: only list)."""
        self._listings: dict[bytes, LocalListing] = {}
        self._data: dict[bytes, dict[bytes, bytes | Exception]] = {}
        """Contents read, by directory and name."""
        self.files = 0
        """Files read so far (their data may have been handed over since)."""
        self.entries = 0
        """Entries listed so far."""
        self.bytes = 0
        self.slow = False
        """A step took longer than SLOW_STEP: the prefetch stopped early."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._walk())

    def stop(self) -> None:
        """Stop working (results so far stay available)."""
        if self._task is not None:
            self._task.cancel()

    def listing(self, path: bytes) -> LocalListing | None:
        """The listing of `path`, if it was made (once)."""
        return self._listings.pop(path, None)

    def data(self, directory: bytes, name: bytes) -> bytes | Exception | None:
        """What reading the file `name` of `directory` gave, if it was read (once): its
        bytes, or why they could not be read, as `read_many` says."""
        read = self._data.get(directory)
        return read.pop(name, None) if read is not None else None

    def forget(self, directory: bytes) -> None:
        """Drop what is left of `directory`'s contents (files the push did not send)."""
        self._data.pop(directory, None)

    def _full(self) -> bool:
        return (
            self.slow
            or self.files >= PREFETCH_FILES
            or self.bytes >= PREFETCH_BYTES
            or self.entries >= PREFETCH_ENTRIES
        )

    def _timed(self, started: float) -> None:
        if time.monotonic() - started > SLOW_STEP:
            self.slow = True

    async def _walk(self) -> None:
        directories = deque([(self._root, self._root_size)])
        while directories and not self._full():
            path, size = directories.popleft()
            if size > self._list_up_to:
                continue
            started = time.monotonic()
            try:
                listing = list_local_dir(path, self._follow, self._root)
            except OSError:
                continue  # the push lists it again and reports why it cannot
            self._timed(started)
            self._listings[path] = listing
            self.entries += len(listing.entries)
            for entry in listing.entries:
                if entry.kind == "dir":
                    directories.append((os.path.join(path, entry.name), entry.size))
            await asyncio.sleep(0)
            if self._read_up_to and not self.slow:
                await self._read(path, listing)

    async def _read(self, path: bytes, listing: LocalListing) -> None:
        wanted = [
            (entry.name, entry.size, entry.mtime)
            for entry in listing.entries
            if entry.kind == "file" and entry.size <= self._read_up_to
        ]
        read = self._data.setdefault(path, {})
        for start in range(0, len(wanted), READ_STEP):
            if self._full():
                return
            step = wanted[start : start + min(READ_STEP, PREFETCH_FILES - self.files)]
            started = time.monotonic()
            loaded_step = read_many(path, step)
            self._timed(started)
            for (name, _size, _mtime), loaded in zip(step, loaded_step, strict=True):
                read[name] = loaded
                self.files += 1
                if isinstance(loaded, bytes):
                    self.bytes += len(loaded)
            await asyncio.sleep(0)
