"""Pipelining, proven by the instrumented asyncssh server rather than by timing.

The server counts a request as in flight from the moment its packet arrives until its
reply is written, so its maximum is a lower bound of what the client kept outstanding.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Budget
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import (
    Channels,
    TreeRun,
    share_files,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
    RemoveOptions,
    TransferOptions,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXF_CREAT,
    FXF_TRUNC,
    FXF_WRITE,
    FXP_CLOSE,
    FXP_EXTENDED,
    FXP_LSTAT,
    FXP_MKDIR,
    FXP_OPEN,
    FXP_OPENDIR,
    FXP_REALPATH,
    FXP_RENAME,
    FXP_RMDIR,
    FXP_SETSTAT,
    FXP_WRITE,
    SERVER_READ_SIZE,
    ServerLimits,
    SFTPClient,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import Report
from tests.fixtures.asyncssh_server import asyncssh_server_thread
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import (
    Target,
    failures,
    pattern,
    set_tree_times,
    spec_for,
    write_file,
)

pytest_plugins = ("tests.unit.core_fixtures",)

FILES = 1500


def _many_small_files(root: Path) -> None:
    for i in range(FILES):
        write_file(root / f"d{i // 250}" / f"f{i:04d}", pattern(i % 300, seed=i))
    set_tree_times(root)


@pytest.mark.parametrize("target", ["asyncssh"], indirect=True)
@pytest.mark.parametrize("cap", [48, 256])
async def test_push_keeps_many_requests_in_flight_within_the_cap(
    target: Target, local_tmp: Path, cap: int
) -> None:
    assert target.stats is not None
    src = local_tmp / "src"
    _many_small_files(src)
    session = await open_session(target.spec)
    try:
        target.stats.reset()
        report = await api.push(
            session, f"{src}/", target.rpath("dst"), TransferOptions(max_requests=cap)
        )
    finally:
        await session.aclose()
    assert failures(report) == [] and report.files == FILES
    assert 32 <= target.stats.max_in_flight <= cap, target.stats.max_in_flight
    assert_same_tree(src, target.lpath("dst"))


@pytest.mark.parametrize("target", ["asyncssh"], indirect=True)
async def test_pull_keeps_many_requests_in_flight_within_the_cap(
    target: Target, local_tmp: Path
) -> None:
    assert target.stats is not None
    _many_small_files(target.lpath("tree"))
    cap = 64
    session = await open_session(target.spec)
    try:
        target.stats.reset()
        options = TransferOptions(max_requests=cap)
        report = await api.pull(session, target.rpath("tree"), str(local_tmp / "back"), options)
    finally:
        await session.aclose()
    assert failures(report) == [] and report.files == FILES
    assert 32 <= target.stats.max_in_flight <= cap, target.stats.max_in_flight
    assert_same_tree(target.lpath("tree"), local_tmp / "back")


@pytest.mark.parametrize("target", ["asyncssh"], indirect=True)
async def test_one_request_at_a_time_still_works(target: Target, local_tmp: Path) -> None:
    assert target.stats is not None
    src = local_tmp / "src"
    for i in range(40):
        write_file(src / f"s{i // 10}" / f"f{i}", pattern(i * 37, seed=i))
    write_file(src / "big", pattern(300 * 1024, seed=5))
    set_tree_times(src)
    options = TransferOptions(max_requests=1, large_file_threshold=64 * 1024, block_size=4096)
    session = await open_session(target.spec)
    try:
        target.stats.reset()
        pushed = await api.push(session, f"{src}/", target.rpath("dst"), options)
        # includes the requests made while the channels are set up (limits, realpath)
        assert target.stats.max_in_flight == 1, target.stats
        pulled = await api.pull(session, target.rpath("dst"), str(local_tmp / "back"), options)
        assert target.stats.max_in_flight == 1
        removed = await api.remove(session, [target.rpath("dst")], RemoveOptions(max_requests=1))
        assert target.stats.max_in_flight == 1
    finally:
        await session.aclose()
    assert failures(pushed) == [] and failures(pulled) == [] and failures(removed) == []
    assert_same_tree(src, local_tmp / "back")
    assert not target.lpath("dst").exists()


@pytest.mark.parametrize(
    ("tree", "rtt", "channels", "window_bound"),
    [(False, 0.0002, 1, False), (True, 0.0002, 2, False), (True, 0.010, 2, False),
     (True, 0.050, 2, True), (False, 0.300, 1, True)],
)  # fmt: skip
def test_small_files_of_a_tree_use_two_channels(
    tree: bool, rtt: float, channels: int, window_bound: bool
) -> None:
    """Small files use one channel on their own and two in a tree, at any round trip; a
    round trip above 25 ms counts as capped by one channel's 2 MiB window."""
    run = Channels([], ServerLimits(), Budget(64, 8), rtt, tree=tree)
    assert run.small_file_channels == channels
    assert run.window_bound is window_bound


DEPTH = 5


def _branch(root: Path) -> None:
    """DEPTH directories nested in one another, two files in each."""
    path = root
    for level in range(DEPTH):
        path = path / f"d{level}"
        for i in range(2):
            write_file(path / f"f{i}", pattern(100 + i, seed=level))
    set_tree_times(root)


@pytest.mark.parametrize(("server_version", "in_order"), [("", True), ("OtherSSH_1.0", False)])
async def test_push_sends_nested_mkdirs_and_setstats_back_to_back(
    local_tmp: Path, server_version: str, in_order: bool
) -> None:
    """A branch of new directories costs one round trip for all its MKDIRs, and its files
    none of their own, and its directories' closing SETSTATs one, on a server that answers
    in order (asyncssh's, OpenSSH's); one per level on another. The server takes 0.1 s per
    MKDIR and SETSTAT, so requests sent without waiting queue up behind the first."""
    src = local_tmp / "src"
    _branch(src)
    with asyncssh_server_thread(server_version=server_version) as bed:
        bed.delays = {"mkdir": 0.1, "setstat": 0.1}
        session = await open_session(spec_for(bed.endpoint()))
        try:
            report = await api.push(session, f"{src}/", "/dst", TransferOptions())
        finally:
            await session.aclose()
        assert failures(report) == [] and report.dirs == DEPTH + 1 and report.files == 2 * DEPTH
        # The destination is new: built under its staging name, whose MKDIR leads the
        # branch's, its files written under their final names, and one RENAME at the end.
        mkdirs = bed.stats.max_in_flight_by_type[FXP_MKDIR]
        assert mkdirs == (DEPTH + 1 if in_order else 1), bed.stats
        assert bed.stats.by_type[FXP_RENAME] == 1
        assert bed.stats.by_type[FXP_EXTENDED] == 1  # limits@openssh.com; no posix-rename
        setstats = bed.stats.max_in_flight_by_type[FXP_SETSTAT]
        assert setstats == (DEPTH + 1 if in_order else 1), bed.stats
        # The first file (in d0) goes right behind d0's MKDIR on an in-order server, and
        # after its answer elsewhere (the first MKDIR answered is the destination's own).
        events = bed.stats.events
        first_open = events.index(("request", FXP_OPEN))
        d0_made = [i for i, event in enumerate(events) if event == ("reply", FXP_MKDIR)][1]
        assert (first_open < d0_made) is in_order, events
        assert_same_tree(src, bed.root / "dst")


@pytest.mark.parametrize(("server_version", "in_order"), [("", True), ("OtherSSH_1.0", False)])
async def test_remove_sends_nested_rmdirs_back_to_back(server_version: str, in_order: bool) -> None:
    """Removing a branch sends each directory's RMDIR right behind its last
    subdirectory's on a server that answers in order; another gets one at a time."""
    with asyncssh_server_thread(server_version=server_version) as bed:
        _branch(bed.root / "gone")
        bed.delays = {"rmdir": 0.1}
        session = await open_session(spec_for(bed.endpoint()))
        try:
            report = await api.remove(session, ["/gone"], RemoveOptions())
        finally:
            await session.aclose()
        assert failures(report) == [] and report.deleted == 3 * DEPTH + 1
        rmdirs = bed.stats.max_in_flight_by_type[FXP_RMDIR]
        assert rmdirs == (DEPTH + 1 if in_order else 1), bed.stats
        assert not (bed.root / "gone").exists()


@pytest.mark.parametrize("operation", ["push", "pull", "remove"])
async def test_first_lookup_goes_out_with_the_channel_setup(
    local_tmp: Path, operation: str
) -> None:
    """The first LSTAT of a run (its destination, source or target) does not wait for
    the answers that measure the round trip: REALPATH is slow here, and the LSTAT
    reaches the server before it is answered."""
    src = local_tmp / "src"
    _branch(src)
    with asyncssh_server_thread() as bed:
        _branch(bed.root / "tree")
        bed.delays = {"realpath": 0.2}
        session = await open_session(spec_for(bed.endpoint()))
        try:
            bed.stats.reset()
            if operation == "push":
                report = await api.push(session, f"{src}/", "/dst", TransferOptions())
            elif operation == "pull":
                report = await api.pull(
                    session, "/tree", str(local_tmp / "back"), TransferOptions()
                )
            else:
                report = await api.remove(session, ["/tree"], RemoveOptions())
        finally:
            await session.aclose()
        assert failures(report) == []
        events = bed.stats.events
        assert events.index(("request", FXP_LSTAT)) < events.index(("reply", FXP_REALPATH)), events
        if operation == "pull":  # the source is opened as a directory in the same batch
            opendir = events.index(("request", FXP_OPENDIR))
            assert opendir < events.index(("reply", FXP_REALPATH)), events


@pytest.mark.parametrize("case", ["tree", "file", "in_the_way"])
async def test_a_pull_closes_the_early_opendir_it_does_not_list(local_tmp: Path, case: str) -> None:
    """A pull opens its source as a directory before it knows what it is. A tree lists
    that handle (one OPENDIR per directory); a file source, or a tree whose destination
    is in the way, leaves no handle open (pooled channels outlive the run)."""
    with asyncssh_server_thread() as bed:
        _branch(bed.root / "tree")
        write_file(bed.root / "one", b"one")
        (local_tmp / "taken").write_bytes(b"a file where the tree would go")
        session = await open_session(spec_for(bed.endpoint()))
        try:
            bed.stats.reset()
            if case == "tree":
                report = await api.pull(session, "/tree", str(local_tmp / "t"), TransferOptions())
                assert failures(report) == [] and report.files == 2 * DEPTH
            elif case == "file":
                report = await api.pull(session, "/one", str(local_tmp / "one"), TransferOptions())
                assert failures(report) == [] and report.files == 1
            else:
                with pytest.raises(api.TransferError, match="not a directory"):
                    await api.pull(session, "/tree", str(local_tmp / "taken"), TransferOptions())
        finally:
            await session.aclose()
        directories = DEPTH + 1 if case == "tree" else 1
        assert bed.stats.by_type[FXP_OPENDIR] == directories, bed.stats
        assert bed.stats.handles_given >= 1, bed.stats
        assert bed.stats.by_type[FXP_CLOSE] == bed.stats.handles_given, bed.stats


@pytest.mark.parametrize("server_version", ["", "OtherSSH_1.0"])
async def test_a_refused_mkdir_is_the_one_failure_of_its_branch(
    local_tmp: Path, server_version: str
) -> None:
    """Requests sent behind a MKDIR that fails (the branch below it, its files) fail too,
    silently: the report names the directory once, and the rest of the tree lands."""
    src = local_tmp / "src"
    _branch(src)
    write_file(src / "top", b"top")
    with asyncssh_server_thread(server_version=server_version) as bed:
        bed.refused_dirs = {b"d2"}
        bed.delays = {"mkdir": 0.05}
        session = await open_session(spec_for(bed.endpoint()))
        try:
            report = await api.push(session, f"{src}/", "/dst", TransferOptions())
        finally:
            await session.aclose()
    failed = failures(report)
    assert [path for path, _reason in failed] == ["d0/d1/d2"], failed
    assert "permission" in failed[0][1].lower(), failed
    assert report.files == 2 * 2 + 1 and report.dirs == 3


async def test_first_channel_gets_half_the_files_while_the_second_opens() -> None:
    """A tree's files in flight: half while its second channel is still opening (a
    backlog on one disk-bound channel would hold them all), the rest once it is open."""
    opening: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    channels = Channels([], ServerLimits(), Budget(64, 8), 0.05, tree=True)
    channels._openers.append(opening)  # a second channel on its way
    run: TreeRun[None] = TreeRun(Report(), 128, fail_fast=False)
    share_files(run, channels, 100)
    assert await _slots(run) == 50
    opening.set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await _slots(run) == 100
    done: TreeRun[None] = TreeRun(Report(), 128, fail_fast=False)
    share_files(done, channels, 100)  # nothing opening any more: all at once
    assert await _slots(done) == 100


async def _slots(run: TreeRun[None]) -> int:
    """How many files the run would start now (takes them and gives them back)."""
    taken = 0
    while True:
        try:
            await asyncio.wait_for(run._files.acquire(), 0.01)
        except TimeoutError:
            break
        taken += 1
    for _slot in range(taken):
        run._files.release()
    return taken


@pytest.mark.parametrize(
    ("window", "block"),
    [(None, 8192), (64 * 1024, 8192), (1024, 8192), (64 * 1024, 32 * 1024)],
)
async def test_a_channel_holds_back_requests_beyond_its_unanswered_bytes(
    window: int | None, block: int
) -> None:
    """With `limit_unanswered`, a channel keeps at most that many bytes of small requests
    at the server (the WRITEs are slow there, so without it all 64 pile up); a request
    larger than the window still goes, alone; requests of SERVER_READ_SIZE or more are
    not held back; the file is written whole and in order."""
    blocks = [pattern(block, seed=index) for index in range(64)]
    with asyncssh_server_thread() as bed:
        bed.delays = {"write": 0.002}
        session = await open_session(spec_for(bed.endpoint()))
        try:
            client = await session.open_sftp()
            if window is not None:
                client.limit_unanswered(window)
            handle = await client.open(b"/written", FXF_WRITE | FXF_CREAT | FXF_TRUNC)
            bed.stats.reset()
            replies = [
                client.write_nowait(handle, index * block, data)
                for index, data in enumerate(blocks)
            ]
            for reply in replies:
                SFTPClient.status_of(await reply)
            await client.close(handle)
            await client.aclose()
        finally:
            await session.aclose()
        writes = bed.stats.max_in_flight_by_type[FXP_WRITE]
        if window is None or block >= SERVER_READ_SIZE:
            assert writes >= 32, bed.stats
        elif window < block:
            assert writes == 1, bed.stats
        else:
            assert 2 <= writes <= window // block, bed.stats
        assert (bed.root / "written").read_bytes() == b"".join(blocks)
