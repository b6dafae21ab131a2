"""Small files moved by reply callbacks (chains.py): the cases their fast path hands
elsewhere or must refuse, on both real servers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FXP_OPEN,
    FXP_READ,
    FXP_REALPATH,
    SFTPError,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import KIB
from tests.fixtures.asyncssh_server import AsyncSSHServer
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


def _change_at_first_read(name: bytes, change: Any) -> Any:
    """A hook that calls change() when the first READ is sent after the OPEN of `name`."""
    state = {"opened": False, "done": False}

    def hook(client: Any) -> None:
        real_send = client.send

        def send(ptype: int, payload: Any, on_reply: Any) -> None:
            if ptype == FXP_OPEN and first_string(payload).endswith(b"/" + name):
                state["opened"] = True
            elif ptype == FXP_READ and state["opened"] and not state["done"]:
                state["done"] = True
                change()
            real_send(ptype, payload, on_reply)

        client.send = send

    return hook


@pytest.mark.parametrize("how", ["grows", "shrinks"])
async def test_pull_of_a_small_file_changing_on_the_server_is_reported(
    target: Target, session: SSHSession, local_tmp: Path, how: str
) -> None:
    remote = target.lpath("tree", "moving")
    write_file(remote, pattern(40 * KIB, seed=4))
    write_file(target.lpath("tree", "calm"), b"calm")
    set_tree_times(target.lpath("tree"))

    def change() -> None:
        if how == "grows":
            with open(remote, "ab") as more:
                more.write(b"more")
        else:
            os.truncate(remote, 10 * KIB)

    back = local_tmp / "back"
    report = await api.pull(
        HookedSession(session, _change_at_first_read(b"moving", change)),
        target.rpath("tree"),
        str(back),
        TransferOptions(block_size=16 * KIB),
    )
    assert [path for path, _reason in failures(report)] == ["moving"]
    word = "grew" if how == "grows" else "shrank"
    assert word in failures(report)[0][1], failures(report)
    assert not (back / "moving").exists()
    assert (back / "calm").read_bytes() == b"calm"
    assert leftovers(back) == []


@pytest.mark.parametrize("target", ["asyncssh"], indirect=True)
async def test_pull_from_a_server_answering_reads_short_gets_every_byte(
    target: Target, local_tmp: Path, core_asyncssh: AsyncSSHServer
) -> None:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session

    tree = target.lpath("tree")
    for size in (0, 4999, 5000, 5001, 16 * KIB, 70 * KIB + 3):
        write_file(tree / f"f{size}", pattern(size, seed=size))
    set_tree_times(tree)
    bed = core_asyncssh
    bed.short_reads = 5000
    try:
        session = await open_session(target.spec)
        try:
            report = await api.pull(
                session,
                target.rpath("tree"),
                str(local_tmp / "back"),
                TransferOptions(block_size=16 * KIB),
            )
        finally:
            await session.aclose()
    finally:
        bed.short_reads = None
    assert failures(report) == [] and report.files == 6
    assert_same_tree(tree, local_tmp / "back")


async def test_a_reply_callback_that_raises_ends_the_session_with_a_clear_error(
    session: SSHSession,
) -> None:
    client = await session.open_sftp()
    try:
        assert await client.realpath(b".")

        def broken(_reply: object) -> None:
            raise ValueError("boom")

        client.send(FXP_REALPATH, b"\x00\x00\x00\x01.", broken)
        with pytest.raises(SFTPError, match="internal error while handling a reply"):
            for _attempt in range(100):
                await client.realpath(b".")
        assert client.closed
    finally:
        await client.aclose()


@pytest.mark.parametrize("target", ["sshd"], indirect=True)
async def test_push_onto_a_full_disk_leaves_no_partial_file(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    src = local_tmp / "src"
    for i in range(60):
        write_file(src / f"f{i:02d}", pattern(12 * KIB + i, seed=i))
    set_tree_times(src)
    full = target.lpath("full")
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], check=True)
    try:
        report = await api.push(session, f"{src}/", target.rpath("full", "dst"), TransferOptions())
        lost = {path for path, _reason in failures(report)}
        assert lost and report.files > 0, (report.files, failures(report)[:3])
        assert report.files + len(lost) == 60
        dst = full / "dst"
        for i in range(60):
            name = f"f{i:02d}"
            if name in lost:
                assert not (dst / name).exists()
            else:
                assert (dst / name).read_bytes() == (src / name).read_bytes()
        assert leftovers(full) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)


@pytest.mark.parametrize("target", ["asyncssh"], indirect=True)
async def test_a_pulled_small_file_needs_no_read_past_its_end(
    target: Target, session: SSHSession, local_tmp: Path, core_asyncssh: AsyncSSHServer
) -> None:
    """On a server that answers a READ in full up to the end of a file, the last READ
    asks for a whole block, so a file that grew shows there: one READ for a file of less
    than a block, and a READ past the end only for an empty file or one that ends on a
    block boundary."""
    block = 16 * KIB
    tree = target.lpath("tree")
    reads_for = {1: 1, 5000: 1, block - 1: 1, block: 2, 2 * block: 3, 0: 1}
    for size in reads_for:
        write_file(tree / f"f{size}", pattern(size, seed=size))
    set_tree_times(tree)
    before = core_asyncssh.stats.by_type[FXP_READ]
    report = await api.pull(
        session, target.rpath("tree"), str(local_tmp / "back"), TransferOptions(block_size=block)
    )
    assert failures(report) == [] and report.files == len(reads_for)
    assert core_asyncssh.stats.by_type[FXP_READ] - before == sum(reads_for.values())
    assert_same_tree(tree, local_tmp / "back")
