#!/usr/bin/python
# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of pipelined_remove; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pipelined_remove
short_description: Remove files and directory trees on a target over SFTP, many requests at once
version_added: 0.1.0
author:
  - pipelined.sftp maintainers (@pipelined)
description:
  - Removes remote files, symbolic links and whole directory trees over SFTP, listing and
    removing many entries at once, bottom-up.
  - A path that does not exist is not an error and reports no change.
  - Symbolic links are removed, never followed.
  - Refuses C(/), empty paths, relative paths and paths containing C(..).
options:
  path:
    description:
      - Absolute remote path, or list of paths, to remove.
    type: list
    elements: str
    required: true
    aliases: [paths]
  max_requests:
    description:
      - Most SFTP requests outstanding at once on the server connection.
    type: int
    default: 4096
  fail_fast:
    description:
      - Stop at the first path that cannot be removed instead of carrying on with the others.
      - Either way, the task fails when any path could not be removed.
    type: bool
    default: false
extends_documentation_fragment:
  - pipelined.sftp.connection
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Counts what would be removed without removing anything.
  diff_mode:
    support: full
    details: Lists the removed paths, at most 100.
  platform:
    platforms: posix
    details: Any target with an SSH server offering the SFTP subsystem.
seealso:
  - module: pipelined.sftp.pipelined_copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Remove a deployed tree
  pipelined.sftp.pipelined_remove:
    path: /srv/app/releases/2024-01-01

- name: Remove several paths at once
  pipelined.sftp.pipelined_remove:
    path:
      - /tmp/build-cache
      - /tmp/upload.tar
"""

RETURN = r"""
changed:
  description: Whether anything was removed (or would be, in check mode).
  returned: always
  type: bool
  sample: true
path:
  description: Paths asked to be removed.
  returned: always
  type: list
  elements: str
  sample: ["/srv/app/releases/2024-01-01"]
files:
  description: Number of files written; always 0 for a removal.
  returned: always
  type: int
  sample: 0
dirs:
  description: Number of directories created; always 0 for a removal.
  returned: always
  type: int
  sample: 0
symlinks:
  description: Number of symbolic links created; always 0 for a removal.
  returned: always
  type: int
  sample: 0
bytes:
  description: Bytes transferred; always 0 for a removal.
  returned: always
  type: int
  sample: 0
unchanged:
  description: Number of entries left alone.
  returned: always
  type: int
  sample: 0
deleted:
  description: Number of files, links and directories removed (or that would be, in check mode).
  returned: always
  type: int
  sample: 2051
attributes:
  description: Number of entries whose attributes changed; always 0 for a removal.
  returned: always
  type: int
  sample: 0
specials:
  description: Number of sockets, fifos and device files found.
  returned: always
  type: int
  sample: 0
seconds:
  description: Wall-clock duration of the removal in seconds.
  returned: always
  type: float
  sample: 0.812
throughput:
  description: Bytes per second; always 0 for a removal.
  returned: always
  type: float
  sample: 0.0
failures:
  description: Every path that could not be removed, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/srv/app/locked", "reason": "Permission denied."}]
  contains:
    path:
      description: Path that failed.
      type: str
      returned: always
    reason:
      description: Why it failed, in one sentence.
      type: str
      returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.pipelined.sftp.plugins.module_utils.argspecs import (  # noqa: E402
    ACTION_ONLY_MESSAGE,
    REMOVE_ARGUMENT_SPEC,
)


def main() -> None:
    """Refuse to run on a target: the action plugin does the work on the controller."""
    module = AnsibleModule(argument_spec=REMOVE_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg=ACTION_ONLY_MESSAGE.format(name="pipelined_remove"))


if __name__ == "__main__":
    main()
