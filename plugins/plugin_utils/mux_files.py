"""Single-file put and get for the connection plugin, through the transfer core.

``put`` lands a local file at exactly the remote path given; ``get`` writes a remote file to
exactly the local path given. Both run the core's ``api.push`` / ``api.pull``, imported on
first use so tasks that move no file never load the core. Nothing here imports Ansible.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions

PUT_OPTIONS = TransferOptions(preserve_times=False, compare="always", atomic=False)
"""Ansible puts to fresh temporary paths and fixes modes itself: no compare, no rename."""
GET_OPTIONS = TransferOptions(preserve_times=False, compare="always", atomic=True)


class TransferError(Exception):
    """A put or get failed; str(e) is one sentence naming the path and the cause."""


def _check(report: Any, what: str) -> None:
    if report.failures:
        first = report.failures[0]
        raise TransferError(f"{what} failed: {first.path}: {first.reason}")


async def put(session: Any, local: str, remote: str) -> None:
    """Copy the local file ``local`` to exactly ``remote`` (overwritten if present)."""
    from ansible_collections.pipelined.sftp.plugins.plugin_utils import api

    what = f"Copying {local} to {remote}"
    try:
        report = await api.push(session, local, remote, PUT_OPTIONS)
    except api.TransferError as exc:
        raise TransferError(f"{what} failed: {exc}") from None
    _check(report, what)


async def get(session: Any, remote: str, local: str) -> None:
    """Copy the remote file ``remote`` to exactly the local path ``local``."""
    from ansible_collections.pipelined.sftp.plugins.plugin_utils import api

    what = f"Fetching {remote} to {local}"
    try:
        report = await api.pull(session, remote, local, GET_OPTIONS)
    except api.TransferError as exc:
        raise TransferError(f"{what} failed: {exc}") from None
    _check(report, what)
