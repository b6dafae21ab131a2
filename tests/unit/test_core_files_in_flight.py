"""budget.Lane with one slot at a time: the files-in-flight counter of a tree run."""

from __future__ import annotations

import asyncio

from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Lane


async def _settle() -> None:
    for _tick in range(5):
        await asyncio.sleep(0)


async def test_slots_are_handed_to_waiters_in_order() -> None:
    slots = Lane(2)
    await slots.acquire()
    await slots.acquire()
    order: list[int] = []

    async def wait(index: int) -> None:
        await slots.acquire()
        order.append(index)

    waiters = [asyncio.ensure_future(wait(index)) for index in range(3)]
    await _settle()
    assert order == []
    slots.release()
    await _settle()
    assert order == [0]
    slots.release()
    slots.release()
    await _settle()
    assert order == [0, 1, 2]
    await asyncio.gather(*waiters)
    slots.release()
    await asyncio.wait_for(slots.acquire(), 1)  # a slot released with no waiter is free


async def test_a_cancelled_waiter_takes_no_slot_and_loses_none() -> None:
    slots = Lane(1)
    await slots.acquire()
    gone = asyncio.ensure_future(slots.acquire())
    await _settle()
    gone.cancel()
    await _settle()
    slots.release()  # the cancelled waiter does not take it
    await asyncio.wait_for(slots.acquire(), 1)

    handed = asyncio.ensure_future(slots.acquire())
    after = asyncio.ensure_future(slots.acquire())
    await _settle()
    slots.release()  # handed to `handed`, which is cancelled before it runs
    handed.cancel()
    await _settle()
    assert handed.cancelled()
    await asyncio.wait_for(after, 1)  # the slot went on to the next waiter
