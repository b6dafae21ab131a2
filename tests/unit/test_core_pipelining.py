"""Pipelining, proven by the instrumented asyncssh server rather than by timing.

The server counts a request as in flight from the moment its packet arrives until its
reply is written, so its maximum is a lower bound of what the client kept outstanding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Budget
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import Channels
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
    RemoveOptions,
    TransferOptions,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import ServerLimits
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import Target, failures, pattern, set_tree_times, write_file

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
