# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of pipelined_remove: remove remote paths over SFTP."""

from __future__ import annotations

from typing import Any

from ansible_collections.pipelined.sftp.plugins.module_utils.argspecs import REMOVE_ARGUMENT_SPEC
from ansible_collections.pipelined.sftp.plugins.plugin_utils.action_base import (
    Job,
    PipelinedAction,
    TaskError,
    positive,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import RemoveOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import (
    ProgressCallback,
    Report,
)


class ActionModule(PipelinedAction):
    """Remove each path (file, link or tree) on the target; absent paths are not an error."""

    ARGUMENT_SPEC = REMOVE_ARGUMENT_SPEC
    ACTION = "pipelined_remove"

    def prepare(self, args: dict[str, Any], task_vars: dict[str, Any], check_mode: bool) -> Job:
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.api import (
            remove,
            validate_remove_path,
        )

        paths = [str(p) for p in args["path"]]
        if not paths:
            raise TaskError("path lists no path to remove.")
        for path in paths:
            try:
                validate_remove_path(path)
            except ValueError as exc:
                raise TaskError(str(exc)) from None
        positive(args, "max_requests")
        options = RemoveOptions(
            max_requests=int(args["max_requests"]),
            fail_fast=bool(args["fail_fast"]),
            check_mode=check_mode,
        )

        async def call(session: Any, progress: ProgressCallback) -> Report:
            return await remove(session, paths, options, progress)

        root = paths[0].rstrip("/") if len(paths) == 1 else ""
        return Job(call=call, result={"path": paths}, diff_header=", ".join(paths[:3]), root=root)
