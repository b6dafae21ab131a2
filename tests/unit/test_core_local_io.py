"""Local file batches (local_io.py): on the event loop while quick, on a worker thread once
slow; and the small-file reads and writes that run in them."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import (
    api,
    local_io,
    prefetch,
    push,
    walk,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.chains import LocalStores
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.local_io import LocalBatches
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import (
    ChangedDuringTransfer,
    read_small,
)
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import Target, failures, pattern, write_file

pytest_plugins = ("tests.unit.core_fixtures",)


def _where() -> int:
    return threading.get_ident()


async def test_quick_batches_run_on_the_event_loop() -> None:
    batches = LocalBatches()
    for _batch in range(10):
        assert await batches.run(_where, files=32) == threading.get_ident()
    assert not batches.on_thread


async def test_one_batch_holding_the_loop_too_long_sends_later_ones_to_a_thread() -> None:
    batches = LocalBatches()
    await batches.run(lambda: time.sleep(local_io.SLOW_BATCH * 1.5), files=1)
    assert batches.on_thread
    assert await batches.run(_where, files=1) != threading.get_ident()


async def test_files_slow_on_average_send_later_batches_to_a_thread() -> None:
    """Batches each short enough for the loop, but slow per file (a disk), switch once a
    window of files has been seen; none switches before."""
    batches = LocalBatches()
    per_batch = 16
    seconds = local_io.SLOW_FILE * per_batch * 1.5
    assert seconds < local_io.SLOW_BATCH
    for _batch in range(local_io.WINDOW_FILES // per_batch - 1):
        await batches.run(lambda: time.sleep(seconds), files=per_batch)
        assert not batches.on_thread
    await batches.run(lambda: time.sleep(seconds), files=per_batch)
    assert batches.on_thread


async def test_work_that_counts_its_own_files_is_judged_by_that_count() -> None:
    """A listing learns its size only when done: `files` may count the result. The same
    seconds are quick for many entries and slow for few."""
    seconds = local_io.SLOW_FILE * local_io.WINDOW_FILES * 0.5
    many, few = LocalBatches(), LocalBatches()

    def listing(entries: int) -> list[int]:
        time.sleep(seconds)
        return list(range(entries))

    assert len(await many.run(partial(listing, local_io.WINDOW_FILES), len)) == 64
    assert not many.on_thread
    await few.run(partial(listing, 1), len)
    assert not few.on_thread  # one listing of one entry is not a window yet
    for _listing in range(local_io.WINDOW_FILES):
        await few.run(partial(listing, 1), len)
        if few.on_thread:
            break
    assert few.on_thread


async def test_push_lists_small_local_directories_on_the_loop(
    target: Target, session: SSHSession, local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories up to INLINE_LISTING_BYTES are listed without a thread hop; larger
    ones in a thread; the tree arrives whole either way."""
    src = local_tmp / "src"
    for index in range(3):
        write_file(src / f"d{index}" / "f", pattern(10, index))
    write_file(src / "f", b"top")
    on_loop: list[bool] = []
    real = push.list_local_dir

    def recording(path: bytes, follow_links: bool, root: bytes) -> walk.LocalListing:
        on_loop.append(threading.get_ident() == loop_thread)
        return real(path, follow_links, root)

    loop_thread = threading.get_ident()
    monkeypatch.setattr(push, "list_local_dir", recording)
    monkeypatch.setattr(prefetch, "list_local_dir", recording)  # the push lists ahead too
    report = await api.push(session, f"{src}/", target.rpath("a"), TransferOptions())
    assert failures(report) == [] and on_loop == [True] * 4
    on_loop.clear()
    monkeypatch.setattr(push, "INLINE_LISTING_BYTES", 0)
    report = await api.push(session, f"{src}/", target.rpath("b"), TransferOptions())
    assert failures(report) == [] and on_loop == [False] * 4
    for name in ("a", "b"):
        assert_same_tree(src, target.lpath(name))


async def test_submit_answers_on_a_later_loop_turn_on_the_loop_and_on_a_thread() -> None:
    for on_thread in (False, True):
        batches = LocalBatches()
        batches.on_thread = on_thread
        answers: list[object] = []
        batches.submit(lambda: 42, 1, answers.append)
        assert answers == []
        batches.submit(lambda: 1 // 0, 1, answers.append)
        for _tick in range(100):
            if len(answers) == 2:
                break
            await asyncio.sleep(0.01)
        assert answers[0] == 42
        assert isinstance(answers[1], ZeroDivisionError)


@pytest.mark.parametrize("on_thread", [False, True], ids=["on-loop", "on-thread"])
async def test_local_stores_write_every_file_wherever_they_run(
    local_tmp: Path, on_thread: bool
) -> None:
    stores = LocalStores()
    stores._batches.on_thread = on_thread
    results: dict[int, OSError | None] = {}
    for index in range(40):
        final = str(local_tmp / f"f{index}").encode()
        tmp = final + b".tmp"
        stores.add(
            (tmp, final, [b"x" * index], 0o640, 1_600_000_000), partial(results.__setitem__, index)
        )
    missing_dir = str(local_tmp / "missing" / "f").encode()
    stores.add(
        (missing_dir + b".tmp", missing_dir, [b"y"], None, None), partial(results.__setitem__, 99)
    )
    for _tick in range(200):
        if len(results) == 41:
            break
        await asyncio.sleep(0.01)
    assert isinstance(results.pop(99), FileNotFoundError)
    assert results == dict.fromkeys(range(40))
    for index in range(40):
        path = local_tmp / f"f{index}"
        st = path.stat()
        assert (path.read_bytes(), st.st_mode & 0o777, int(st.st_mtime)) == (
            b"x" * index,
            0o640,
            1_600_000_000,
        )
    # no temporary name is left behind
    assert sorted(p.name for p in local_tmp.iterdir()) == sorted(f"f{i}" for i in range(40))


def test_a_fifo_in_place_of_a_listed_file_is_refused_without_blocking(local_tmp: Path) -> None:
    path = local_tmp / "was-a-file"
    os.mkfifo(path)
    with pytest.raises(ChangedDuringTransfer, match="no longer a regular file"):
        read_small(str(path).encode(), 10, 0)


def test_a_file_longer_than_listed_is_refused(local_tmp: Path) -> None:
    path = local_tmp / "grew"
    path.write_bytes(b"0123456789")
    mtime = int(path.stat().st_mtime)
    assert read_small(str(path).encode(), 10, mtime) == b"0123456789"
    with pytest.raises(ChangedDuringTransfer):
        read_small(str(path).encode(), 9, mtime)
    with pytest.raises(ChangedDuringTransfer):
        read_small(str(path).encode(), 11, mtime)


async def test_push_of_cached_small_files_reads_them_on_the_event_loop(
    target: Target, session: SSHSession, local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files of a tree in the page cache are read by the event loop's thread: no
    thread hop per batch."""
    src = local_tmp / "src"
    for index in range(150):
        write_file(src / f"d{index % 3}" / f"f{index}", pattern(index * 37, seed=index))
    readers: set[int] = set()
    real_read_many = push.read_many

    def read_many(directory: bytes, files: list[tuple[bytes, int, int]]) -> list[bytes | Exception]:
        readers.add(threading.get_ident())
        return real_read_many(directory, files)

    monkeypatch.setattr(push, "read_many", read_many)
    monkeypatch.setattr(prefetch, "read_many", read_many)  # the push reads ahead too
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == [] and report.files == 150
    assert_same_tree(src, target.lpath("dst"))
    assert readers == {threading.get_ident()}
