"""LocalPrefetch: a push's local listings and small files, read while it waits for the server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import prefetch
from ansible_collections.pipelined.sftp.plugins.plugin_utils.prefetch import LocalPrefetch
from tests.unit.core_helpers import pattern, write_file

pytest_plugins = ("tests.unit.core_fixtures",)


def _tree(root: Path) -> None:
    for index in range(40):
        write_file(root / f"d{index % 4}" / f"f{index}", pattern(100 + index, seed=index))
    write_file(root / "top", b"top")
    write_file(root / "big", pattern(5000, seed=1))


async def _finished(prefetch: LocalPrefetch, started: bool = False) -> None:
    if not started:
        prefetch.start()
    for _turn in range(1000):
        await asyncio.sleep(0)
    prefetch.stop()


async def test_prefetch_hands_over_listings_and_contents_once(local_tmp: Path) -> None:
    root = local_tmp / "src"
    _tree(root)
    broot = os.fsencode(root)
    prefetch = LocalPrefetch(broot, os.stat(root).st_size, False, 1 << 20, read_up_to=4096)
    await _finished(prefetch)
    listing = prefetch.listing(broot)
    assert listing is not None
    assert sorted(e.name for e in listing.entries) == [b"big", b"d0", b"d1", b"d2", b"d3", b"top"]
    assert prefetch.listing(broot) is None
    d1 = os.path.join(broot, b"d1")
    assert prefetch.data(d1, b"f5") == pattern(105, seed=5)
    assert prefetch.data(d1, b"f5") is None
    assert prefetch.data(broot, b"big") is None  # above read_up_to
    assert prefetch.data(d1, b"f9") == pattern(109, seed=9)
    prefetch.forget(d1)
    assert prefetch.data(d1, b"f13") is None
    assert prefetch.files == 41 and prefetch.bytes == sum(100 + i for i in range(40)) + 3


async def test_prefetch_stops_at_its_caps_and_skips_large_directories(
    local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = local_tmp / "src"
    _tree(root)
    broot = os.fsencode(root)
    monkeypatch.setattr(prefetch, "PREFETCH_FILES", 7)
    capped = LocalPrefetch(broot, os.stat(root).st_size, False, 1 << 20, 4096)
    await _finished(capped)
    assert capped.files == 7
    for index in range(30):
        (root / "d0" / f"empty{index}").mkdir()
    monkeypatch.setattr(prefetch, "PREFETCH_ENTRIES", 10)
    few = LocalPrefetch(broot, os.stat(root).st_size, False, 1 << 20, 0)  # listings only
    await _finished(few)
    assert few.files == 0 and 10 <= few.entries < 10 + 40
    assert few.listing(os.path.join(broot, b"d0", b"empty0")) is None
    unlisted = LocalPrefetch(broot, os.stat(root).st_size, False, 0, 4096)
    await _finished(unlisted)
    assert unlisted.listing(broot) is None and unlisted.files == 0


async def test_prefetch_reports_a_file_that_changed_since_it_was_listed(local_tmp: Path) -> None:
    root = local_tmp / "src"
    write_file(root / "f", b"12345")
    broot = os.fsencode(root)
    prefetch = LocalPrefetch(broot, os.stat(root).st_size, False, 1 << 20, 4096)
    listing_made = prefetch._listings  # filled before the contents are read
    prefetch.start()
    while broot not in listing_made:
        await asyncio.sleep(0)
    write_file(root / "f", b"123456")
    await _finished(prefetch, started=True)
    assert isinstance(prefetch.data(broot, b"f"), Exception)


async def test_prefetch_stops_after_a_slow_step(
    local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a disk slow enough to hold up the event loop, the prefetch stops and leaves the
    rest to the push (which reads on a thread then)."""
    root = local_tmp / "src"
    _tree(root)
    broot = os.fsencode(root)
    monkeypatch.setattr(prefetch, "SLOW_STEP", -1.0)  # every step counts as slow
    slow = LocalPrefetch(broot, os.stat(root).st_size, False, 1 << 20, 4096)
    await _finished(slow)
    assert slow.slow and slow.files == 0
    assert slow.listing(broot) is not None  # what it did is still handed over
    assert slow.listing(os.path.join(broot, b"d0")) is None
