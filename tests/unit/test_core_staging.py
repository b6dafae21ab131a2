"""A new destination tree is built under a hidden staging name and renamed into place once
complete (push.py, `Push._stage`): its files are written under their final names, with no
temporary name and rename each, and nothing shows at the destination before it is whole."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_CONNECTION_LOST,
    FX_FAILURE,
    FXP_OPEN,
    FXP_WRITE,
    SFTPError,
)
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import (
    HookedSession,
    Target,
    failures,
    first_string,
    leftovers,
    pattern,
    set_tree_times,
    write_file,
)

pytest_plugins = ("tests.unit.core_fixtures",)

STAGING = ".pipelined.dst.part"


def _tree(src: Path, files: int = 12) -> None:
    for index in range(files):
        write_file(src / f"d{index % 3}" / f"f{index}", pattern(index * 97, seed=index))
    write_file(src / "empty", b"")
    (src / "d0" / "deeper").mkdir()
    set_tree_times(src)


def _on_write(number: int, action: Callable[[], None]) -> Callable[[Any], None]:
    """A hook that calls action() when the `number`-th WRITE of the run is sent."""
    sent = [0]

    def hook(client: Any) -> None:
        real_send = client.send

        def send(ptype: int, payload: Any, on_reply: Any) -> None:
            if ptype == FXP_WRITE:
                sent[0] += 1
                if sent[0] == number:
                    action()
            real_send(ptype, payload, on_reply)

        client.send = send

    return hook


async def test_a_new_tree_shows_at_its_destination_only_when_complete(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _tree(src)
    seen: dict[str, bool] = {}

    def look() -> None:
        seen["final"] = target.lpath("dst").exists()
        seen["staged"] = target.lpath(STAGING).is_dir()

    hooked = HookedSession(session, _on_write(1, look))
    report = await api.push(hooked, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == [] and report.files == 13
    assert seen == {"final": False, "staged": True}
    assert_same_tree(src, target.lpath("dst"))
    assert not target.lpath(STAGING).exists()
    assert leftovers(target.local) == []
    again = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert not again.changed and failures(again) == []


async def test_an_interrupted_new_tree_is_finished_by_the_next_run(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """The run stops (a lost connection) with some files written: the destination does
    not exist, the staging directory does; the next run takes it up and moves it."""
    src = local_tmp / "src"
    _tree(src, files=30)

    def lose() -> None:
        raise SFTPError(FX_CONNECTION_LOST, "the connection was lost (simulated)")

    hooked = HookedSession(session, _on_write(8, lose))
    with pytest.raises(api.TransferError, match="simulated"):
        await api.push(hooked, f"{src}/", target.rpath("dst"), TransferOptions())
    assert not target.lpath("dst").exists()
    assert target.lpath(STAGING).is_dir()
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == []
    assert report.skipped > 0  # files the first run finished are not sent again
    assert_same_tree(src, target.lpath("dst"))
    assert not target.lpath(STAGING).exists()
    assert leftovers(target.local) == []


def _fails(on_reply: Callable[[Any], None], _reply: Any) -> None:
    on_reply(SFTPError(FX_FAILURE, "disk trouble"))


async def test_a_file_failing_in_a_staged_tree_is_removed_before_the_move(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _tree(src)
    write_file(src / "d1" / "victim", pattern(5000, seed=7))
    set_tree_times(src)
    handles: set[bytes] = set()

    def hook(client: Any) -> None:
        real_send = client.send

        def send(ptype: int, payload: Any, on_reply: Any) -> None:
            if ptype == FXP_OPEN and first_string(payload).endswith(b"/d1/victim"):
                real_on_reply = on_reply

                def opened(reply: Any) -> None:
                    if not isinstance(reply, SFTPError):
                        handles.add(bytes(reply[1].data[4:]))
                    real_on_reply(reply)

                on_reply = opened
            elif ptype == FXP_WRITE and first_string(payload) in handles:
                on_reply = partial(_fails, on_reply)  # the WRITE is done, its answer says no
            real_send(ptype, payload, on_reply)

        client.send = send

    report = await api.push(
        HookedSession(session, hook), f"{src}/", target.rpath("dst"), TransferOptions()
    )
    assert failures(report) == [("d1/victim", "disk trouble")]
    assert handles, "the hook never saw the victim's OPEN"
    assert not target.lpath("dst", "d1", "victim").exists()
    (src / "d1" / "victim").unlink()
    set_tree_times(src)
    assert_same_tree(src, target.lpath("dst"))
    assert leftovers(target.local) == []


async def test_a_destination_that_appears_meanwhile_is_not_replaced(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _tree(src)

    def someone_else() -> None:
        write_file(target.lpath("dst", "theirs"), b"not ours")

    hooked = HookedSession(session, _on_write(1, someone_else))
    report = await api.push(hooked, f"{src}/", target.rpath("dst"), TransferOptions())
    [(path, reason)] = failures(report)
    assert path == "." and "could not move the tree into place" in reason, reason
    assert STAGING in reason
    assert sorted(p.name for p in target.lpath("dst").iterdir()) == ["theirs"]
    assert_same_tree(src, target.lpath(STAGING))


async def test_updates_and_check_mode_do_not_stage(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _tree(src)
    preview = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(check_mode=True)
    )
    assert preview.changed and not target.lpath("dst").exists()
    assert not target.lpath(STAGING).exists()
    target.lpath("dst").mkdir()
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == [] and report.files == 13
    assert not target.lpath(STAGING).exists()
    assert_same_tree(src, target.lpath("dst"))
