"""What the modules, the connection plugin and the benchmark call.

Each call opens its own SFTP channels on the given session, runs, closes them, and
returns a finished Report. Errors that stop a whole run (source missing, connection
lost, fail_fast) are raised as TransferError with one sentence; per-path failures are
in Report.failures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import SessionLike
from ansible_collections.pipelined.sftp.plugins.plugin_utils.collector import quiet_collector
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import (
    Channels,
    FailFast,
    open_channels,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
    RemoveOptions,
    TransferOptions,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import UnsafeName
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPError
from ansible_collections.pipelined.sftp.plugins.plugin_utils.pull import Pull
from ansible_collections.pipelined.sftp.plugins.plugin_utils.push import Push, SourceError
from ansible_collections.pipelined.sftp.plugins.plugin_utils.remove import (
    UnsafeRemovePath,
    remove_paths,
    validate_remove_path,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import ProgressCallback, Report

CHANNELS_PER_CONNECTION = 4
"""SFTP channels opened per connection. OpenSSH runs one sftp-server per channel, which
answers one request at a time, and gives each channel a 2 MiB window: large files spread
their chunks over all of them; the small files of a tree use two."""


class TransferError(Exception):
    """A run stopped as a whole; str() is one sentence. `report` holds what was done."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def _first_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _run(report: Report, channels: Channels, work: object) -> Report:
    try:
        with quiet_collector():
            await work  # type: ignore[misc]
    except (Exception, BaseExceptionGroup) as exc:
        # Requests sent behind the SFTP INIT fail when the session does not start: the
        # reason is why it did not (a ConnectError from connect, like a refused channel).
        start_error = channels.start_error
        if start_error is not None and not isinstance(start_error, (SFTPError, OSError)):
            raise start_error from None
        cause = start_error or _first_cause(exc)
        if isinstance(cause, (SourceError, FailFast, SFTPError, UnsafeName, OSError)):
            raise TransferError(str(cause), report.finish()) from cause
        raise
    finally:
        await channels.aclose()
    return report.finish()


async def _extra_channels(
    session: SessionLike, options: TransferOptions
) -> tuple[list[object], Channels | None]:
    """Extra connections for spreading large files (options.connections > 1)."""
    if options.connections <= 1:
        return [], None
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session

    spec = getattr(session, "spec", None)
    if spec is None:
        return [], None
    sessions = [await open_session(spec) for _extra in range(options.connections - 1)]
    channels = await open_channels(sessions, 1, options.max_requests)
    return list(sessions), channels


async def push(
    session: SessionLike,
    src: str,
    dest: str,
    options: TransferOptions,
    progress: ProgressCallback | None = None,
) -> Report:
    """Copy a local file or tree to the server (ansible.builtin.copy's path rules)."""
    report = Report()
    channels = await open_channels(
        [session], CHANNELS_PER_CONNECTION, options.max_requests, learn_later=True
    )
    if os.path.isdir(src):
        channels.start_tree()
    try:
        extra_sessions, extra = await _extra_channels(session, options)
    except BaseException:
        await channels.aclose()
        raise
    try:
        runner = Push(session, channels, options, report, progress, extra)
        return await _run(report, channels, runner.push(src, dest))
    finally:
        if extra is not None:
            await extra.aclose()
        for other in extra_sessions:
            await other.aclose()  # type: ignore[attr-defined]


async def pull(
    session: SessionLike,
    src: str,
    dest: str,
    options: TransferOptions,
    progress: ProgressCallback | None = None,
) -> Report:
    """Copy a remote file or tree to exactly the local path `dest`."""
    report = Report()
    channels = await open_channels(
        [session], CHANNELS_PER_CONNECTION, options.max_requests, learn_later=True
    )
    runner = Pull(session, channels, options, report, progress)
    return await _run(report, channels, runner.pull(src, dest))


async def remove(
    session: SessionLike,
    paths: Sequence[str],
    options: RemoveOptions,
    progress: ProgressCallback | None = None,
) -> Report:
    """Remove remote files and trees; absent paths are no change. Refuses unsafe paths."""
    for path in paths:
        validate_remove_path(path)
    report = Report()
    channels = await open_channels(
        [session], CHANNELS_PER_CONNECTION, options.max_requests, learn_later=True
    )
    work = remove_paths(
        channels,
        [os.fsencode(path.rstrip("/")) for path in paths],
        report,
        fail_fast=options.fail_fast,
        check_mode=options.check_mode,
        progress=progress,
    )
    return await _run(report, channels, work)


__all__ = ["TransferError", "UnsafeRemovePath", "pull", "push", "remove", "validate_remove_path"]
