"""Results of a transfer or removal: counters, failures, changed paths, progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DIFF_LIST_CAP = 100


@dataclass(frozen=True)
class Failure:
    """One path that could not be handled, and why (one sentence)."""

    path: str
    reason: str


@dataclass
class CappedList:
    """Keeps the first `cap` items and counts the rest, so memory stays bounded."""

    cap: int = DIFF_LIST_CAP
    items: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, item: str) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(item)


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running transfer, for progress lines."""

    files: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass
class Report:
    """What a push, pull or remove did. `changed` is derived, never set by hand."""

    files: int = 0
    """Files written (or, in check mode, that would be written)."""
    dirs: int = 0
    """Directories created."""
    symlinks: int = 0
    bytes: int = 0
    skipped: int = 0
    """Files left alone because they were unchanged."""
    deleted: int = 0
    attributes: int = 0
    """Entries whose mode/times/owner were changed without rewriting content."""
    specials: int = 0
    """Sockets, fifos and devices skipped (reported, never transferred)."""
    failures: list[Failure] = field(default_factory=list)
    added: CappedList = field(default_factory=CappedList)
    changed_paths: CappedList = field(default_factory=CappedList)
    deleted_paths: CappedList = field(default_factory=CappedList)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.files or self.dirs or self.symlinks or self.deleted or self.attributes)

    @property
    def throughput(self) -> float:
        """Bytes per second over the whole run."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    def wrote(self, path: str, size: int, new: bool) -> None:
        """Count one file written (or, in check mode, that would be)."""
        self.files += 1
        self.bytes += size
        (self.added if new else self.changed_paths).add(path)

    def fail(self, path: str, reason: str) -> None:
        self.failures.append(Failure(path, reason))

    def finish(self) -> Report:
        self.seconds = time.monotonic() - self.started
        return self

    def as_dict(self) -> dict[str, object]:
        """Plain values for an Ansible result."""
        return {
            "changed": self.changed,
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "attributes": self.attributes,
            "specials": self.specials,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1),
            "failures": [{"path": f.path, "reason": f.reason} for f in self.failures],
        }
