"""Directory listings as plain entries: local (os.scandir) and remote (READDIR chunks)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Literal

from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Budget
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import (
    UnsafeName,
    check_name,
    join,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    Attrs,
    Name,
    SFTPClient,
    SFTPError,
)

Kind = Literal["file", "dir", "link", "special"]

READDIR_AHEAD = 4


@dataclass(slots=True)
class Entry:
    """One directory entry, local or remote."""

    name: bytes
    kind: Kind
    size: int = 0
    mtime: int = 0
    mode: int = 0
    """Permission bits only (0o7777)."""
    target: bytes | None = None
    """Symlink target, for kind == "link" (read lazily for remote entries)."""
    uid: int | None = None
    gid: int | None = None


def kind_of(st_mode: int) -> Kind:
    if stat.S_ISREG(st_mode):
        return "file"
    if stat.S_ISDIR(st_mode):
        return "dir"
    if stat.S_ISLNK(st_mode):
        return "link"
    return "special"


def entry_from_stat(name: bytes, st: os.stat_result) -> Entry:
    return Entry(
        name,
        kind_of(st.st_mode),
        st.st_size,
        int(st.st_mtime),
        stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
    )


def entry_from_attrs(name: bytes, attrs: Attrs) -> Entry:
    permissions = attrs.permissions or 0
    kind: Kind = kind_of(permissions) if attrs.permissions is not None else "special"
    return Entry(
        name,
        kind,
        attrs.size or 0,
        attrs.mtime or 0,
        stat.S_IMODE(permissions),
        uid=attrs.uid,
        gid=attrs.gid,
    )


@dataclass(slots=True)
class LocalListing:
    entries: list[Entry]
    escaped: list[bytes]
    """Names of symlinks skipped under links=follow because they leave the source root."""
    loops: list[bytes] = field(default_factory=list)
    """Names of directory symlinks skipped under links=follow: they lead back to `path`
    or one of its ancestors, so following them would never end."""


def real_chain(path: bytes, root: bytes) -> set[bytes]:
    """Real paths of `root`, of `path` and of every directory between them."""
    chain = {os.path.realpath(root)}
    current = root
    rel = os.path.relpath(path, root)
    if rel != b".":
        for part in rel.split(b"/"):
            current = os.path.join(current, part)
            chain.add(os.path.realpath(current))
    return chain


def list_local_dir(path: bytes, follow_links: bool, root: bytes) -> LocalListing:
    """Entries of one local directory (blocking: see Push._list_local)."""
    entries: list[Entry] = []
    escaped: list[bytes] = []
    loops: list[bytes] = []
    chain: set[bytes] | None = None
    real_root = os.path.realpath(root)
    with os.scandir(path) as it:
        for item in it:
            st = item.stat(follow_symlinks=False)
            entry = entry_from_stat(item.name, st)
            if entry.kind == "link":
                if follow_links:
                    resolved = os.path.realpath(item.path)
                    inside = resolved == real_root or resolved.startswith(real_root + b"/")
                    if not inside or not os.path.exists(resolved):
                        escaped.append(item.name)
                        continue
                    entry = entry_from_stat(item.name, os.stat(item.path))
                    if entry.kind == "dir":
                        if chain is None:
                            chain = real_chain(path, root)
                        if resolved in chain:
                            loops.append(item.name)
                            continue
                else:
                    entry.target = os.readlink(item.path)
            entries.append(entry)
    return LocalListing(entries, escaped, loops)


def list_local_dir_or_empty(path: bytes) -> dict[bytes, Entry]:
    """Entries of a local directory by name; empty when it does not exist."""
    try:
        listing = list_local_dir(path, False, path)
    except FileNotFoundError:
        return {}
    return {entry.name: entry for entry in listing.entries}


async def list_remote_dir(
    client: SFTPClient,
    budget: Budget,
    path: bytes,
    unsafe: list[bytes],
    opened: Awaitable[bytes] | None = None,
) -> AsyncIterator[list[Entry]]:
    """Yield a remote directory's entries chunk by chunk, as READDIR replies arrive.

    Names that are not one plain path component are left out and added to `unsafe`.
    `opened`: the directory's OPENDIR on `client`, already sent (see `open_dir_early`).
    """
    async with budget.handle():
        if opened is not None:
            handle = await opened
        else:
            async with budget.request(listing=True):
                handle = await client.opendir(path)
        # An in-order server answers READDIRs sent back to back with successive chunks,
        # so keep several in flight; others get one at a time.
        ahead = READDIR_AHEAD if client.ordered else 1
        pending: deque[asyncio.Task[list[Name] | None]] = deque()

        async def readdir() -> list[Name] | None:
            async with budget.request(listing=True):
                return await client.readdir(handle)

        try:
            for _request in range(ahead):
                pending.append(asyncio.ensure_future(readdir()))
            while pending:
                names = await pending.popleft()
                if names is None:
                    break
                pending.append(asyncio.ensure_future(readdir()))
                chunk: list[Entry] = []
                for item in names:
                    if item.filename in (b".", b".."):
                        continue
                    try:
                        check_name(item.filename)
                    except UnsafeName:
                        unsafe.append(item.filename)
                        continue
                    chunk.append(entry_from_attrs(item.filename, item.attrs))
                if chunk:
                    yield chunk
        finally:
            budget.spawn(_close_after(client, budget, handle, list(pending)))


def open_dir_early(client: SFTPClient, budget: Budget, path: bytes) -> asyncio.Task[bytes]:
    """Send a directory's OPENDIR now, before it is known to be one: pass the task to
    `list_remote_dir`, or to `drop_early_dir` if it is not listed."""

    async def opendir() -> bytes:
        async with budget.request(listing=True):
            return await client.opendir(path)

    return asyncio.ensure_future(opendir())


def drop_early_dir(client: SFTPClient, budget: Budget, opened: asyncio.Task[bytes]) -> None:
    """Close the handle of an `open_dir_early` that is not listed (once it is open)."""

    async def close() -> None:
        try:
            handle = await opened
        except (SFTPError, asyncio.CancelledError):
            return
        await _close_after(client, budget, handle, [])

    budget.spawn(close())


async def _close_after(
    client: SFTPClient,
    budget: Budget,
    handle: bytes,
    readdirs: list[asyncio.Task[list[Name] | None]],
) -> None:
    """Close a directory handle once its outstanding READDIRs have answered."""
    for task in readdirs:
        try:
            await task
        except (asyncio.CancelledError, SFTPError):
            pass
    async with budget.request(listing=True):
        try:
            await client.close(handle)
        except SFTPError:
            pass


async def remote_dir_entries(
    client: SFTPClient, budget: Budget, path: bytes, unsafe: list[bytes]
) -> dict[bytes, Entry]:
    """All entries of a remote directory by name."""
    result: dict[bytes, Entry] = {}
    async for chunk in list_remote_dir(client, budget, path, unsafe):
        for entry in chunk:
            result[entry.name] = entry
    return result


async def read_link_target(client: SFTPClient, budget: Budget, path: bytes, entry: Entry) -> bytes:
    if entry.target is None:
        async with budget.request(listing=True):
            entry.target = await client.readlink(path)
    return entry.target


__all__ = ["Entry", "join", "list_local_dir", "list_remote_dir", "remote_dir_entries"]
