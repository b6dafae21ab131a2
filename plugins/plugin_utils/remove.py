"""Parallel bottom-up removal of remote trees under the server's budget.

Symlinks are removed, never followed. A directory is removed once everything below it
is gone; files of many directories are removed concurrently, bounded like transfers.
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass
from functools import partial

from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import (
    Channels,
    DirNode,
    TreeRun,
    share_files,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import join
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_NO_SUCH_FILE,
    FXP_REMOVE,
    Attrs,
    RawReply,
    Reply,
    SFTPClient,
    SFTPError,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import ProgressCallback, Report
from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import request
from ansible_collections.pipelined.sftp.plugins.plugin_utils.walk import list_remote_dir


class UnsafeRemovePath(ValueError):
    """A path remove refuses to touch."""


def validate_remove_path(path: str) -> None:
    """Refuse "/", empty, relative and ".." paths, with one sentence naming the path."""
    if not path or not path.strip():
        raise UnsafeRemovePath("refusing to remove an empty path")
    if not path.startswith("/"):
        raise UnsafeRemovePath(f"refusing to remove {path!r}: the path must be absolute")
    if ".." in path.split("/"):
        raise UnsafeRemovePath(f"refusing to remove {path!r}: the path must not contain '..'")
    if posixpath.normpath(path) == "/" or (path.startswith("//") and not path.strip("/")):
        raise UnsafeRemovePath(f"refusing to remove {path!r}: it is the root directory")


@dataclass
class _Dir:
    path: bytes


async def remove_tree(
    channels: Channels,
    path: bytes,
    report: Report,
    *,
    max_files: int | None,
    fail_fast: bool,
    check_mode: bool,
    progress: ProgressCallback | None = None,
    display_root: bytes | None = None,
) -> None:
    """Remove the directory `path` and everything below it; counts go to `report`.
    `max_files`: entries in flight (None: twice what the round trip asks for, from the
    minimum until it is measured)."""
    run: TreeRun[_Dir] = TreeRun(report, 0, fail_fast, progress)
    share_files(run, channels, max_files, halve=False, factor=2)

    def rel(full: bytes) -> bytes:
        return full if display_root is None else display_root + full[len(path) :]

    async def rmdir(full: bytes) -> None:
        if check_mode:
            rmdir_done(full, None)
            return
        reply = await channels.budget.issue(partial(channels.main.rmdir_nowait, full))
        if channels.main.ordered:
            # The parent's RMDIR follows on the same channel: a server that answers in
            # order has removed this directory by then, so the parent need not wait.
            run.spawn(rmdir_answered(full, reply))
        else:
            await rmdir_answered(full, reply)

    async def rmdir_answered(full: bytes, reply: Reply) -> None:
        try:
            SFTPClient.status_of(await reply, full)
        except SFTPError as exc:
            rmdir_done(full, exc)
        else:
            rmdir_done(full, None)

    def rmdir_done(full: bytes, error: SFTPError | None) -> None:
        if error is not None and error.code != FX_NO_SUCH_FILE:
            run.fail(rel(full), error)
            return
        report.deleted += 1
        report.deleted_paths.add(rel(full).decode("utf-8", "backslashreplace") + "/")

    async def remove_file(full: bytes) -> None:
        if not check_mode:
            try:
                await request(channels, channels.pick().remove, full)
            except SFTPError as exc:
                if exc.code != FX_NO_SUCH_FILE:
                    run.fail(rel(full), exc)
                return
        removed(full)

    def removed(full: bytes) -> None:
        report.deleted += 1
        report.deleted_paths.add(rel(full).decode("utf-8", "backslashreplace"))

    async def start_remove(node: DirNode, full: bytes) -> None:
        """remove_file as a reply callback, without a task (see chains.py)."""
        budget = channels.budget
        finished = await run.reserve_file(node, partial(budget.hold_first, handle=False))

        def answered(reply: RawReply | SFTPError) -> None:
            budget.release_requests(1)
            try:
                SFTPClient.status_of(reply, full)
            except SFTPError as exc:
                if exc.code != FX_NO_SUCH_FILE:
                    run.fail_later(finished, rel(full), exc)
                    return
            else:
                removed(full)
            finished()

        try:
            channels.pick().send(FXP_REMOVE, SFTPClient.path_payload(full), answered)
        except SFTPError as exc:
            answered(exc)

    async def process(job: _Dir, node: DirNode) -> None:
        unsafe: list[bytes] = []
        channels.start_tree()  # a tree's files are removed over two channels
        try:
            async for chunk in list_remote_dir(channels.main, channels.budget, job.path, unsafe):
                channels.listed(len(chunk))
                for entry in chunk:
                    full = join(job.path, entry.name)
                    if entry.kind == "dir":
                        run.add_dir(_Dir(full), node, partial(rmdir, full))
                    elif not check_mode:
                        await start_remove(node, full)
                    else:
                        await run.start_file(node, remove_file, full)
        except SFTPError as exc:
            if exc.code != FX_NO_SUCH_FILE:
                run.fail(rel(job.path), exc)
        for name in unsafe:
            run.fail(rel(job.path), f"the server listed an unsafe name {name!r}; it was left alone")

    run.add_dir(_Dir(path), None, partial(rmdir, path))
    await run.run(process)


async def remove_paths(
    channels: Channels,
    paths: list[bytes],
    report: Report,
    *,
    max_files: int | None = None,
    fail_fast: bool,
    check_mode: bool,
    progress: ProgressCallback | None = None,
) -> None:
    """Remove each path: absent ones are left as they are (no change). `max_files`:
    entries in flight per tree (None: twice what the round trip asks for)."""
    for index, path in enumerate(paths):
        if index == 0:  # looked up together with the server's limits (see open_channels)
            _learned, found = await asyncio.gather(channels.learned(), _lstat(channels, path))
        else:
            found = await _lstat(channels, path)
        if isinstance(found, SFTPError):
            if found.code == FX_NO_SUCH_FILE:
                continue
            report.fail(path.decode("utf-8", "backslashreplace"), found.reason)
            if fail_fast:
                return
            continue
        if found.is_dir:
            await remove_tree(
                channels,
                path,
                report,
                max_files=max_files,
                fail_fast=fail_fast,
                check_mode=check_mode,
                progress=progress,
            )
        else:
            if not check_mode:
                try:
                    await request(channels, channels.main.remove, path)
                except SFTPError as exc:
                    report.fail(path.decode("utf-8", "backslashreplace"), exc.reason)
                    if fail_fast:
                        return
                    continue
            report.deleted += 1
            report.deleted_paths.add(path.decode("utf-8", "backslashreplace"))


async def _lstat(channels: Channels, path: bytes) -> Attrs | SFTPError:
    try:
        return await request(channels, channels.main.lstat, path)
    except SFTPError as exc:
        return exc
