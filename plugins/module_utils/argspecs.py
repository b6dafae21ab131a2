# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of pipelined_copy, pipelined_fetch and pipelined_remove.

One place for each spec: the module files hand them to AnsibleModule (so ansible-test
validate-modules can compare them with the documentation) and the action plugins validate
task arguments against them. The option documentation lives in the module files and in the
doc fragments ``pipelined.sftp.transfer`` and ``pipelined.sftp.tuning``.
"""

from __future__ import annotations

import typing as t

# Options that shape how files are written, shared by copy and fetch
# (documented in plugins/doc_fragments/transfer.py).
TRANSFER_OPTIONS: dict[str, dict[str, t.Any]] = {
    "mode": {"type": "raw"},
    "directory_mode": {"type": "raw"},
    "preserve": {
        "type": "list",
        "elements": "str",
        "choices": ["mode", "times"],
        "default": ["mode", "times"],
    },
    "links": {"type": "str", "choices": ["preserve", "follow", "skip"], "default": "preserve"},
    "compare": {
        "type": "str",
        "choices": ["size_mtime", "checksum", "always"],
        "default": "size_mtime",
    },
    "delete": {"type": "bool", "default": False},
    "exclude": {"type": "list", "elements": "str", "default": []},
    "atomic": {"type": "bool", "default": True},
    "resume": {"type": "bool", "default": False},
    "fail_fast": {"type": "bool", "default": False},
}

# Options that size the pipeline, shared by copy and fetch
# (documented in plugins/doc_fragments/tuning.py).
TUNING_OPTIONS: dict[str, dict[str, t.Any]] = {
    "max_requests": {"type": "int", "default": 4096},
    "max_files": {"type": "int"},
    "connections": {"type": "int", "default": 1},
    "block_size": {"type": "int", "default": 262144},
}

COPY_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "src": {"type": "path", "required": True},
    "dest": {"type": "str", "required": True},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    **TRANSFER_OPTIONS,
    **TUNING_OPTIONS,
}

FETCH_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "src": {"type": "str", "required": True},
    "dest": {"type": "path", "required": True},
    "flat": {"type": "bool", "default": False},
    **TRANSFER_OPTIONS,
    **TUNING_OPTIONS,
}

REMOVE_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "path": {"type": "list", "elements": "str", "required": True, "aliases": ["paths"]},
    "max_requests": {"type": "int", "default": 4096},
    "fail_fast": {"type": "bool", "default": False},
}

ACTION_ONLY_MESSAGE = (
    "The {name} module runs on the controller through its action plugin and cannot be "
    "executed on a target; call it as a task (pipelined.sftp.{name}) instead."
)
