# Copyright: (c) 2026, pipelined.sftp maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the options that shape how pipelined_copy and pipelined_fetch write files."""

from __future__ import annotations


class ModuleDocFragment:
    """Transfer options shared by pipelined_copy and pipelined_fetch."""

    DOCUMENTATION = r"""
options:
  mode:
    description:
      - Permission mode given to every file written, as an octal number.
      - Quote it (V('0644')) so YAML does not read it as a decimal number; an unquoted
        V(0644) is accepted as YAML reads it as octal. Symbolic modes are not supported.
      - When set, it overrides the source mode even if O(preserve) contains V(mode).
      - When not set, files get the source's mode if O(preserve) contains V(mode), else the
        default mode of the writing side (0644 before umask on an SFTP server).
    type: raw
  directory_mode:
    description:
      - Permission mode, as an octal number, for directories the transfer creates.
      - When not set, created directories copy the source directory's mode.
      - Existing directories are left as they are.
    type: raw
  preserve:
    description:
      - Which attributes of each source file are copied to the destination.
      - V(mode) copies the permission bits, V(times) copies the modification and access times.
      - V([]) preserves nothing; files then get the default mode and the current time.
      - Times should stay preserved with O(compare=size_mtime), or every run sees a changed file.
    type: list
    elements: str
    choices: [mode, times]
    default: [mode, times]
  links:
    description:
      - What to do with symbolic links found in the source tree.
      - V(preserve) recreates each link as a link with the same target (never followed).
      - V(follow) copies what the link points to, as long as it stays inside the source tree;
        links leading outside the tree or into a loop are reported as failures, never followed.
      - V(skip) leaves links out and counts them as skipped.
    type: str
    choices: [preserve, follow, skip]
    default: preserve
  compare:
    description:
      - How a file that already exists at the destination is judged unchanged.
      - V(size_mtime) compares size and modification time (fast, no file content read).
      - V(checksum) compares content digests; slower, reads both sides.
      - V(always) rewrites every file.
    type: str
    choices: [size_mtime, checksum, always]
    default: size_mtime
  delete:
    description:
      - Mirror the source, removing destination entries that are not in the source.
      - Only applies inside a destination directory the transfer writes; paths matching
        O(exclude) are never deleted.
    type: bool
    default: false
  exclude:
    description:
      - Shell glob patterns (C(fnmatch), case-sensitive) of entries to leave out, as rsync users
        expect. A pattern without C(/) matches an entry's name at any depth (V(*.pyc),
        V(__pycache__)); a pattern with C(/) matches the path relative to the source root
        (V(logs/*.gz)); a trailing C(/) restricts a pattern to directories (V(cache/)).
      - An excluded directory is not descended into.
      - Excluded destination entries are kept even with O(delete=true).
    type: list
    elements: str
    default: []
  atomic:
    description:
      - Write each file under a temporary name in the same directory and rename it into place,
        so no file is ever seen half-written at its final name.
      - A directory tree copied to a destination that does not exist yet is built under a
        hidden name next to it (C(.pipelined.<name>.part)) and renamed into place once
        complete; its files are written under their final names inside it, one request and
        one round trip less each. A run interrupted meanwhile leaves nothing at the
        destination, and the next run carries on in the hidden directory.
      - V(false) writes files in place, which saves one request per file.
    type: bool
    default: true
  resume:
    description:
      - Resume large files left incomplete by an interrupted run instead of starting over,
        after verifying the part already written.
    type: bool
    default: false
  fail_fast:
    description:
      - Stop at the first failed path instead of carrying on with every other path.
      - Either way, the task fails when any path failed, and every failure is reported.
    type: bool
    default: false
"""
