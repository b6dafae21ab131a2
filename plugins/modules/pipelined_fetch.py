#!/usr/bin/python
# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of pipelined_fetch; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pipelined_fetch
short_description: Fetch a file or a directory tree from a target over SFTP, many requests at once
version_added: 0.1.0
author:
  - pipelined.sftp maintainers (@pipelined)
description:
  - Fetches a remote file or directory tree from the target to the controller over SFTP,
    keeping many SFTP requests in flight across files. Unlike M(ansible.builtin.fetch) it
    fetches whole directories.
  - Files land under O(dest)/C(<inventory_hostname>)/C(<src path>) as with
    M(ansible.builtin.fetch), unless O(flat=true).
  - Unchanged local files (see O(compare)) are skipped, so a second run reports no change.
  - Remote names are never trusted; a name cannot make the module write outside O(dest).
options:
  src:
    description:
      - Remote path of the file or directory to fetch.
      - Absolute, or relative to the login directory of the remote user. C(~) is not expanded,
        and C(..) is refused.
      - A trailing C(/) makes no difference.
    type: str
    required: true
  dest:
    description:
      - Local directory (or, with O(flat=true), the exact local path) to fetch into.
      - A relative path is relative to the playbook directory.
    type: path
    required: true
  flat:
    description:
      - V(false) stores O(src) at O(dest)/C(<inventory_hostname>)/O(src), so several hosts
        never overwrite each other.
      - V(true) stores O(src) directly at O(dest); when O(dest) ends with C(/), at
        O(dest)/C(<basename of src>). A directory O(src) becomes the directory O(dest).
    type: bool
    default: false
extends_documentation_fragment:
  - pipelined.sftp.transfer
  - pipelined.sftp.tuning
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
    details: Reports what would be written, skipped and deleted locally without writing anything.
  diff_mode:
    support: full
    details: Lists the added, changed and deleted local paths, at most 100 of each.
  platform:
    platforms: posix
    details: Any target with an SSH server offering the SFTP subsystem.
seealso:
  - module: pipelined.sftp.pipelined_copy
  - module: ansible.builtin.fetch
"""

EXAMPLES = r"""
- name: Fetch each host's logs into backups/<inventory_hostname>/var/log/app
  pipelined.sftp.pipelined_fetch:
    src: /var/log/app
    dest: backups

- name: Fetch a directory to an exact local path, mirroring deletions
  pipelined.sftp.pipelined_fetch:
    src: /srv/reports/
    dest: /tmp/reports
    flat: true
    delete: true

- name: Fetch one file into a directory, keeping its name
  pipelined.sftp.pipelined_fetch:
    src: /etc/os-release
    dest: "facts/{{ inventory_hostname }}/"
    flat: true
"""

RETURN = r"""
changed:
  description: Whether anything was written, created or deleted (or would be, in check mode).
  returned: always
  type: bool
  sample: true
src:
  description: Remote path fetched, as given.
  returned: always
  type: str
  sample: /var/log/app
dest:
  description: Local path that O(src) became (after the C(<inventory_hostname>) layout).
  returned: always
  type: str
  sample: /home/user/backups/web1/var/log/app
files:
  description: Number of files written (or that would be written, in check mode).
  returned: always
  type: int
  sample: 1200
dirs:
  description: Number of directories created.
  returned: always
  type: int
  sample: 40
symlinks:
  description: Number of symbolic links created locally.
  returned: always
  type: int
  sample: 0
bytes:
  description: Number of bytes of file content transferred.
  returned: always
  type: int
  sample: 10485760
unchanged:
  description: Number of files left alone because they were unchanged (or links skipped by O(links=skip)).
  returned: always
  type: int
  sample: 0
deleted:
  description: Number of local entries removed because of O(delete).
  returned: always
  type: int
  sample: 0
attributes:
  description: Number of entries whose mode, times or owner were changed without rewriting content.
  returned: always
  type: int
  sample: 0
specials:
  description: Number of sockets, fifos and device files found and left out.
  returned: always
  type: int
  sample: 0
seconds:
  description: Wall-clock duration of the transfer in seconds.
  returned: always
  type: float
  sample: 2.412
throughput:
  description: Bytes of file content per second over the whole transfer.
  returned: always
  type: float
  sample: 4347219.5
failures:
  description: Every path that could not be handled, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/log/app/secret.log", "reason": "Permission denied."}]
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
    FETCH_ARGUMENT_SPEC,
)


def main() -> None:
    """Refuse to run on a target: the action plugin does the work on the controller."""
    module = AnsibleModule(argument_spec=FETCH_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg=ACTION_ONLY_MESSAGE.format(name="pipelined_fetch"))


if __name__ == "__main__":
    main()
