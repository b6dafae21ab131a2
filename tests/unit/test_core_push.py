"""push and pull round trips through the core, on sshd and on the asyncssh server."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    SSHSession,
    open_session,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import SECOND_CHANNEL_AFTER
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import KIB, MIB
from tests.fixtures.asyncssh_server import AsyncSSHServer
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import (
    FIXED_MTIME,
    Target,
    failures,
    leftovers,
    pattern,
    set_tree_times,
    spec_for,
    write_file,
)

pytest_plugins = ("tests.unit.core_fixtures",)

BLOCK = 1024  # the smallest block the core accepts
THRESHOLD = 8 * BLOCK
PULL_WINDOW = 64 * BLOCK  # pull reads files above block * 64 with a sliding window
BOUNDARY_SIZES = sorted(
    {
        0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK,
        THRESHOLD - 1, THRESHOLD, THRESHOLD + 1,
        PULL_WINDOW - 1, PULL_WINDOW, PULL_WINDOW + 1,
    }
)
SMALL_BLOCKS = TransferOptions(block_size=BLOCK, large_file_threshold=THRESHOLD)


def _boundary_tree(root: Path) -> None:
    for i, size in enumerate(BOUNDARY_SIZES):
        write_file(root / f"f{size:06d}", pattern(size, seed=i), mode=0o640 + (i % 8))
    set_tree_times(root)


async def test_push_pull_block_boundaries(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _boundary_tree(src)
    report = await api.push(session, f"{src}/", target.rpath("dst"), SMALL_BLOCKS)
    assert failures(report) == []
    assert report.files == len(BOUNDARY_SIZES)
    assert report.bytes == sum(BOUNDARY_SIZES)
    assert report.changed
    assert_same_tree(src, target.lpath("dst"))
    assert leftovers(target.local) == []

    back = local_tmp / "back"
    report = await api.pull(session, target.rpath("dst"), str(back), SMALL_BLOCKS)
    assert failures(report) == []
    assert report.files == len(BOUNDARY_SIZES)
    assert report.bytes == sum(BOUNDARY_SIZES)
    assert_same_tree(src, back)
    assert leftovers(back) == []


async def test_single_file_boundaries(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """A file source lands at dest; pulled back it is byte-identical with mode and time."""
    for size in BOUNDARY_SIZES:
        data = pattern(size, seed=size)
        one, copy, back = f"one{size}", f"copy{size}", local_tmp / f"back{size}"
        write_file(local_tmp / one, data, mode=0o604)
        report = await api.push(session, str(local_tmp / one), target.rpath(copy), SMALL_BLOCKS)
        assert failures(report) == []
        assert (report.files, report.bytes) == (1, size)
        dest = target.lpath(copy)
        assert dest.read_bytes() == data
        assert (dest.stat().st_mode & 0o7777, int(dest.stat().st_mtime)) == (0o604, FIXED_MTIME)

        report = await api.pull(session, target.rpath(copy), str(back), SMALL_BLOCKS)
        assert failures(report) == []
        assert (report.files, report.bytes) == (1, size)
        assert back.read_bytes() == data
        assert (back.stat().st_mode & 0o7777, int(back.stat().st_mtime)) == (0o604, FIXED_MTIME)
    assert leftovers(target.local) == [] and leftovers(local_tmp) == []


async def test_second_push_and_pull_change_nothing(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _boundary_tree(src)
    (src / "sub" / "deeper").mkdir(parents=True)
    write_file(src / "sub" / "deeper" / "x", b"x")
    os.symlink("f000001", src / "link")
    set_tree_times(src)
    first = await api.push(session, str(src), target.rpath("d"), SMALL_BLOCKS)
    assert failures(first) == [] and first.changed
    second = await api.push(session, str(src), target.rpath("d"), SMALL_BLOCKS)
    assert failures(second) == []
    assert not second.changed
    assert (second.bytes, second.files, second.dirs, second.symlinks) == (0, 0, 0, 0)
    assert second.skipped == len(BOUNDARY_SIZES) + 2  # files + x + link
    assert_same_tree(src, target.lpath("d", "src"))

    back = local_tmp / "back"
    first = await api.pull(session, target.rpath("d", "src"), str(back), SMALL_BLOCKS)
    assert failures(first) == [] and first.changed
    second = await api.pull(session, target.rpath("d", "src"), str(back), SMALL_BLOCKS)
    assert failures(second) == []
    assert not second.changed
    assert (second.bytes, second.files) == (0, 0)
    assert_same_tree(src, back)


async def test_trailing_slash_rule(target: Target, session: SSHSession, local_tmp: Path) -> None:
    """"dir/" copies the contents into dest; "dir" creates dest/dir."""
    src = local_tmp / "tree"
    write_file(src / "a", b"a")
    await api.push(session, f"{src}/", target.rpath("contents"), TransferOptions())
    await api.push(session, str(src), target.rpath("itself"), TransferOptions())
    assert sorted(os.listdir(target.lpath("contents"))) == ["a"]
    assert sorted(os.listdir(target.lpath("itself"))) == ["tree"]
    assert target.lpath("itself", "tree", "a").read_bytes() == b"a"


async def test_file_into_existing_directory(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    write_file(local_tmp / "f", b"data")
    target.lpath("dir").mkdir()
    await api.push(session, str(local_tmp / "f"), target.rpath("dir"), TransferOptions())
    assert target.lpath("dir", "f").read_bytes() == b"data"
    await api.push(session, str(local_tmp / "f"), target.rpath("new") + "/", TransferOptions())
    assert target.lpath("new", "f").read_bytes() == b"data"


async def test_missing_source_is_one_sentence(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    with pytest.raises(api.TransferError, match="does not exist") as info:
        await api.push(session, str(local_tmp / "nope"), target.rpath("x"), TransferOptions())
    assert str(local_tmp / "nope") in str(info.value)
    with pytest.raises(api.TransferError, match="does not exist") as info:
        await api.pull(session, target.rpath("nope"), str(local_tmp / "x"), TransferOptions())
    assert "nope" in str(info.value)
    assert not (local_tmp / "x").exists()


async def test_large_file_over_two_connections(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    size = 5 * MIB + 3
    data = pattern(size, seed=11)
    write_file(local_tmp / "big", data)
    options = TransferOptions(connections=2, large_file_threshold=1 * MIB, block_size=64 * KIB)
    report = await api.push(session, str(local_tmp / "big"), target.rpath("big"), options)
    assert failures(report) == []
    assert (report.files, report.bytes) == (1, size)
    assert target.lpath("big").read_bytes() == data
    assert leftovers(target.local) == []


async def test_a_pulled_tree_reads_its_small_files_over_one_channel(
    core_asyncssh: AsyncSSHServer, local_tmp: Path
) -> None:
    """The server only reads a pull's small files: one sftp-server does, however many
    (a pushed tree of as many opens a second; see the test below)."""
    endpoint = core_asyncssh.endpoint()
    scratch = f"pull-channels-{uuid.uuid4().hex[:8]}"
    tree = endpoint.local_root / scratch
    count = SECOND_CHANNEL_AFTER + 44
    for i in range(count):
        write_file(tree / f"d{i % 4}" / f"f{i}", pattern(100 + i, seed=i))
    session = await open_session(spec_for(endpoint))
    try:
        before = core_asyncssh.stats.sftp_sessions
        remote = f"{endpoint.remote_root.rstrip('/')}/{scratch}"
        report = await api.pull(session, remote, str(local_tmp / "back"), TransferOptions())
        assert failures(report) == [] and report.files == count
        assert core_asyncssh.stats.sftp_sessions - before == 1
        assert_same_tree(tree, local_tmp / "back")
    finally:
        await session.aclose()
        shutil.rmtree(tree, ignore_errors=True)


async def test_extra_channels_open_only_when_the_run_needs_them(
    core_asyncssh: AsyncSSHServer, local_tmp: Path
) -> None:
    """A single file uses one SFTP channel, small or large; the small files of a tree use
    one while there are few (fewer than SECOND_CHANNEL_AFTER), two however many more; the
    large files of a tree bring the others (one each).

    (Channel counts come from the instrumented asyncssh server.)"""
    endpoint = core_asyncssh.endpoint()
    scratch = f"channels-{uuid.uuid4().hex[:8]}"
    remote = f"{endpoint.remote_root.rstrip('/')}/{scratch}"
    (endpoint.local_root / scratch).mkdir()
    session = await open_session(spec_for(endpoint))
    try:
        one = local_tmp / "one.txt"
        write_file(one, b"just one file")
        before = core_asyncssh.stats.sftp_sessions
        report = await api.push(session, str(one), f"{remote}/one.txt", TransferOptions())
        assert failures(report) == [] and report.files == 1
        assert core_asyncssh.stats.sftp_sessions - before == 1

        tree = local_tmp / "tree"
        for i in range(SECOND_CHANNEL_AFTER - 56):
            write_file(tree / f"d{i % 4}" / f"f{i}", pattern(100 + i, seed=i))
        before = core_asyncssh.stats.sftp_sessions  # a small tree: one channel
        report = await api.push(session, f"{tree}/", f"{remote}/small", TransferOptions())
        assert failures(report) == [] and report.files == SECOND_CHANNEL_AFTER - 56
        assert core_asyncssh.stats.sftp_sessions - before == 1
        assert_same_tree(tree, endpoint.local_root / scratch / "small")

        for i in range(SECOND_CHANNEL_AFTER - 56, 300):
            write_file(tree / f"d{i % 4}" / f"f{i}", pattern(100 + i, seed=i))
        before = core_asyncssh.stats.sftp_sessions  # a tree of more files: a second one
        report = await api.push(session, f"{tree}/", f"{remote}/tree", TransferOptions())
        assert failures(report) == [] and report.files == 300
        assert core_asyncssh.stats.sftp_sessions - before == 2
        assert_same_tree(tree, endpoint.local_root / scratch / "tree")

        large = TransferOptions(large_file_threshold=64 * KIB)
        big = local_tmp / "big.bin"
        write_file(big, pattern(300 * KIB, seed=7))
        before = core_asyncssh.stats.sftp_sessions
        report = await api.push(session, str(big), f"{remote}/big.bin", large)
        assert failures(report) == [] and report.files == 1
        assert core_asyncssh.stats.sftp_sessions - before == 1

        for i in range(2):
            write_file(tree / f"big{i}.bin", pattern(300 * KIB, seed=i))
        before = core_asyncssh.stats.sftp_sessions
        report = await api.push(session, f"{tree}/", f"{remote}/tree2", large)
        assert failures(report) == [] and report.files == 302
        assert core_asyncssh.stats.sftp_sessions - before > 2
        assert_same_tree(tree, endpoint.local_root / scratch / "tree2")
    finally:
        await session.aclose()
        shutil.rmtree(endpoint.local_root / scratch, ignore_errors=True)
