"""The byte budget: file data held in memory stays under its cap, and never deadlocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api, budget
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import KIB, MIB
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import Target, failures, pattern, set_tree_times, write_file

pytest_plugins = ("tests.unit.core_fixtures",)


async def test_byte_budget_grants_in_order_and_clamps() -> None:
    memory = budget.ByteBudget(100)
    assert await memory.acquire(60) == 60
    assert memory.try_acquire(50) is None
    order: list[str] = []

    async def want(name: str, size: int) -> int:
        taken = await memory.acquire(size)
        order.append(name)
        return taken

    big = asyncio.ensure_future(want("big", 500))  # clamped to the cap: waits for empty
    small = asyncio.ensure_future(want("small", 10))  # fits, but must not overtake
    await asyncio.sleep(0)
    assert order == []
    memory.release(60)
    assert await big == 100
    assert order == ["big"]
    assert memory.try_acquire(1) is None  # "small" waits first
    memory.release(100)
    assert await small == 10
    assert memory.held == 10 and memory.peak == 100


async def test_request_lane_takes_several_slots_in_order() -> None:
    """A file's batch of requests takes its slots at once; waiters are served in order,
    a cancelled waiter gives nothing away, and a reservation is counted as outstanding."""
    lane = budget.Lane(4)
    assert lane.try_acquire(3)
    assert not lane.try_acquire(2)
    order: list[str] = []

    async def want(name: str, count: int) -> None:
        await lane.acquire(count)
        order.append(name)

    three = asyncio.ensure_future(want("three", 3))
    gone = asyncio.ensure_future(want("gone", 1))
    one = asyncio.ensure_future(want("one", 1))  # fits now, but must not overtake
    await asyncio.sleep(0)
    assert order == [] and lane.free == 1
    gone.cancel()
    lane.release(3)
    await asyncio.gather(three, one)
    assert order == ["three", "one"] and lane.free == 0
    assert gone.cancelled()
    lane.release(4)
    assert lane.free == 4

    requests = budget.Budget(max_requests=16, max_handles=4)
    assert requests.batch_fits(14) and not requests.batch_fits(15)  # 2 slots kept for listing
    async with requests.requests(5):
        assert requests.outstanding == 5 and requests.peak == 5
    assert requests.outstanding == 0

    # a reply callback cannot await: it queues for slots with when_free, in the same line
    granted: list[str] = []
    async with requests.requests(12):
        requests.when_free(2, lambda: granted.append("now"))  # 14 fit
        requests.when_free(3, lambda: granted.append("callback"))
        waiter = asyncio.ensure_future(want_slots(requests, 1, granted))
        await asyncio.sleep(0)
        assert granted == ["now"] and requests.outstanding == 14
    await waiter
    assert granted == ["now", "callback", "awaited"]  # first come, first served
    assert requests.outstanding == 6
    requests.release_requests(2 + 3 + 1)
    assert requests.outstanding == 0


async def want_slots(requests: budget.Budget, count: int, granted: list[str]) -> None:
    await requests._transfer.acquire(count)
    requests._taken(count)
    granted.append("awaited")


async def test_transfers_hold_at_most_the_cap(
    target: Target, session: SSHSession, local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Medium and large files with a 1 MiB cap: the cap holds and everything arrives."""
    cap = 1 * MIB
    monkeypatch.setattr(budget, "MAX_BYTES_IN_FLIGHT", cap)
    seen: list[int] = []
    real_take = budget.ByteBudget._take

    def take(self: budget.ByteBudget, size: int) -> None:
        real_take(self, size)
        seen.append(self.held)

    monkeypatch.setattr(budget.ByteBudget, "_take", take)
    src = local_tmp / "src"
    for i in range(24):
        write_file(src / f"m{i:02d}", pattern(300 * KIB + i, seed=i))
    write_file(src / "large", pattern(3 * MIB + 5, seed=99))
    set_tree_times(src)
    options = TransferOptions(large_file_threshold=2 * MIB, block_size=64 * KIB)
    pushed = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(pushed) == []
    back = local_tmp / "back"
    pulled = await api.pull(session, target.rpath("dst"), str(back), options)
    assert failures(pulled) == []
    assert_same_tree(src, back)
    assert seen and max(seen) <= cap
    assert max(seen) > cap // 2  # the budget was really the limit, not idle
