"""Moving one file: pipelined requests for small files, windows of chunks for large ones.

A file is written under a temporary sibling name and renamed over its final name only
after every write succeeded, so a file is never visible half-written at its final path.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import stat
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import ParamSpec, TypeVar

from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import Channels
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import join, temp_name
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_NO_SUCH_FILE,
    FXF_CREAT,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    POSIX_RENAME,
    Attrs,
    Reply,
    SFTPClient,
    SFTPError,
)

T = TypeVar("T")
P = ParamSpec("P")

CHUNKS_IN_FLIGHT_PER_FILE = 64
RESUME_CHECK_BYTES = 64 * 1024
CHANNEL_WINDOW = 2 * 1024 * 1024
"""The SSH window OpenSSH gives each session channel: one channel moves at most this much
per round trip."""
SPREAD_TARGET_RATE = 200 * 1000 * 1000
"""Bytes per second one large file should be able to reach before channels are added."""
OPEN_ATTRS = Attrs(permissions=0o600)
"""Files are created private and get their final mode with the last FSETSTAT."""


class ChangedDuringTransfer(Exception):
    """The source file changed size or time while it was being read."""


@dataclass
class FileAttrs:
    """What to set on a written file (None leaves the server's default)."""

    mode: int | None
    mtime: int | None
    uid: int | None = None
    gid: int | None = None

    def as_sftp(self) -> Attrs:
        return Attrs(
            permissions=self.mode, mtime=self.mtime, atime=self.mtime, uid=self.uid, gid=self.gid
        )


async def request(
    channels: Channels, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run one SFTP request while holding a request slot of the server's budget."""
    async with channels.budget.request():
        return await call(*args, **kwargs)


async def _all_ok(replies: list[Reply]) -> None:
    """Wait for every reply; raise the first failure only after all have answered."""
    first: BaseException | None = None
    for reply in replies:
        try:
            SFTPClient.status_of(await reply)
        except (SFTPError, asyncio.CancelledError) as exc:
            first = first or exc
    if first is not None:
        raise first


async def rename_into_place(
    channels: Channels, client: SFTPClient, tmp: bytes, final: bytes
) -> None:
    """Atomically replace `final` with `tmp`.

    Without posix-rename@openssh.com the fallback removes `final` first: for a moment
    the name is absent, but it never holds a partial file.
    """
    if channels.has(POSIX_RENAME):
        await request(channels, client.posix_rename, tmp, final)
        return
    try:
        await request(channels, client.rename, tmp, final)
    except SFTPError:
        try:
            await request(channels, client.remove, final)
        except SFTPError as exc:
            if exc.code != FX_NO_SUCH_FILE:
                raise
        await request(channels, client.rename, tmp, final)


async def discard(channels: Channels, client: SFTPClient, path: bytes) -> None:
    """Best-effort removal of a temporary file after a failure."""
    try:
        await request(channels, client.remove, path)
    except SFTPError:
        pass


def read_small(path: bytes, size: int, mtime: int) -> bytes:
    """Read a whole local file, refusing one that changed since it was listed."""
    # O_NONBLOCK: a FIFO put in the file's place must not hang the run at open.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ChangedDuringTransfer("the file is no longer a regular file")
        data = os.read(fd, size + 1)
        while len(data) <= size and (more := os.read(fd, size + 1 - len(data))):
            data += more
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) != size or st.st_size != size or int(st.st_mtime) != mtime:
        raise ChangedDuringTransfer("the file changed while it was being read")
    return data


def read_many(directory: bytes, files: list[tuple[bytes, int, int]]) -> list[bytes | Exception]:
    """read_small for several files of one directory in one go."""
    loaded: list[bytes | Exception] = []
    for name, size, mtime in files:
        try:
            loaded.append(read_small(os.path.join(directory, name), size, mtime))
        except (OSError, ChangedDuringTransfer) as exc:
            loaded.append(exc)
    return loaded


async def send_file(
    channels: Channels,
    local_path: bytes,
    remote_dir: bytes,
    name: bytes,
    size: int,
    mtime: int,
    attrs: FileAttrs,
    *,
    atomic: bool,
    resume: bool,
    block_size: int,
    large_threshold: int,
    extra_clients: list[SFTPClient] | None = None,
    data: bytes | None = None,
) -> int:
    """Write one local file to remote_dir/name; returns the bytes sent.

    `data` is the content of a small file already read (by read_small) by the caller.
    """
    final = join(remote_dir, name)
    block = channels.write_block(block_size)
    resumable = resume and size >= large_threshold
    target = join(remote_dir, temp_name(name, resumable)) if (atomic or resumable) else final
    client = channels.pick() if size < large_threshold else await channels.pick_large()

    if size < large_threshold:
        if data is not None:
            await _send_small(channels, client, data, target, final, block, attrs)
            return size
        async with channels.budget.bytes.hold(size):
            data = await asyncio.to_thread(read_small, local_path, size, mtime)
            await _send_small(channels, client, data, target, final, block, attrs)
        return size

    try:
        sent = await _send_large(
            channels,
            client,
            local_path,
            target,
            size,
            mtime,
            attrs,
            block,
            resumable,
            await spread_over(channels, client) + (extra_clients or []),
        )
        if target != final:
            await rename_into_place(channels, client, target, final)
    except BaseException:
        if target != final and not resumable:  # a resumable partial is kept on purpose
            await discard(channels, client, target)
        raise
    return sent


async def _send_small(
    channels: Channels,
    client: SFTPClient,
    data: bytes,
    target: bytes,
    final: bytes,
    block: int,
    attrs: FileAttrs,
) -> None:
    """OPEN, then every WRITE, FSETSTAT and CLOSE back to back, then the rename."""
    size = len(data)
    budget = channels.budget
    async with budget.handle():
        handle = await request(
            channels, client.open, target, FXF_WRITE | FXF_CREAT | FXF_TRUNC, OPEN_ATTRS
        )
        # WRITEs, FSETSTAT and CLOSE go out back to back, in one channel write.
        sends = [
            partial(client.write_nowait, handle, offset, data[offset : offset + block])
            for offset in range(0, size, block)
        ]
        sends.append(partial(client.fsetstat_nowait, handle, attrs.as_sftp()))
        sends.append(partial(client.close_nowait, handle))
        try:
            if budget.batch_fits(len(sends)):
                async with budget.requests(len(sends)):
                    await _all_ok([send() for send in sends])
            else:  # a request cap below one file's requests: one slot at a time
                await _all_ok([await budget.issue(send) for send in sends])
        except BaseException:
            if target != final:
                await discard(channels, client, target)
            raise
    if target != final:
        try:
            await rename_into_place(channels, client, target, final)
        except BaseException:
            await discard(channels, client, target)
            raise


async def spread_over(channels: Channels, client: SFTPClient) -> list[SFTPClient]:
    """The other channels a large file's chunks should also use.

    Every channel has its own SSH window (OpenSSH gives 2 MiB), which caps one channel at
    window / round trip: 40 MB/s at 50 ms. Spreading over more channels lifts that cap but
    costs CPU on both ends, a loss on a fast link (measured: 1 channel 322 MB/s, 4 channels
    258 MB/s at 0 ms; at 50 ms 1 channel 34 MB/s, 4 channels 82 MB/s).
    """
    await channels.measured()
    wanted = math.ceil(channels.rtt * SPREAD_TARGET_RATE / CHANNEL_WINDOW)
    if wanted > 1:
        await channels.ready()
    others = [other for other in channels.clients if other is not client]
    return others[: max(0, min(len(others), wanted - 1))]


async def _resume_offset(
    channels: Channels, client: SFTPClient, local_path: bytes, target: bytes, size: int
) -> int:
    """Length of a partial remote file that matches the local file's start (0 if none)."""
    try:
        partial = await request(channels, client.lstat, target)
    except SFTPError:
        return 0
    length = partial.size or 0
    if not partial.is_reg or length <= 0 or length > size:
        return 0
    check = min(RESUME_CHECK_BYTES, length)
    start = length - check
    handle = await request(channels, client.open, target, FXF_READ)
    try:
        remote = await request(channels, client.read, handle, start, check)
    finally:
        await request(channels, client.close, handle)

    def local_tail() -> bytes:
        with open(local_path, "rb") as source:
            source.seek(start)
            return source.read(check)

    return length if remote == await asyncio.to_thread(local_tail) else 0


async def _send_large(
    channels: Channels,
    client: SFTPClient,
    local_path: bytes,
    target: bytes,
    size: int,
    mtime: int,
    attrs: FileAttrs,
    block: int,
    resumable: bool,
    extra_clients: list[SFTPClient],
) -> int:
    """Chunks of one file with many writes in flight, spread over every given channel."""
    offset = await _resume_offset(channels, client, local_path, target, size) if resumable else 0
    flags = FXF_WRITE | FXF_CREAT | (0 if offset else FXF_TRUNC)
    handles: list[tuple[SFTPClient, bytes]] = []
    window = asyncio.Semaphore(CHUNKS_IN_FLIGHT_PER_FILE * (1 + len(extra_clients)))
    failures: list[BaseException] = []
    start_offset = offset
    memory = channels.budget.bytes
    async with channels.budget.handle():
        first = await request(channels, client.open, target, flags, Attrs(permissions=0o600))
        handles.append((client, first))
        try:
            for extra in extra_clients:
                handles.append(
                    (
                        extra,
                        await request(channels, extra.open, target, FXF_WRITE),
                    )
                )

            async def write_chunk(which: int, at: int, data: bytes) -> None:
                chan, handle = handles[which]
                try:
                    await request(channels, chan.write, handle, at, data)
                except BaseException as exc:
                    failures.append(exc)
                finally:
                    window.release()
                    memory.release(len(data))

            with open(local_path, "rb") as source:
                source.seek(offset)
                async with asyncio.TaskGroup() as group:
                    index = 0
                    while offset < size and not failures:
                        want = await memory.acquire(min(block * 4, size - offset))
                        data = await asyncio.to_thread(source.read, want)
                        memory.release(want - len(data))
                        if not data:
                            break
                        for piece in range(0, len(data), block):
                            await window.acquire()
                            group.create_task(
                                write_chunk(
                                    index % len(handles),
                                    offset + piece,
                                    data[piece : piece + block],
                                )
                            )
                            index += 1
                        offset += len(data)
                st = os.fstat(source.fileno())
            if failures:
                raise failures[0]
            if offset != size or st.st_size != size or int(st.st_mtime) != mtime:
                raise ChangedDuringTransfer("the file changed while it was being read")
            await request(channels, client.fsetstat, first, attrs.as_sftp())
        finally:
            for chan, handle in handles:
                try:
                    await request(channels, chan.close, handle)
                except SFTPError:
                    pass
    return size - start_offset


def store_local(
    tmp: bytes, final: bytes, chunks: list[bytes], mode: int | None, mtime: int | None
) -> None:
    """Write a whole file: to `tmp`, then renamed over `final`; or, without a temporary
    name (tmp == final), straight to `final` after removing what was there (blocking)."""
    if tmp == final:
        _unlink_quiet(final)
    write_local(tmp, chunks, mode, mtime)
    if tmp != final:
        os.replace(tmp, final)


StoreJob = tuple[bytes, bytes, list[bytes], int | None, int | None]
"""What store_local needs for one file: tmp, final, chunks, mode, mtime."""


def store_many(files: list[StoreJob]) -> list[OSError | None]:
    """store_local for several files in one go; a failed file's
    temporary name is removed and its error returned in its place."""
    results: list[OSError | None] = []
    for tmp, final, chunks, mode, mtime in files:
        try:
            store_local(tmp, final, chunks, mode, mtime)
        except OSError as exc:
            if tmp != final:
                with contextlib.suppress(OSError):
                    _unlink_quiet(tmp)
            results.append(exc)
        else:
            results.append(None)
    return results


def write_local(tmp: bytes, chunks: list[bytes], mode: int | None, mtime: int | None) -> None:
    """Create a new local file from chunks and set its mode and times (blocking)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        for chunk in chunks:
            os.write(fd, chunk) if len(chunk) < 65536 else _write_all(fd, chunk)
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime), follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def receive_file(
    channels: Channels,
    remote_path: bytes,
    local_dir: bytes,
    name: bytes,
    size: int,
    mode: int | None,
    mtime: int | None,
    *,
    atomic: bool,
    block_size: int,
) -> int:
    """Read remote_path into local_dir/name; returns bytes received."""
    final = os.path.join(local_dir, name)
    tmp = os.path.join(local_dir, temp_name(name)) if atomic else final
    block = channels.read_block(block_size)
    whole = size <= block * CHUNKS_IN_FLIGHT_PER_FILE
    # measured, 2 x 512 MiB at 0 ms: 2.0-2.2 s sharing a channel, 2.6-2.9 s on one each;
    # at 50 ms the windows decide: 7.8 s sharing, 4.7 s on one each
    if not whole:
        await channels.measured()
    client = channels.pick() if whole else await channels.pick_large(channels.window_bound)
    async with channels.budget.handle():
        handle = await request(channels, client.open, remote_path, FXF_READ)
        closing: Reply | None = None
        try:
            if whole:
                async with channels.budget.bytes.hold(size):
                    chunks = await _read_whole(channels, client, handle, size, block)
                    # the CLOSE is answered while the file is written here, in one thread hop
                    closing = await channels.budget.issue(partial(client.close_nowait, handle))
                    await asyncio.to_thread(store_local, tmp, final, chunks, mode, mtime)
                return size
            await _read_large(
                channels, client, handle, size, block, tmp, mode, mtime, atomic, final
            )
        except BaseException:
            if tmp != final:
                await asyncio.to_thread(_unlink_quiet, tmp)
            raise
        finally:
            try:
                if closing is None:
                    await request(channels, client.close, handle)
                else:
                    SFTPClient.status_of(await closing)
            except SFTPError:
                pass
    if tmp != final:
        await asyncio.to_thread(os.replace, tmp, final)
    return size


def _unlink_quiet(path: bytes) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _read_whole(
    channels: Channels, client: SFTPClient, handle: bytes, size: int, block: int
) -> list[bytes]:
    """All reads of a small file at once, plus one past the end to notice growth."""
    offsets = [*range(0, size, block), size]
    replies = [
        await channels.budget.issue(partial(client.read_nowait, handle, at, block))
        for at in offsets
    ]
    results: list[bytes | BaseException] = []
    for reply in replies:
        try:
            results.append(SFTPClient.data_of(await reply))
        except (SFTPError, asyncio.CancelledError) as exc:
            results.append(exc)
    chunks: list[bytes] = []
    for at, result in zip(offsets, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        if at == size:
            if result:
                raise ChangedDuringTransfer("the file grew while it was being read")
            break
        want = min(block, size - at)
        if len(result) < want:
            if not result:
                raise ChangedDuringTransfer("the file shrank while it was being read")
            result += await _read_exact(
                channels, client, handle, at + len(result), want - len(result), block
            )
        chunks.append(result)
    return chunks


async def _read_exact(
    channels: Channels, client: SFTPClient, handle: bytes, at: int, length: int, block: int
) -> bytes:
    parts: list[bytes] = []
    while length > 0:
        data = await request(channels, client.read, handle, at, min(block, length))
        if not data:
            raise ChangedDuringTransfer("the file shrank while it was being read")
        parts.append(data)
        at += len(data)
        length -= len(data)
    return b"".join(parts)


async def _read_large(
    channels: Channels,
    client: SFTPClient,
    handle: bytes,
    size: int,
    block: int,
    tmp: bytes,
    mode: int | None,
    mtime: int | None,
    atomic: bool,
    final: bytes,
) -> None:
    """Reads with a window in flight, written to the local file in order as they land."""
    if not atomic:
        await asyncio.to_thread(_unlink_quiet, final)
    fd = await asyncio.to_thread(
        os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
    )
    memory = channels.budget.bytes
    window: deque[tuple[int, int, Reply]] = deque()
    batch: list[bytes] = []
    batch_bytes = 0
    next_offset = 0
    try:
        while True:
            # Top the window up; wait for memory only while holding none of this file's.
            while next_offset < size and len(window) < CHUNKS_IN_FLIGHT_PER_FILE:
                want = min(block, size - next_offset)
                if window or batch:
                    taken = memory.try_acquire(want)
                    if taken is None:
                        break
                else:
                    taken = await memory.acquire(want)
                read = partial(client.read_nowait, handle, next_offset, want)
                window.append((next_offset, taken, await channels.budget.issue(read)))
                next_offset += want
            if not window:
                break
            at, taken, reply = window.popleft()
            batch_bytes += taken
            data = SFTPClient.data_of(await reply)
            want = min(block, size - at)
            if len(data) < want:
                if not data:
                    raise ChangedDuringTransfer("the file shrank while it was being read")
                data += await _read_exact(
                    channels, client, handle, at + len(data), want - len(data), block
                )
            batch.append(data)
            if len(batch) >= 16 or not window:
                await asyncio.to_thread(_write_chunks, fd, batch)
                batch = []
                memory.release(batch_bytes)
                batch_bytes = 0
        tail = await request(channels, client.read, handle, size, block)
        if tail:
            raise ChangedDuringTransfer("the file grew while it was being read")
        if mode is not None:
            await asyncio.to_thread(os.fchmod, fd, mode)
    finally:
        for _at, taken, reply in window:  # answered or failed, they hold no more memory
            reply.cancel()
            batch_bytes += taken
        memory.release(batch_bytes)
        await asyncio.to_thread(os.close, fd)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime), follow_symlinks=False)


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        _write_all(fd, chunk)
