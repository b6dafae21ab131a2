"""TransferOptions through the core, on sshd and on the asyncssh server."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import SSHSession
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import FXP_OPEN, FXP_WRITE
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import KIB, MIB
from tests.fixtures.compare import assert_same_tree
from tests.unit.core_helpers import (
    FIXED_MTIME,
    Target,
    failures,
    first_string,
    leftovers,
    pattern,
    set_tree_times,
    snapshot,
    write_file,
)

pytest_plugins = ("tests.unit.core_fixtures",)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _small_tree(root: Path) -> None:
    write_file(root / "a", b"alpha", mode=0o600)
    (root / "d").mkdir(parents=True)
    write_file(root / "d" / "b", b"beta", mode=0o751)
    os.chmod(root / "d", 0o700)
    set_tree_times(root)


# -- mode and times ------------------------------------------------------------------------


async def test_preserve_mode_and_times_off(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _small_tree(src)
    options = TransferOptions(preserve_mode=False, preserve_times=False)
    before = time.time()
    report = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(report) == [] and report.files == 2
    dst = target.lpath("dst")
    assert (_mode(dst / "a"), _mode(dst / "d" / "b")) == (0o644, 0o644)
    assert _mode(dst / "d") == 0o755
    for path in (dst / "a", dst / "d" / "b", dst / "d"):
        assert os.stat(path).st_mtime >= before - 2, path
    again = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(again) == [] and not again.changed


async def test_pull_without_preserved_modes_leaves_existing_directories_alone(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _small_tree(src)
    await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    back = local_tmp / "back"
    (back / "d").mkdir(parents=True)
    os.chmod(back / "d", 0o711)
    write_file(back / "old", b"makes the run change something")
    options = TransferOptions(preserve_mode=False, delete=True)
    report = await api.pull(session, target.rpath("dst"), str(back), options)
    assert failures(report) == [] and report.changed
    assert _mode(back / "d") == 0o711


async def test_forced_modes(target: Target, session: SSHSession, local_tmp: Path) -> None:
    src = local_tmp / "src"
    _small_tree(src)
    options = TransferOptions(mode=0o604, directory_mode=0o711)
    report = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(report) == []
    dst = target.lpath("dst")
    assert (_mode(dst / "a"), _mode(dst / "d" / "b")) == (0o604, 0o604)
    assert (_mode(dst), _mode(dst / "d")) == (0o711, 0o711)
    assert int(os.stat(dst / "a").st_mtime) == FIXED_MTIME

    # a mode change alone is an attribute change, not a resend
    changed_mode = TransferOptions(mode=0o640, directory_mode=0o711)
    report = await api.push(session, f"{src}/", target.rpath("dst"), changed_mode)
    assert failures(report) == []
    assert (report.files, report.bytes, report.attributes) == (0, 0, 2)
    assert (_mode(dst / "a"), _mode(dst / "d" / "b")) == (0o640, 0o640)

    back = local_tmp / "back"
    pulled = await api.pull(session, target.rpath("dst"), str(back), options)
    assert failures(pulled) == []
    assert (_mode(back / "a"), _mode(back / "d"), _mode(back / "d" / "b")) == (0o604, 0o711, 0o604)


# -- symlinks ------------------------------------------------------------------------------


def _link_tree(base: Path) -> Path:
    src = base / "src"
    write_file(src / "data" / "file1", b"inside")
    write_file(base / "outside", b"SECRET outside the tree")
    os.symlink("data/file1", src / "link-file")
    os.symlink("data", src / "link-dir")
    os.symlink("../outside", src / "link-out")
    os.symlink(str(base / "outside"), src / "link-abs")
    os.symlink("missing", src / "link-dangling")
    set_tree_times(src)
    return src


def _all_bytes(root: Path) -> bytes:
    out = b""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not os.path.islink(os.path.join(dirpath, name)):
                out += Path(dirpath, name).read_bytes()
    return out


async def test_links_preserve(target: Target, session: SSHSession, local_tmp: Path) -> None:
    src = _link_tree(local_tmp)
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(report) == []
    assert report.symlinks == 5
    dst = target.lpath("dst")
    for name in ("link-file", "link-dir", "link-out", "link-dangling"):
        assert os.readlink(dst / name) == os.readlink(src / name)
    assert os.path.islink(dst / "link-abs")
    assert b"SECRET" not in _all_bytes(dst)


async def test_links_follow_stays_inside_the_source(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = _link_tree(local_tmp)
    report = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(links="follow")
    )
    dst = target.lpath("dst")
    reported = {path for path, _reason in failures(report)}
    assert reported == {"link-out", "link-abs", "link-dangling"}
    assert all("outside the source tree" in reason for _path, reason in failures(report))
    assert not any(os.path.lexists(dst / name) for name in reported)
    assert (dst / "link-file").read_bytes() == b"inside"
    assert not os.path.islink(dst / "link-file")
    assert (dst / "link-dir").is_dir() and not os.path.islink(dst / "link-dir")
    assert (dst / "link-dir" / "file1").read_bytes() == b"inside"
    assert b"SECRET" not in _all_bytes(dst)


async def test_links_skip(target: Target, session: SSHSession, local_tmp: Path) -> None:
    src = _link_tree(local_tmp)
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions(links="skip"))
    assert failures(report) == [] and report.symlinks == 0
    assert sorted(os.listdir(target.lpath("dst"))) == ["data"]


async def test_pull_links_follow_stays_inside_the_source(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    tree = target.lpath("tree")
    write_file(tree / "data" / "file1", b"inside")
    write_file(target.lpath("outside"), b"SECRET outside the tree")
    os.symlink("data/file1", tree / "link-file")
    os.symlink("data", tree / "link-dir")
    os.symlink("../outside", tree / "link-out")
    back = local_tmp / "back"
    follow = TransferOptions(links="follow")
    report = await api.pull(session, target.rpath("tree"), str(back), follow)
    assert {path for path, _reason in failures(report)} == {"link-out"}
    assert not os.path.lexists(back / "link-out")
    assert (back / "link-file").read_bytes() == b"inside" and not (back / "link-file").is_symlink()
    assert (back / "link-dir" / "file1").read_bytes() == b"inside"
    assert b"SECRET" not in _all_bytes(back)


# -- compare ---------------------------------------------------------------------------------


async def test_compare_policies(target: Target, session: SSHSession, local_tmp: Path) -> None:
    src = local_tmp / "src"
    for i in range(5):
        write_file(src / f"f{i}", pattern(1000, seed=i))
    await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    # same size, same mtime, new content: only a checksum can tell
    write_file(src / "f3", pattern(1000, seed=99))
    changed = pattern(1000, seed=99)

    report = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(compare="size_mtime")
    )
    assert (report.files, report.bytes, report.skipped) == (0, 0, 5)
    assert target.lpath("dst", "f3").read_bytes() != changed

    report = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(compare="checksum")
    )
    assert failures(report) == []
    assert target.lpath("dst", "f3").read_bytes() == changed
    if target.name == "sshd":
        assert (report.files, report.bytes, report.skipped) == (1, 1000, 4)
        again = await api.push(
            session, f"{src}/", target.rpath("dst"), TransferOptions(compare="checksum")
        )
        assert (again.files, again.bytes, again.skipped) == (0, 0, 5)
    else:
        # The asyncssh fixture runs commands outside its SFTP chroot, so sha256sum cannot
        # find the files: without a remote checksum every candidate is sent (safe side).
        assert report.files == 5

    always = TransferOptions(compare="always")
    report = await api.push(session, f"{src}/", target.rpath("dst"), always)
    assert (report.files, report.bytes) == (5, 5000)
    assert_same_tree(src, target.lpath("dst"))


async def test_pull_compare_checksum(target: Target, session: SSHSession, local_tmp: Path) -> None:
    write_file(target.lpath("tree", "x"), b"remote content 1")
    back = local_tmp / "back"
    await api.pull(session, target.rpath("tree"), str(back), TransferOptions())
    write_file(back / "x", b"LOCAL content 22"[:16])  # same size and mtime, other bytes
    report = await api.pull(session, target.rpath("tree"), str(back), TransferOptions())
    assert report.files == 0 and (back / "x").read_bytes() != b"remote content 1"
    report = await api.pull(
        session, target.rpath("tree"), str(back), TransferOptions(compare="checksum")
    )
    assert failures(report) == [] and report.files == 1
    assert (back / "x").read_bytes() == b"remote content 1"


# -- delete (mirror) with excludes ---------------------------------------------------------


async def test_push_delete_with_excludes(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    write_file(src / "a", b"a")
    write_file(src / "b.log", b"local log, excluded")
    write_file(src / "sub" / "c", b"c")
    dst = target.lpath("dst")
    write_file(dst / "old.txt", b"old")
    write_file(dst / "olddir" / "x", b"x")
    write_file(dst / "keep.log", b"remote log, excluded")
    write_file(dst / "cache" / "blob", b"excluded dir")
    write_file(dst / "sub" / "stale", b"stale")
    options = TransferOptions(delete=True, exclude=("*.log", "cache/"))
    report = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(report) == []
    assert sorted(report.deleted_paths.items) == sorted(
        ["old.txt", "olddir/x", "olddir/", "sub/stale"]
    )
    assert report.deleted == 4
    assert sorted(os.listdir(dst)) == ["a", "cache", "keep.log", "sub"]
    assert (dst / "keep.log").read_bytes() == b"remote log, excluded"
    assert (dst / "cache" / "blob").read_bytes() == b"excluded dir"
    assert sorted(os.listdir(dst / "sub")) == ["c"]

    again = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert not again.changed and again.deleted == 0


async def test_pull_delete_with_excludes(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    write_file(target.lpath("tree", "a"), b"a")
    write_file(target.lpath("tree", "skip.tmp"), b"remote, excluded")
    back = local_tmp / "back"
    write_file(back / "extra", b"x")
    write_file(back / "extradir" / "y", b"y")
    write_file(back / "mine.tmp", b"local, excluded")
    options = TransferOptions(delete=True, exclude=("*.tmp",))
    report = await api.pull(session, target.rpath("tree"), str(back), options)
    assert failures(report) == []
    assert sorted(os.listdir(back)) == ["a", "mine.tmp"]
    assert (back / "mine.tmp").read_bytes() == b"local, excluded"
    assert report.deleted == 2


# -- atomic writes -------------------------------------------------------------------------


async def test_atomic_never_shows_a_partial_file(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    from tests.unit.core_helpers import HookedSession

    src = local_tmp / "src"
    write_file(src / "big", pattern(3 * MIB, seed=1))
    write_file(src / "small", pattern(10 * KIB, seed=2))
    dst = target.lpath("dst")
    write_file(dst / "big", b"old big")
    write_file(dst / "small", b"old small")
    opened: list[bytes] = []
    seen_at_final: set[bytes] = set()
    new_content = {name: (src / name).read_bytes() for name in ("big", "small")}

    def hook(client: object) -> None:
        real_open, real_write = client.open, client.write  # type: ignore[attr-defined]

        async def open_(path: bytes, *args: object, **kw: object) -> bytes:
            opened.append(path)
            return await real_open(path, *args, **kw)

        real_write_nowait = client.write_nowait  # type: ignore[attr-defined]

        def look() -> None:
            for name in ("big", "small"):
                now = (dst / name).read_bytes()
                seen_at_final.add(b"new" if now == new_content[name] else now)

        async def write(handle: bytes, offset: int, data: bytes) -> None:
            look()
            await real_write(handle, offset, data)

        def write_nowait(handle: bytes, offset: int, data: bytes) -> object:
            look()
            return real_write_nowait(handle, offset, data)

        real_send = client.send  # type: ignore[attr-defined]

        def send(ptype: int, payload: Any, on_reply: Any) -> None:  # the small files' path
            if ptype == FXP_OPEN:
                opened.append(first_string(payload))
            elif ptype == FXP_WRITE:
                look()
            real_send(ptype, payload, on_reply)

        client.open, client.write = open_, write  # type: ignore[attr-defined]
        client.write_nowait = write_nowait  # type: ignore[attr-defined]
        client.send = send  # type: ignore[attr-defined]

    hooked = HookedSession(session, hook)
    options = TransferOptions(large_file_threshold=1 * MIB, block_size=64 * KIB)
    report = await api.push(hooked, f"{src}/", target.rpath("dst"), options)
    assert failures(report) == []
    # at every WRITE, each final name held either its old or its complete new content
    assert seen_at_final <= {b"old big", b"old small", b"new"}
    assert {b"old big", b"old small"} <= seen_at_final
    written = [os.path.basename(p) for p in opened]
    assert written and all(name.startswith(b".pipelined.") for name in written)
    assert_same_tree(src, dst)
    assert leftovers(target.local) == []

    opened.clear()
    write_file(src / "small", pattern(10 * KIB, seed=3), mtime=FIXED_MTIME + 1)
    report = await api.push(
        hooked,
        f"{src}/",
        target.rpath("dst"),
        TransferOptions(atomic=False),
    )
    assert failures(report) == [] and report.files == 1
    assert [os.path.basename(p) for p in opened] == [b"small"]
    assert_same_tree(src, dst)


async def test_source_whose_size_changed_since_listing_is_refused(
    target: Target, session: SSHSession
) -> None:
    """A /proc file is listed with size 0 but reads as more: it is not written anywhere."""
    report = await api.push(session, "/proc/self/status", target.rpath("status"), TransferOptions())
    assert [path for path, _reason in failures(report)] == ["status"]
    assert "changed" in failures(report)[0][1]
    assert (report.files, report.bytes, report.changed) == (0, 0, False)
    assert not target.lpath("status").exists()
    assert leftovers(target.local) == []


async def test_large_source_growing_during_push_leaves_nothing(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """A source that grows after its first WRITE was sent fails; nothing is left behind."""
    from tests.unit.core_helpers import HookedSession

    size = 3 * MIB
    src = local_tmp / "src"
    write_file(src / "new", pattern(size, seed=1))
    write_file(src / "existing", pattern(size, seed=2))
    write_file(target.lpath("dst", "existing"), b"previous content")

    def hook(client: object) -> None:
        real_write = client.write  # type: ignore[attr-defined]

        async def write(handle: bytes, offset: int, data: bytes) -> None:
            for name in ("new", "existing"):
                with open(src / name, "ab") as grow:
                    grow.write(b"more")
            await real_write(handle, offset, data)

        client.write = write  # type: ignore[attr-defined]

    options = TransferOptions(large_file_threshold=1 * MIB, block_size=64 * KIB)
    report = await api.push(
        HookedSession(session, hook),
        f"{src}/",
        target.rpath("dst"),
        options,
    )
    assert {path for path, _reason in failures(report)} == {"new", "existing"}
    assert all("changed" in reason for _path, reason in failures(report)), failures(report)
    assert not target.lpath("dst", "new").exists()
    assert target.lpath("dst", "existing").read_bytes() == b"previous content"
    assert report.files == 0
    # the temporary file of a failed non-resumable large file must be discarded
    assert leftovers(target.local) == []


async def test_pull_of_a_file_growing_on_the_server_is_reported(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    from tests.unit.core_helpers import HookedSession

    remote = target.lpath("tree", "grows")
    write_file(remote, pattern(3 * MIB, seed=4))
    write_file(target.lpath("tree", "calm"), b"calm")

    def hook(client: object) -> None:
        real_read = client.read  # type: ignore[attr-defined]
        real_read_nowait = client.read_nowait  # type: ignore[attr-defined]

        def grow() -> None:
            with open(remote, "ab") as more:
                more.write(b"more")

        async def read(handle: bytes, offset: int, length: int) -> bytes:
            grow()
            return await real_read(handle, offset, length)

        def read_nowait(handle: bytes, offset: int, length: int) -> object:
            grow()
            return real_read_nowait(handle, offset, length)

        client.read = read  # type: ignore[attr-defined]
        client.read_nowait = read_nowait  # type: ignore[attr-defined]

    back = local_tmp / "back"
    report = await api.pull(
        HookedSession(session, hook),
        target.rpath("tree"),
        str(back),
        TransferOptions(block_size=64 * KIB),
    )
    assert [path for path, _reason in failures(report)] == ["grows"]
    assert "grew" in failures(report)[0][1] or "changed" in failures(report)[0][1]
    assert not (back / "grows").exists()
    assert (back / "calm").read_bytes() == b"calm"
    assert leftovers(back) == []


# -- resume ----------------------------------------------------------------------------------


async def test_resume_sends_only_the_remainder(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    size = 3 * MIB + 5
    data = pattern(size, seed=8)
    write_file(local_tmp / "big", data)
    partial = 1 * MIB + 123
    dst = target.lpath("dst")
    write_file(dst / ".pipelined.big.part", data[:partial], mode=0o600)
    options = TransferOptions(resume=True, large_file_threshold=1 * MIB, block_size=64 * KIB)
    report = await api.push(session, str(local_tmp / "big"), target.rpath("dst") + "/", options)
    assert failures(report) == []
    assert (report.files, report.bytes) == (1, size - partial)
    assert (dst / "big").read_bytes() == data
    assert leftovers(target.local) == []

    # a partial whose bytes do not match the source is not trusted: start over
    os.unlink(dst / "big")
    corrupt = bytearray(data[:partial])
    corrupt[-10:] = b"X" * 10
    write_file(dst / ".pipelined.big.part", bytes(corrupt), mode=0o600)
    report = await api.push(session, str(local_tmp / "big"), target.rpath("dst") + "/", options)
    assert failures(report) == []
    assert (report.files, report.bytes) == (1, size)
    assert (dst / "big").read_bytes() == data

    # a partial longer than the source is not trusted either
    os.unlink(dst / "big")
    write_file(dst / ".pipelined.big.part", data + b"tail", mode=0o600)
    report = await api.push(session, str(local_tmp / "big"), target.rpath("dst") + "/", options)
    assert (report.files, report.bytes) == (1, size)
    assert (dst / "big").read_bytes() == data
    assert leftovers(target.local) == []


# -- fail_fast, check mode, owner ------------------------------------------------------------


def _conflicting(target: Target, src: Path) -> None:
    """Two source files whose names are directories on the destination."""
    for i in range(20):
        write_file(src / f"ok{i:02d}", b"fine")
    write_file(src / "clash1", b"1")
    write_file(src / "clash2", b"2")
    target.lpath("dst", "clash1").mkdir(parents=True)
    target.lpath("dst", "clash2").mkdir(parents=True)


async def test_failures_do_not_hide_other_files(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _conflicting(target, src)
    report = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert sorted(path for path, _reason in failures(report)) == ["clash1", "clash2"]
    assert all("directory is in the way" in reason for _path, reason in failures(report))
    assert report.files == 20


async def test_fail_fast_stops_at_the_first_failure(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _conflicting(target, src)
    with pytest.raises(api.TransferError) as info:
        await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions(fail_fast=True))
    assert "clash" in str(info.value) and "directory is in the way" in str(info.value)
    assert len(info.value.report.failures) == 1


async def test_check_mode_touches_nothing(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _small_tree(src)
    write_file(src / "new" / "n", b"n")
    await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    write_file(src / "a", b"alpha changed")
    write_file(src / "new2", b"new2")
    write_file(target.lpath("dst", "extra"), b"extra")
    options = TransferOptions(delete=True)

    before = snapshot(target.local)
    checked = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(delete=True, check_mode=True)
    )
    assert snapshot(target.local) == before
    assert checked.changed
    real = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(real) == []
    counts = ("files", "dirs", "symlinks", "bytes", "deleted", "skipped")
    assert {k: getattr(checked, k) for k in counts} == {k: getattr(real, k) for k in counts}
    assert (real.files, real.deleted) == (2, 1)

    back = local_tmp / "back"
    checked = await api.pull(
        session, target.rpath("dst"), str(back), TransferOptions(check_mode=True)
    )
    assert not back.exists()
    real = await api.pull(session, target.rpath("dst"), str(back), TransferOptions())
    assert {k: getattr(checked, k) for k in counts} == {k: getattr(real, k) for k in counts}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root on the server")
async def test_owner_and_group_by_name(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    src = local_tmp / "src"
    _small_tree(src)
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    options = TransferOptions(owner="nobody", group="nogroup")
    report = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert failures(report) == []
    for path in ("", "a", "d", "d/b"):
        st = os.lstat(target.lpath("dst", path) if path else target.lpath("dst"))
        assert (st.st_uid, st.st_gid) == (nobody, nogroup), path
    again = await api.push(session, f"{src}/", target.rpath("dst"), options)
    assert not again.changed

    with pytest.raises(api.TransferError, match="no-such-user-xyz"):
        await api.push(
            session, f"{src}/", target.rpath("dst"), TransferOptions(owner="no-such-user-xyz")
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root on the server")
async def test_owner_alone_keeps_the_group(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """SFTP sets uid and gid together: owner alone must not be dropped or reset the group."""
    src = local_tmp / "src"
    _small_tree(src)
    nobody = pwd.getpwnam("nobody").pw_uid
    first = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions())
    assert failures(first) == []
    group_before = os.lstat(target.lpath("dst", "a")).st_gid
    report = await api.push(
        session, f"{src}/", target.rpath("dst"), TransferOptions(owner="nobody")
    )
    assert failures(report) == []
    assert report.attributes > 0
    st = os.lstat(target.lpath("dst", "a"))
    assert (st.st_uid, st.st_gid) == (nobody, group_before)
    again = await api.push(session, f"{src}/", target.rpath("dst"), TransferOptions(owner="nobody"))
    assert not again.changed


async def test_blocked_destination_reports_no_change(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """Paths that failed are failures, never counted as attribute changes."""
    src = local_tmp / "src"
    _small_tree(src)
    write_file(target.lpath("blocker"), b"a file where a directory must go")
    report = await api.push(session, f"{src}/", target.rpath("blocker", "dst"), TransferOptions())
    assert len(report.failures) == 1
    assert report.failures[0].path == "."  # the destination root itself
    assert (report.files, report.dirs, report.attributes) == (0, 0, 0)
    assert not report.changed


async def test_links_follow_never_loops(
    target: Target, session: SSHSession, local_tmp: Path
) -> None:
    """Links back to an ancestor are reported, not followed; a link to a sibling is."""
    src = local_tmp / "src"
    write_file(src / "a" / "f", b"f")
    (src / "a" / "b").mkdir()
    os.symlink("..", src / "a" / "up")
    os.symlink("../b", src / "a" / "b" / "self")
    os.symlink("b", src / "a" / "sibling")
    os.symlink(".", src / "here")
    follow = TransferOptions(links="follow")
    report = await api.push(session, f"{src}/", target.rpath("dst"), follow)
    loops = {"a/up", "a/b/self", "a/sibling/self", "here"}
    assert {path for path, _reason in failures(report)} == loops
    assert all("loop" in reason for _path, reason in failures(report))
    dst = target.lpath("dst")
    assert sorted(os.listdir(dst / "a")) == ["b", "f", "sibling"]
    assert (dst / "a" / "sibling").is_dir() and os.listdir(dst / "a" / "sibling") == []
    assert report.files == 1

    # the same tree on the server, pulled with links followed
    await api.push(session, f"{src}/", target.rpath("tree"), TransferOptions())
    back = local_tmp / "back"
    report = await api.pull(session, target.rpath("tree"), str(back), follow)
    assert {path for path, _reason in failures(report)} == loops
    assert sorted(os.listdir(back / "a")) == ["b", "f", "sibling"]
    assert report.files == 1
