"""Decisions for one entry: send, skip, or only fix attributes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import (
    Excluder,
    is_temp_name,
    relative,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.walk import Entry

DEFAULT_FILE_MODE = 0o644

Decision = Literal["send", "skip", "checksum"]


@dataclass(frozen=True)
class Wanted:
    """The attributes a written entry should end up with (None: leave as is)."""

    mode: int | None
    mtime: int | None
    uid: int | None = None
    gid: int | None = None


def wanted_file(src: Entry, options: TransferOptions, uid: int | None, gid: int | None) -> Wanted:
    if options.mode is not None:
        mode: int | None = options.mode
    elif options.preserve_mode:
        mode = src.mode
    else:
        mode = DEFAULT_FILE_MODE
    return Wanted(mode, src.mtime if options.preserve_times else None, uid, gid)


def wanted_dir(
    src: Entry | None, options: TransferOptions, uid: int | None, gid: int | None
) -> Wanted:
    if options.directory_mode is not None:
        mode: int | None = options.directory_mode
    elif options.preserve_mode and src is not None:
        mode = src.mode
    else:
        mode = None
    mtime = src.mtime if (options.preserve_times and src is not None) else None
    return Wanted(mode, mtime, uid, gid)


def content_decision(src: Entry, dst: Entry | None, options: TransferOptions) -> Decision:
    """Whether a file's content must be sent. Without preserved times, compare by size."""
    if dst is None or dst.kind != "file" or options.compare == "always":
        return "send"
    if dst.size != src.size:
        return "send"
    if options.compare == "checksum":
        return "checksum"
    if options.preserve_times and dst.mtime != src.mtime:
        return "send"
    return "skip"


def attrs_differ(dst: Entry, wanted: Wanted, check_times: bool = True) -> bool:
    """Whether an existing entry's mode, owner or (optionally) time differ from wanted."""
    if wanted.mode is not None and dst.mode != wanted.mode:
        return True
    if wanted.uid is not None and dst.uid is not None and dst.uid != wanted.uid:
        return True
    if wanted.gid is not None and dst.gid is not None and dst.gid != wanted.gid:
        return True
    return check_times and wanted.mtime is not None and dst.mtime != wanted.mtime


def mirror_deletions(
    extra: dict[bytes, Entry], rel_dir: bytes, excluder: Excluder
) -> Iterator[tuple[bytes, Entry, bytes]]:
    """(name, entry, relative path) of destination entries the source lacks that a mirror
    deletes: never excluded paths, never our own temporary files."""
    for name, entry in extra.items():
        rel = relative(rel_dir, name)
        if is_temp_name(name) or (excluder and excluder.excluded(rel, entry.kind == "dir")):
            continue
        yield name, entry, rel
