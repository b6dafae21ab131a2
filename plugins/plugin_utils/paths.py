"""Remote-name validation, exclude matching and temporary names."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import random

NAME_MAX = 255


class UnsafeName(ValueError):
    """A remote name that must never become a path."""


def check_name(name: bytes) -> bytes:
    """Return `name` if it is one plain path component, else raise UnsafeName."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise UnsafeName(f"unsafe name {name!r} from the server")
    return name


def join(parent: bytes, name: bytes) -> bytes:
    """parent/name for remote (POSIX) paths."""
    if not parent:
        return name
    return parent + name if parent.endswith(b"/") else parent + b"/" + name


def relative(rel_dir: bytes, name: bytes) -> bytes:
    return name if not rel_dir else rel_dir + b"/" + name


class Excluder:
    """Matches relative paths against shell patterns, as rsync users expect.

    A pattern without "/" matches any path component's name; with "/" it matches the
    whole relative path. A trailing "/" restricts a pattern to directories.
    """

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self._name_patterns: list[tuple[bytes, bool]] = []
        self._path_patterns: list[tuple[bytes, bool]] = []
        for pattern in patterns:
            dir_only = pattern.endswith("/")
            raw = os.fsencode(pattern.strip("/") if dir_only else pattern.lstrip("/"))
            target = self._path_patterns if b"/" in raw else self._name_patterns
            target.append((raw, dir_only))

    def __bool__(self) -> bool:
        return bool(self._name_patterns or self._path_patterns)

    def excluded(self, rel_path: bytes, is_dir: bool) -> bool:
        name = posixpath.basename(rel_path)
        for pattern, dir_only in self._name_patterns:
            if (is_dir or not dir_only) and fnmatch.fnmatchcase(name, pattern):
                return True
        for pattern, dir_only in self._path_patterns:
            if (is_dir or not dir_only) and fnmatch.fnmatchcase(rel_path, pattern):
                return True
        return False


def temp_name(name: bytes, resumable: bool = False) -> bytes:
    """A hidden sibling name for writing `name` before the atomic rename.

    Resumable names are stable, so an interrupted transfer finds its partial file.
    """
    # random's generator is reseeded in every forked worker; it is far cheaper than
    # os.urandom per file and 48 bits keep concurrent runs apart.
    suffix = b".part" if resumable else b".%012x.tmp" % random.getrandbits(48)
    candidate = b".pipelined." + name + suffix
    if len(candidate) <= NAME_MAX:
        return candidate
    digest = hashlib.sha256(name).hexdigest()[:32].encode()
    return b".pipelined." + digest + suffix


def is_temp_name(name: bytes) -> bool:
    return name.startswith(b".pipelined.") and (name.endswith(b".part") or name.endswith(b".tmp"))
