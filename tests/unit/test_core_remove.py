"""remove through the core, on sshd and on the asyncssh server."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import RemoveOptions
from tests.fixtures.compare import tree_summary
from tests.fixtures.trees import generate
from tests.unit.core_helpers import Target, failures, snapshot, write_file

pytest_plugins = ("tests.unit.core_fixtures",)


async def test_remove_tree(target: Target, session: SSHSession) -> None:
    tree = target.lpath("tree")
    generate("small", tree / "small", seed=1, count=250, max_size=256)
    generate("deep", tree / "deep", seed=1, depth=30)
    generate("empty", tree / "empty", seed=1)
    counts = tree_summary(tree)
    entries = counts["files"] + counts["dirs"] + counts["symlinks"] + 1  # + the root
    report = await api.remove(session, [target.rpath("tree")], RemoveOptions())
    assert failures(report) == []
    assert report.changed and report.deleted == entries
    assert not tree.exists()

    again = await api.remove(session, [target.rpath("tree")], RemoveOptions())
    assert failures(again) == [] and not again.changed and again.deleted == 0


async def test_remove_files_and_absent_paths(target: Target, session: SSHSession) -> None:
    write_file(target.lpath("f1"), b"1")
    write_file(target.lpath("sub", "f2"), b"2")
    report = await api.remove(
        session,
        [target.rpath("f1"), target.rpath("absent"), target.rpath("sub", "f2"), target.rpath("x/")],
        RemoveOptions(),
    )
    assert failures(report) == []
    assert report.deleted == 2
    gone = sorted([target.rpath("f1"), target.rpath("sub", "f2")])
    assert sorted(report.deleted_paths.items) == gone
    assert not target.lpath("f1").exists() and target.lpath("sub").is_dir()

    nothing = await api.remove(session, [target.rpath("absent")], RemoveOptions())
    assert not nothing.changed and nothing.deleted == 0 and failures(nothing) == []


async def test_symlinks_are_removed_not_followed(target: Target, session: SSHSession) -> None:
    outside = target.lpath("outside")
    write_file(outside / "precious", b"keep me")
    write_file(target.lpath("tree", "f"), b"f")
    os.symlink("../outside", target.lpath("tree", "dirlink"))
    os.symlink("../outside/precious", target.lpath("tree", "filelink"))
    os.symlink("../outside", target.lpath("toplink"))
    before = snapshot(outside)

    report = await api.remove(session, [target.rpath("toplink")], RemoveOptions())
    assert failures(report) == [] and report.deleted == 1
    assert not os.path.lexists(target.lpath("toplink"))
    report = await api.remove(session, [target.rpath("tree")], RemoveOptions())
    assert failures(report) == [] and report.deleted == 4
    assert not os.path.lexists(target.lpath("tree"))
    assert snapshot(outside) == before


async def test_check_mode_removes_nothing(target: Target, session: SSHSession) -> None:
    generate("small", target.lpath("tree"), seed=2, count=30, max_size=16)
    write_file(target.lpath("file"), b"x")
    before = snapshot(target.local)
    paths = [target.rpath("tree"), target.rpath("file")]
    checked = await api.remove(session, paths, RemoveOptions(check_mode=True))
    assert snapshot(target.local) == before
    real = await api.remove(session, paths, RemoveOptions())
    assert checked.changed and (checked.deleted, checked.deleted_paths.total) == (
        real.deleted,
        real.deleted_paths.total,
    )
    assert os.listdir(target.local) == []


@pytest.mark.parametrize(
    "path", ["/", "", "  ", "//", "/./", "relative/path", "./x", "/a/../b", "/a/..", "../x"]
)
async def test_unsafe_paths_are_refused_before_anything_is_touched(
    target: Target, session: SSHSession, path: str
) -> None:
    write_file(target.lpath("keep"), b"keep")
    with pytest.raises(api.UnsafeRemovePath) as info:
        await api.remove(session, [target.rpath("keep"), path], RemoveOptions())
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("refusing to remove")
    assert target.lpath("keep").read_bytes() == b"keep"
    with pytest.raises(ValueError):
        api.validate_remove_path(path)
