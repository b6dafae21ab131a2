"""Check that a built collection tarball holds the collection and nothing from the workspace.

Usage: ``python tools/check_tarball.py .work/build/pipelined-sftp-X.Y.Z.tar.gz``.
Exits 1, naming every offending member, when the tarball contains virtual environments,
work directories, caches, benchmark scratch data, test output or nested archives, or
misses a file every installable collection needs.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import PurePosixPath

# Path components that never belong in the artifact.
FORBIDDEN_PARTS = frozenset(
    {
        ".venv",
        ".work",
        ".git",
        ".ci",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "tools",
    }
)
# Path prefixes (relative to the collection root) that never belong in the artifact: the
# benchmark and its scratch trees are development material.
FORBIDDEN_PREFIXES = (("bench",), ("tests", "output"))
FORBIDDEN_SUFFIXES = (".pyc", ".pyo", ".tar.gz", ".whl", ".tmp", ".swp", "~", ".orig", ".rej")
REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml")


def problems(names: list[str]) -> list[str]:
    """Return one sentence per member that should not be there or file that is missing."""
    found: list[str] = []
    for name in names:
        parts = PurePosixPath(name).parts
        if FORBIDDEN_PARTS.intersection(parts):
            found.append(f"{name}: workspace or cache directory in the artifact.")
        elif any(parts[: len(prefix)] == prefix for prefix in FORBIDDEN_PREFIXES):
            found.append(f"{name}: benchmark scratch or test output in the artifact.")
        elif name.endswith(FORBIDDEN_SUFFIXES):
            found.append(f"{name}: compiled, temporary or archive file in the artifact.")
    members = set(names)
    found.extend(f"{req}: missing from the artifact." for req in REQUIRED if req not in members)
    return found


def main(argv: list[str]) -> int:
    """Check each tarball named on the command line; print its size and member count."""
    if not argv:
        print("usage: check_tarball.py TARBALL...", file=sys.stderr)
        return 2
    status = 0
    for path in argv:
        with tarfile.open(path, "r:gz") as tar:
            names = [member.name.removeprefix("./") for member in tar.getmembers()]
        bad = problems(names)
        for sentence in bad:
            print(f"{path}: {sentence}", file=sys.stderr)
        if bad:
            status = 1
        else:
            print(f"{path}: {len(names)} members, no workspace files.")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
