# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of pipelined_fetch: pull a remote file or tree to the controller over SFTP."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ansible_collections.pipelined.sftp.plugins.module_utils.argspecs import FETCH_ARGUMENT_SPEC
from ansible_collections.pipelined.sftp.plugins.plugin_utils.action_base import (
    Job,
    PipelinedAction,
    TaskError,
    reject_tilde,
    transfer_options,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import (
    ProgressCallback,
    Report,
)


def fetch_destination(
    src: str, dest: str, *, flat: bool, hostname: str, dwim: Callable[[str], str]
) -> str:
    """The exact local path `src` becomes, following ansible.builtin.fetch's layout.

    Not flat: dest/<hostname>/<src without leading '/'>. Flat: dest itself, or
    dest/<basename of src> when dest ends with '/'. A relative dest goes through `dwim`
    (the playbook directory).
    """
    if not src:
        raise TaskError("src is empty.")
    reject_tilde(src, "src")
    parts = [part for part in src.split("/") if part and part != "."]
    if ".." in parts:
        raise TaskError(f"src {src!r} contains '..'; give the path without it.")
    if not dest:
        raise TaskError("dest is empty.")
    if flat:
        if dest.endswith(os.sep):
            if not parts:
                raise TaskError(f"src {src!r} has no name to store under dest {dest!r}.")
            path = os.path.join(dest, parts[-1])
        else:
            path = dest
    else:
        if not hostname or "/" in hostname or hostname in (".", ".."):
            raise TaskError(f"inventory hostname {hostname!r} cannot name a directory.")
        path = os.path.join(dest, hostname, *parts)
    if not os.path.isabs(path):
        path = dwim(path)
    return os.path.normpath(path)


class ActionModule(PipelinedAction):
    """Fetch src from the target into dest, laid out like ansible.builtin.fetch."""

    ARGUMENT_SPEC = FETCH_ARGUMENT_SPEC
    ACTION = "pipelined_fetch"

    def prepare(self, args: dict[str, Any], task_vars: dict[str, Any], check_mode: bool) -> Job:
        src = str(args["src"])
        hostname = str(task_vars.get("inventory_hostname") or self._play_context.remote_addr)
        local = fetch_destination(
            src,
            str(args["dest"]),
            flat=bool(args["flat"]),
            hostname=hostname,
            dwim=self._loader.path_dwim,
        )
        options = transfer_options(args, check_mode)

        async def call(session: Any, progress: ProgressCallback) -> Report:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils.api import pull

            return await pull(session, src, local, options, progress)

        return Job(call=call, result={"src": src, "dest": local}, diff_header=local, root=local)
