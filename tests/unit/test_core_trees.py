"""Every generator shape pushed and pulled back byte-identical (content, mode, mtime, links)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import MIB
from tests.fixtures.compare import assert_same_tree, tree_summary
from tests.fixtures.trees import generate
from tests.unit.core_helpers import Target, failures, leftovers

pytest_plugins = ("tests.unit.core_fixtures",)

# Small enough to keep the suite quick, big enough to cross every code path: the large
# shape goes through the chunked path because the threshold is lowered below its size.
SHAPES: dict[str, dict[str, int]] = {
    "small": {"count": 300},
    "mixed": {"count": 60, "max_size": 3 * MIB},
    "large": {"count": 2, "size": 3 * MIB + 17},
    "deep": {"depth": 50},
    "wide": {"count": 10_000, "max_size": 64},
    "awkward": {},
    "empty": {},
    "symlinks": {},
}
OPTIONS = TransferOptions(large_file_threshold=1 * MIB, block_size=64 * 1024)


def _chroot_rewrites(target: Target, src: Path) -> Callable[[bytes], bool] | None:
    """The chrooted asyncssh server stores absolute link targets inside its root.

    Seen through SFTP they are unchanged (the pull back compares them); on its disk they
    are not, so the on-disk comparison skips them.
    """
    if target.name != "asyncssh":
        return None
    root = os.fsencode(src)

    def absolute_link(rel: bytes) -> bool:
        path = os.path.join(root, rel)
        return os.path.islink(path) and os.readlink(path).startswith(b"/")

    return absolute_link


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_shape_round_trip(
    target: Target, session: SSHSession, local_tmp: Path, shape: str
) -> None:
    src = local_tmp / "src"
    info = generate(shape, src, seed=7, **SHAPES[shape])
    counts = tree_summary(src)

    pushed = await api.push(session, f"{src}/", target.rpath("dst"), OPTIONS)
    assert failures(pushed) == []
    assert pushed.files == info.files
    assert pushed.bytes == info.bytes
    assert pushed.symlinks == info.symlinks
    assert pushed.dirs == info.dirs + 1  # the destination root is created too
    assert_same_tree(src, target.lpath("dst"), ignore=_chroot_rewrites(target, src))
    assert leftovers(target.local) == []

    back = local_tmp / "back"
    pulled = await api.pull(session, target.rpath("dst"), str(back), OPTIONS)
    assert failures(pulled) == []
    assert (pulled.files, pulled.bytes, pulled.symlinks) == (
        counts["files"], counts["bytes"], counts["symlinks"]
    )
    assert_same_tree(src, back)
    assert leftovers(back) == []

    again = await api.push(session, f"{src}/", target.rpath("dst"), OPTIONS)
    assert failures(again) == []
    assert not again.changed and again.bytes == 0


async def test_non_utf8_names_survive_both_ways(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    src.mkdir()
    name = b"caf\xe9-\xff\xfe"
    (src / os.fsdecode(name)).write_bytes(b"latin-1 name")
    os.mkdir(os.path.join(os.fsencode(src), name + b".d"))
    await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    remote_names = os.listdir(os.fsencode(target.lpath("dst")))
    assert sorted(remote_names) == sorted([name, name + b".d"])
    back = local_tmp / "back"
    await api.pull(session, target.rpath("dst"), str(back), TransferOptions())
    assert_same_tree(src, back)
