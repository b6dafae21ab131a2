"""Single-file put and get for the connection plugin, through the transfer core.

``put`` lands a local file at exactly the remote path given; ``get`` writes a remote file to
exactly the local path given. Both go through the core's ``api.push`` / ``api.pull``.
Nothing here imports Ansible.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXF_CREAT,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    Attrs,
    SFTPClient,
    SFTPError,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import TransferOptions

WINDOW = 64
"""Read or write requests in flight for one file."""

PUT_OPTIONS = TransferOptions(preserve_times=False, compare="always", atomic=False)
GET_OPTIONS = TransferOptions(preserve_times=False, compare="always", atomic=True)


class TransferError(Exception):
    """A put or get failed; str(e) is one sentence naming the path and the cause."""


def _core_api() -> Any | None:
    try:
        from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
    except ImportError:
        return None
    return api


def _raise_failures(report: Any, what: str) -> None:
    failures = getattr(report, "failures", None)
    if failures:
        first = failures[0]
        raise TransferError(f"{what} failed: {first.path}: {first.reason}")


async def put(session: Any, local: str, remote: str) -> None:
    """Copy the local file ``local`` to exactly ``remote`` (overwritten if present)."""
    api = _core_api()
    if api is not None:
        report = await api.push(session, local, remote, PUT_OPTIONS)
        _raise_failures(report, f"Copying {local} to {remote}")
        return
    client = await session.open_sftp()
    try:
        await _put(client, local, remote)
    except SFTPError as exc:
        raise TransferError(f"Copying {local} to {remote} failed: {exc}") from None
    except OSError as exc:
        raise TransferError(f"Copying {local} to {remote} failed: {exc.strerror}.") from None
    finally:
        await client.aclose()


async def get(session: Any, remote: str, local: str) -> None:
    """Copy the remote file ``remote`` to exactly the local path ``local``."""
    api = _core_api()
    if api is not None:
        report = await api.pull(session, remote, local, GET_OPTIONS)
        _raise_failures(report, f"Fetching {remote} to {local}")
        return
    client = await session.open_sftp()
    try:
        await _get(client, remote, local)
    except SFTPError as exc:
        raise TransferError(f"Fetching {remote} to {local} failed: {exc}") from None
    except OSError as exc:
        raise TransferError(f"Fetching {remote} to {local} failed: {exc.strerror}.") from None
    finally:
        await client.aclose()


async def _put(client: SFTPClient, local: str, remote: str) -> None:
    limits = await client.limits()
    block = max(4096, min(limits.max_write, 256 * 1024))
    with open(local, "rb") as source:
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        handle = await client.open(
            os.fsencode(remote), FXF_WRITE | FXF_CREAT | FXF_TRUNC, Attrs(permissions=mode)
        )
        try:
            slots = asyncio.Semaphore(WINDOW)

            async def write(offset: int, data: bytes) -> None:
                try:
                    await client.write(handle, offset, data)
                finally:
                    slots.release()

            async with asyncio.TaskGroup() as group:
                offset = 0
                while True:
                    await slots.acquire()
                    data = source.read(block)
                    if not data:
                        slots.release()
                        break
                    group.create_task(write(offset, data))
                    offset += len(data)
        finally:
            await client.close(handle)


async def _get(client: SFTPClient, remote: str, local: str) -> None:
    limits = await client.limits()
    block = max(4096, min(limits.max_read, 256 * 1024))
    path = os.fsencode(remote)
    size = (await client.stat(path)).size or 0
    handle = await client.open(path, FXF_READ)
    tmp = f"{local}.psftp-part"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            slots = asyncio.Semaphore(WINDOW)

            async def read(offset: int) -> None:
                try:
                    pos = offset
                    end = min(offset + block, size)
                    while pos < end:  # short reads: ask for the rest
                        data = await client.read(handle, pos, end - pos)
                        if not data:
                            return
                        os.pwrite(fd, data, pos)
                        pos += len(data)
                finally:
                    slots.release()

            async with asyncio.TaskGroup() as group:
                for offset in range(0, size, block):
                    await slots.acquire()
                    group.create_task(read(offset))
            # a file that grew while read: take the rest sequentially
            pos = size
            for _ in range(1 << 20):
                data = await client.read(handle, pos, block)
                if not data:
                    break
                os.pwrite(fd, data, pos)
                pos += len(data)
        finally:
            os.close(fd)
        os.replace(tmp, local)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        await client.close(handle)
