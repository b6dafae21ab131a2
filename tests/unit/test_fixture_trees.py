"""Tree generator determinism and the tree comparison helper."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import REPO_ROOT
from tests.fixtures.compare import assert_same_tree, compare_trees, tree_summary
from tests.fixtures.trees import AWKWARD_NAMES, SHAPES, generate

TreeFactory = Callable[..., Path]

SMALL_PARAMS: dict[str, dict[str, int]] = {
    "small": {"count": 120},
    "mixed": {"count": 40, "max_size": 2 * 1024 * 1024},
    "large": {"count": 2, "size": 3 * 1024 * 1024 + 17},
    "deep": {"depth": 50},
    "wide": {"count": 200},
    "awkward": {},
    "empty": {},
    "symlinks": {},
    "all": {"count": 30},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_same_seed_same_tree(tree_factory: TreeFactory, shape: str) -> None:
    a = tree_factory(shape, seed=7, **SMALL_PARAMS[shape])
    b = tree_factory(shape, seed=7, **SMALL_PARAMS[shape])
    assert compare_trees(a, b) == []
    assert tree_summary(a) == tree_summary(b)


@pytest.mark.parametrize("shape", ["small", "mixed", "large", "wide", "deep"])
def test_other_seed_other_tree(tree_factory: TreeFactory, shape: str) -> None:
    a = tree_factory(shape, seed=1, **SMALL_PARAMS[shape])
    b = tree_factory(shape, seed=2, **SMALL_PARAMS[shape])
    kinds = {d.kind for d in compare_trees(a, b)}
    assert kinds & {"size", "content", "mtime", "mode"}


def test_shapes_have_their_features(tree_factory: TreeFactory) -> None:
    deep = tree_factory("deep", depth=50)
    assert sum(1 for _level in os.walk(deep)) == 51
    # 10,000 files: on tmpfs when there is one, disk file creation costs ~1 ms each
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        generate("wide", Path(d) / "wide", count=10_000)
        assert len(os.listdir(Path(d) / "wide" / "wide")) == 10_000
    awkward = os.fsencode(tree_factory("awkward"))
    names = set(os.listdir(awkward))
    assert set(AWKWARD_NAMES) <= names
    assert b"latin1-\xe9\xff-not-utf8" in names and b"new\nline" in names
    links = tree_factory("symlinks")
    assert os.readlink(links / "link-outside-absolute").startswith("/")
    assert os.readlink(links / "link-outside-relative").startswith("../")
    assert not (links / "link-dangling").exists()
    empty = tree_factory("empty")
    assert os.listdir(empty / "nested" / "empty" / "deeper") == []
    large = tree_factory("large", count=1, size=5 * 1024 * 1024)
    data = (large / "large00.bin").read_bytes()
    chunks = {data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)}
    assert len(chunks) == 5  # no two megabytes alike: misplaced chunks are caught


def test_generate_refuses_non_empty_root_and_unknown_shape(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(FileExistsError):
        generate("small", tmp_path)
    with pytest.raises(ValueError, match="Unknown tree shape"):
        generate("nope", tmp_path / "new")


def test_cli_writes_the_same_tree(tmp_path: Path, tree_factory: TreeFactory) -> None:
    expected = tree_factory("small", seed=3, count=25)
    out = tmp_path / "cli"
    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.trees", "small", str(out), "--seed", "3",
         "--count", "25"],
        cwd=REPO_ROOT, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert_same_tree(expected, out)


def _copy(tree_factory: TreeFactory, shape: str = "all") -> tuple[bytes, bytes]:
    a = os.fsencode(tree_factory(shape, seed=5, count=20))
    b = a + b"-copy"
    shutil.copytree(os.fsdecode(a), os.fsdecode(b), symlinks=True)
    # copytree does not keep directory mtimes set before children were copied
    for dirpath, _dirs, _files in os.walk(a):
        rel = os.path.relpath(dirpath, a)
        st = os.stat(dirpath)
        os.utime(os.path.join(b, rel), ns=(st.st_atime_ns, st.st_mtime_ns))
    assert compare_trees(a, b) == []
    return a, b


def test_compare_catches_one_byte(tree_factory: TreeFactory) -> None:
    a, b = _copy(tree_factory)
    target = os.path.join(b, b"awkward", b"latin1-\xe9\xff-not-utf8")
    st = os.stat(target)
    with open(target, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    diffs = compare_trees(a, b)
    assert [(d.path, d.kind) for d in diffs] == [(b"awkward/latin1-\xe9\xff-not-utf8", "content")]
    with pytest.raises(AssertionError, match=r"latin1-\\xe9\\xff-not-utf8.*content differs"):
        assert_same_tree(a, b)


def test_compare_catches_mode_mtime_target_type_missing(tree_factory: TreeFactory) -> None:
    a, b = _copy(tree_factory)
    os.chmod(os.path.join(b, b"small/d000/f00000.bin"), 0o611)
    os.utime(os.path.join(b, b"small/d000/f00001.bin"), (1, 1))
    os.unlink(os.path.join(b, b"symlinks/link-to-file"))
    os.symlink(b"data/file2", os.path.join(b, b"symlinks/link-to-file"))
    os.unlink(os.path.join(b, b"symlinks/link-dangling"))
    os.mkdir(os.path.join(b, b"symlinks/link-dangling"))
    os.unlink(os.path.join(b, b"empty/empty0"))
    found = {(d.path, d.kind) for d in compare_trees(a, b)}
    assert (b"small/d000/f00000.bin", "mode") in found
    assert (b"small/d000/f00001.bin", "mtime") in found
    assert (b"symlinks/link-to-file", "target") in found
    assert (b"symlinks/link-dangling", "type") in found
    assert (b"empty/empty0", "missing") in found
    ignored = compare_trees(a, b, check_mode=False, check_mtime=False)
    assert {d.kind for d in ignored} == {"target", "type", "missing"}
