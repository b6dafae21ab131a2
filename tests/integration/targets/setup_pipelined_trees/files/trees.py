"""Make and compare the directory trees the pipelined_* integration playbooks transfer.

``trees.py make DIR`` writes a fresh tree (small files in nested directories, one 2 MiB file,
an empty file, an empty directory and a relative symlink) and prints its counts as JSON.
``trees.py compare A B`` exits 0 when both trees hold the same entries, contents,
permission bits, symlink targets and (with --mtime) modification times; else it prints
the first differences and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
from pathlib import Path

MAX_REPORTED = 20
MARKER = ".generated-tree"


def make(root: Path, dirs: int, files_per_dir: int) -> dict[str, int]:
    """Write the tree at root, replacing an earlier generated tree there; return its counts."""
    if root.exists() or root.is_symlink():
        if not (root / MARKER).is_file():
            raise SystemExit(f"{root} exists and is not a generated tree; not replacing it.")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_bytes(b"")
    files = 1
    total = 0
    for d in range(dirs):
        sub = root / f"dir{d:02d}" / "nested"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dir):
            data = (f"{d}:{f} " * (1 + (d * 7 + f) % 97)).encode()
            (sub / f"file{f:03d}.txt").write_bytes(data)
            files += 1
            total += len(data)
    big = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    (root / "big.bin").write_bytes(big)
    (root / "empty.txt").write_bytes(b"")
    (root / "private.txt").write_bytes(b"secret-ish\n")
    (root / "private.txt").chmod(0o600)
    (root / "emptydir").mkdir(exist_ok=True)
    link = root / "link-to-big"
    if not link.is_symlink():
        link.symlink_to("big.bin")
    files += 3
    total += len(big) + len(b"secret-ish\n")
    return {"files": files, "bytes": total, "dirs": 2 * dirs + 1, "symlinks": 1}


def entries(root: Path) -> dict[str, os.stat_result]:
    """Every path under root (relative), with its lstat."""
    found: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            found[str(full.relative_to(root))] = full.lstat()
    return found


def compare(a: Path, b: Path, mtime: bool) -> list[str]:
    """Differences between two trees, at most MAX_REPORTED."""
    left, right = entries(a), entries(b)
    problems = [f"only in {a}: {p}" for p in sorted(left.keys() - right.keys())]
    problems += [f"only in {b}: {p}" for p in sorted(right.keys() - left.keys())]
    for path in sorted(left.keys() & right.keys()):
        sa, sb = left[path], right[path]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            problems.append(f"{path}: types differ")
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(a / path) != os.readlink(b / path):
                problems.append(f"{path}: link targets differ")
        elif stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append(f"{path}: modes {sa.st_mode:o} and {sb.st_mode:o} differ")
        elif stat.S_ISREG(sa.st_mode):
            if (a / path).read_bytes() != (b / path).read_bytes():
                problems.append(f"{path}: contents differ")
            elif mtime and int(sa.st_mtime) != int(sb.st_mtime):
                problems.append(f"{path}: mtimes {sa.st_mtime} and {sb.st_mtime} differ")
        if len(problems) >= MAX_REPORTED:
            break
    return problems[:MAX_REPORTED]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_make = sub.add_parser("make")
    p_make.add_argument("root", type=Path)
    p_make.add_argument("--dirs", type=int, default=5)
    p_make.add_argument("--files-per-dir", type=int, default=40)
    p_cmp = sub.add_parser("compare")
    p_cmp.add_argument("a", type=Path)
    p_cmp.add_argument("b", type=Path)
    p_cmp.add_argument("--mtime", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "make":
        print(json.dumps(make(args.root, args.dirs, args.files_per_dir)))
        return 0
    problems = compare(args.a, args.b, args.mtime)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
