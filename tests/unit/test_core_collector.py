"""The garbage collector's setting for the length of a run, restored after the last run."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import collector
from ansible_collections.pipelined.sftp.plugins.plugin_utils.collector import (
    RUN_GEN0_THRESHOLD,
    quiet_collector,
)


@pytest.fixture(autouse=True)
def _default_collector() -> Iterator[None]:
    """Python's defaults and no run under way, whatever other tests left behind."""
    saved = (collector._active, collector._saved_threshold, collector._froze, gc.get_threshold())
    collector._active, collector._saved_threshold, collector._froze = 0, None, False
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    collector._active, collector._saved_threshold, collector._froze = saved[:3]
    gc.set_threshold(*saved[3])


def test_a_run_freezes_and_raises_gen0_then_restores() -> None:
    with quiet_collector():
        assert gc.get_threshold() == (RUN_GEN0_THRESHOLD, 10, 10)
        frozen = gc.get_freeze_count()
        assert frozen > 0
        during = [[] for _index in range(10)]
        # What the run makes stays collectable (frozen objects are in no generation;
        # the freeze count may only drop, as frozen objects die).
        collectable = (obj for generation in range(3) for obj in gc.get_objects(generation))
        assert any(obj is during for obj in collectable)
        assert gc.get_freeze_count() <= frozen
        del during
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_nested_runs_restore_only_when_the_last_ends() -> None:
    outer = quiet_collector()
    inner = quiet_collector()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # runs end in any order
    assert gc.get_threshold()[0] == RUN_GEN0_THRESHOLD
    assert gc.get_freeze_count() > 0
    inner.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_higher_threshold_and_someone_elses_freeze_are_kept() -> None:
    gc.set_threshold(50_000, 5, 5)
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with quiet_collector():
            assert gc.get_threshold() == (50_000, 5, 5)
        assert gc.get_threshold() == (50_000, 5, 5)
        assert 0 < gc.get_freeze_count() <= frozen  # not unfrozen (frozen objects may die)
    finally:
        gc.unfreeze()


def test_cycles_made_during_a_run_are_still_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with quiet_collector():
        node = Node()
        alive = [node]
        del node
        alive.clear()
        assert gc.collect() >= 1
