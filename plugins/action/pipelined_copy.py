# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of pipelined_copy: push a local file or tree to the target over SFTP."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleError

from ansible_collections.pipelined.sftp.plugins.module_utils.argspecs import COPY_ARGUMENT_SPEC
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


class ActionModule(PipelinedAction):
    """Copy src (looked up like ansible.builtin.copy) to dest on the target."""

    ARGUMENT_SPEC = COPY_ARGUMENT_SPEC
    ACTION = "pipelined_copy"

    def prepare(self, args: dict[str, Any], task_vars: dict[str, Any], check_mode: bool) -> Job:
        source = str(args["src"])
        dest = str(args["dest"])
        reject_tilde(dest, "dest")
        if not dest:
            raise TaskError("dest is empty.")
        trailing_slash = source.endswith(os.sep)
        try:
            found = str(self._find_needle("files", source))
        except AnsibleError:
            if os.path.isabs(source):
                raise TaskError(f"src {source!r} does not exist on the controller.") from None
            raise TaskError(
                f"src {source!r} was not found in the files/ search path or the playbook directory."
            ) from None
        # The lookup may drop or add the trailing slash that selects copy's directory rule.
        if trailing_slash and not found.endswith(os.sep):
            found += os.sep
        elif not trailing_slash and found.endswith(os.sep) and len(found) > 1:
            found = found.rstrip(os.sep)
        options = transfer_options(args, check_mode)

        async def call(session: Any, progress: ProgressCallback) -> Report:
            from ansible_collections.pipelined.sftp.plugins.plugin_utils.api import push

            return await push(session, found, dest, options, progress)

        # Where relative report paths start: dest, or dest/<name> for a directory without "/".
        root = dest
        if os.path.isdir(found) and not found.endswith(os.sep):
            root = dest.rstrip("/") + "/" + os.path.basename(found)
        return Job(call=call, result={"src": found, "dest": dest}, diff_header=root, root=root)
