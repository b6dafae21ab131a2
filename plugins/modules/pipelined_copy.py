#!/usr/bin/python
# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of pipelined_copy; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pipelined_copy
short_description: Copy a file or a directory tree to a target over SFTP, many requests at once
version_added: 0.1.0
author:
  - pipelined.sftp maintainers (@pipelined)
description:
  - Copies a local file or directory tree from the controller to the target over SFTP, keeping
    many SFTP requests in flight across files, so trees of many small files take seconds
    where M(ansible.builtin.copy) takes minutes.
  - Unchanged files (see O(compare)) are skipped, so a second run reports no change.
  - Files are written under a temporary name and renamed into place; a new directory tree is
    built under a hidden name and renamed into place whole (see O(atomic)).
  - The target needs only an SSH server with SFTP; no Python, no rsync.
options:
  src:
    description:
      - Local path of the file or directory to copy.
      - A relative path is looked up as M(ansible.builtin.copy) does, in the role's or
        playbook's C(files/) directory first.
      - Follows M(ansible.builtin.copy)'s trailing-slash rule for directories. V(dir/) copies
        the contents of C(dir) into O(dest); V(dir) creates O(dest)/C(dir).
    type: path
    required: true
  dest:
    description:
      - Remote path to copy to.
      - A file O(src) lands at O(dest), or at O(dest)/name when O(dest) ends with C(/) or is an
        existing directory.
      - Absolute, or relative to the login directory of the remote user. C(~) is not expanded.
      - Missing parent directories are created.
    type: str
    required: true
  owner:
    description:
      - Name or numeric id of the user that should own files and directories written.
      - Usually needs C(become) with C(sudo) on the target.
      - When not set, the writing user owns them.
    type: str
  group:
    description:
      - Name or numeric id of the group that should own files and directories written.
      - When not set, the writing user's group owns them.
    type: str
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
    details: Reports what would be written, skipped and deleted without touching the target.
  diff_mode:
    support: full
    details: Lists the added, changed and deleted paths, at most 100 of each.
  platform:
    platforms: posix
    details: Any target with an SSH server offering the SFTP subsystem.
seealso:
  - module: pipelined.sftp.pipelined_fetch
  - module: pipelined.sftp.pipelined_remove
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Copy the contents of a release directory into /srv/app
  pipelined.sftp.pipelined_copy:
    src: build/release/
    dest: /srv/app

- name: Mirror a tree, deleting what is no longer in the source, and skipping caches
  pipelined.sftp.pipelined_copy:
    src: site/
    dest: /var/www/site
    delete: true
    exclude:
      - "*.pyc"
      - __pycache__

- name: Copy a tree owned by another user, comparing content rather than times
  pipelined.sftp.pipelined_copy:
    src: /data/models
    dest: /opt/ml/
    owner: ml
    group: ml
    directory_mode: "0750"
    compare: checksum
  become: true

- name: More requests in flight for a high-latency link
  pipelined.sftp.pipelined_copy:
    src: photos/
    dest: /backup/photos
    max_requests: 1024
    connections: 4
"""

RETURN = r"""
changed:
  description: Whether anything was written, created or deleted (or would be, in check mode).
  returned: always
  type: bool
  sample: true
src:
  description: Local path copied, after the C(files/) lookup.
  returned: always
  type: str
  sample: /home/user/playbooks/files/release/
dest:
  description: Remote destination path as given.
  returned: always
  type: str
  sample: /srv/app
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
  description: Number of symbolic links created.
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
  description: Number of destination entries removed because of O(delete).
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
  sample: [{"path": "/srv/app/locked.txt", "reason": "Permission denied."}]
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
    COPY_ARGUMENT_SPEC,
)


def main() -> None:
    """Refuse to run on a target: the action plugin does the work on the controller."""
    module = AnsibleModule(argument_spec=COPY_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg=ACTION_ONLY_MESSAGE.format(name="pipelined_copy"))


if __name__ == "__main__":
    main()
