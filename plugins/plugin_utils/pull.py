"""Pull a remote file or tree to local disk: remote directories are listed in parallel,
entries are handled chunk by chunk as READDIR replies arrive, and every remote name is
validated before it becomes a local path."""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ansible_collections.pipelined.sftp.plugins.plugin_utils.chains import (
    LocalStores,
    ReadAgain,
    SmallRead,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import (
    Channels,
    DirNode,
    TreeRun,
    files_in_flight,
    share_files,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import (
    Excluder,
    check_name,
    join,
    relative,
    temp_name,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.plan import (
    attrs_differ,
    content_decision,
    mirror_deletions,
    wanted_dir,
    wanted_file,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_NO_SUCH_FILE,
    Attrs,
    SFTPError,
    display_path,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.push import (
    SourceError,
    _local_checksum,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import ProgressCallback, Report
from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import receive_file, request
from ansible_collections.pipelined.sftp.plugins.plugin_utils.walk import (
    Entry,
    drop_early_dir,
    entry_from_attrs,
    list_local_dir_or_empty,
    list_remote_dir,
    open_dir_early,
    read_link_target,
)

CHAIN_MAX_FILE = 1 << 20
"""Larger files are fetched by a task of their own (transfer.receive_file)."""


@dataclass
class _Job:
    rel: bytes
    src: Entry
    dst: Entry | None


def _show(rel: bytes) -> str:
    return display_path(rel) if rel else "."


def _remove_local(path: bytes) -> None:
    """Remove a local file, link or tree (never following links)."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


class Pull:
    """One pull run: a remote root onto a local root."""

    def __init__(
        self,
        session: object,
        channels: Channels,
        options: TransferOptions,
        report: Report,
        progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.ch = channels
        self.options = options
        self.report = report
        self.excluder = Excluder(options.exclude)
        self.run: TreeRun[_Job] = TreeRun(
            report, files_in_flight(channels.rtt, options.max_files), options.fail_fast, progress
        )
        self.remote_root = b""
        self.local_root = b""
        self._real_root: bytes | None = None
        self._root_opened: asyncio.Task[bytes] | None = None
        self.stores = LocalStores()

    async def fetch(
        self, remote: bytes, local_dir: bytes, name: bytes, src: Entry, rel: bytes, is_new: bool
    ) -> None:
        """Receive the remote file `remote` as local_dir/name."""
        wanted = wanted_file(src, self.options, None, None)
        if not self.options.check_mode:
            try:
                got = await receive_file(
                    self.ch,
                    remote,
                    local_dir,
                    name,
                    src.size,
                    wanted.mode,
                    wanted.mtime,
                    atomic=self.options.atomic,
                    block_size=self.options.block_size,
                )
            except Exception as exc:
                self.run.fail(rel, exc)
                return
        else:
            got = src.size
        self.report.wrote(_show(rel), got, is_new)

    def chainable(self, size: int) -> bool:
        """Whether a file is fetched as a chain of reply callbacks (see chains.py): a small
        file whose requests fit the cap at once."""
        return (
            not self.options.check_mode
            and size <= CHAIN_MAX_FILE
            and self.ch.budget.batch_fits(
                SmallRead.requests(size, self.ch.read_block(self.options.block_size))
            )
        )

    async def start_chained(
        self,
        node: DirNode,
        remote: bytes,
        local_dir: bytes,
        name: bytes,
        src: Entry,
        rel: bytes,
        is_new: bool,
    ) -> None:
        """Start fetching one small file, driven by reply callbacks and written locally in
        batches: no task per file. Returns once it is under way."""
        wanted = wanted_file(src, self.options, None, None)
        final = os.path.join(local_dir, name)
        tmp = os.path.join(local_dir, temp_name(name)) if self.options.atomic else final
        block = self.ch.read_block(self.options.block_size)
        budget = self.ch.budget
        held = await budget.bytes.acquire(src.size)
        try:
            finished = await self.run.reserve_file(node, budget.hold_first)
        except BaseException:
            budget.bytes.release(held)
            raise

        def stored(error: OSError | None) -> None:
            budget.bytes.release(held)
            if error is None:
                self.report.wrote(_show(rel), src.size, is_new)
                finished()
            else:
                self.run.fail_later(finished, rel, error)

        def read(result: list[bytes] | BaseException) -> None:
            if isinstance(result, list):
                self.stores.add((tmp, final, result, wanted.mode, wanted.mtime), stored)
                return
            budget.bytes.release(held)
            if isinstance(result, ReadAgain):
                retry = self.fetch(remote, local_dir, name, src, rel, is_new)
                self.run.follow_up(finished, retry)
            else:
                self.run.fail_later(finished, rel, result)

        SmallRead(self.ch.pick(), budget, remote, src.size, block, read).start()

    async def file(
        self,
        remote: bytes,
        local_dir: bytes,
        name: bytes,
        src: Entry,
        dst: Entry | None,
        rel: bytes,
        node: DirNode | None,
    ) -> None:
        """Fetch, fix attributes of, or skip one regular file (started as a task under node)."""
        target = os.path.join(local_dir, name)
        decision = content_decision(src, dst, self.options)
        if decision == "checksum":
            same = await self.same_checksum(posixpath.dirname(remote), target, src)
            decision = "skip" if same else "send"
        if decision == "send":
            if node is None:
                await self.fetch(remote, local_dir, name, src, rel, dst is None)
            elif self.chainable(src.size):
                await self.start_chained(node, remote, local_dir, name, src, rel, dst is None)
            else:
                await self.run.start_file(
                    node, self.fetch, remote, local_dir, name, src, rel, dst is None
                )
            return
        if dst is None:
            return
        wanted = wanted_file(src, self.options, None, None)
        if not attrs_differ(dst, wanted):
            self.report.skipped += 1
            return
        if not self.options.check_mode:
            try:
                if wanted.mode is not None:
                    os.chmod(target, wanted.mode)
                if wanted.mtime is not None:
                    os.utime(target, (wanted.mtime, wanted.mtime))
            except OSError as exc:
                self.run.fail(rel, exc)
                return
        self.report.attributes += 1
        self.report.changed_paths.add(_show(rel))

    async def link(
        self,
        remote: bytes,
        local_dir: bytes,
        name: bytes,
        src: Entry,
        dst: Entry | None,
        rel: bytes,
    ) -> None:
        """Recreate the remote symlink `remote` as local_dir/name (never followed)."""
        try:
            target = await read_link_target(self.ch.main, self.ch.budget, remote, src)
        except SFTPError as exc:
            self.run.fail(rel, exc)
            return
        local = os.path.join(local_dir, name)
        if dst is not None and dst.kind == "link" and os.readlink(local) == target:
            self.report.skipped += 1
            return
        if not self.options.check_mode:
            try:
                if dst is not None:
                    await asyncio.to_thread(_remove_local, local)
                os.symlink(target, local)
            except OSError as exc:
                self.run.fail(rel, exc)
                return
        self.report.symlinks += 1
        (self.report.added if dst is None else self.report.changed_paths).add(_show(rel))

    async def delete_local(self, local: bytes, rel: bytes, is_dir: bool) -> None:
        if not self.options.check_mode:
            try:
                await asyncio.to_thread(_remove_local, local)
            except OSError as exc:
                self.run.fail(rel, exc)
                return
        self.report.deleted += 1
        self.report.deleted_paths.add(_show(rel) + ("/" if is_dir else ""))

    def finalizer(self, job: _Job, local: bytes) -> Callable[[], Awaitable[None]]:
        wanted = wanted_dir(job.src, self.options, None, None)
        created = job.dst is None
        differs = job.dst is not None and attrs_differ(job.dst, wanted)

        async def finalize() -> None:
            moved = wanted.mtime is not None and self.report.changed
            if not self.options.check_mode and (created or differs or moved):
                try:
                    if wanted.mode is not None or created:  # created private (0700)
                        os.chmod(local, wanted.mode if wanted.mode is not None else 0o755)
                    if wanted.mtime is not None:
                        os.utime(local, (wanted.mtime, wanted.mtime))
                except OSError as exc:
                    self.run.fail(job.rel or b".", exc)
                    return
            if differs:
                self.report.attributes += 1
                self.report.changed_paths.add(_show(job.rel) + "/")

        return finalize

    def make_dir(self, local: bytes, rel: bytes) -> bool:
        if not self.options.check_mode:
            try:
                os.mkdir(local, 0o700)
            except OSError as exc:
                self.run.fail(rel, exc)
                return False
        self.report.dirs += 1
        self.report.added.add(_show(rel) + "/")
        return True

    async def process_dir(self, job: _Job, node: DirNode) -> None:
        remote = join(self.remote_root, job.rel) if job.rel else self.remote_root
        local = os.path.join(self.local_root, job.rel) if job.rel else self.local_root
        existing = (
            await asyncio.to_thread(list_local_dir_or_empty, local) if job.dst is not None else {}
        )
        unsafe: list[bytes] = []
        opened = None
        if not job.rel:  # the root: its OPENDIR went out with the first lookup
            opened, self._root_opened = self._root_opened, None
        try:
            listing = list_remote_dir(self.ch.main, self.ch.budget, remote, unsafe, opened)
            async for chunk in listing:
                self.ch.listed(len(chunk))
                for src in chunk:
                    await self.handle_entry(remote, local, job.rel, src, existing, node)
        except SFTPError as exc:
            self.run.fail(job.rel or b".", exc)
            return
        for name in unsafe:
            self.run.fail(
                job.rel or b".", f"the server sent an unsafe name {name!r}; it was not fetched"
            )
        if self.options.delete:
            for name, dst, rel in mirror_deletions(existing, job.rel, self.excluder):
                await self.delete_local(os.path.join(local, name), rel, dst.kind == "dir")

    async def handle_entry(
        self,
        remote: bytes,
        local: bytes,
        rel_dir: bytes,
        src: Entry,
        existing: dict[bytes, Entry],
        node: DirNode,
    ) -> None:
        check_name(src.name)
        rel = relative(rel_dir, src.name)
        if self.excluder and self.excluder.excluded(rel, src.kind == "dir"):
            existing.pop(src.name, None)
            return
        dst = existing.pop(src.name, None)
        target = os.path.join(local, src.name)
        if src.kind == "link" and self.options.links == "follow":
            try:
                followed = await request(self.ch, self.ch.main.stat, join(remote, src.name))
                real = await request(self.ch, self.ch.main.realpath, join(remote, src.name))
            except SFTPError as exc:
                self.run.fail(rel, exc)
                return
            try:
                root = await self.real_root()
                inside = real == root or real.startswith(root.rstrip(b"/") + b"/")
                loop = inside and followed.is_dir and real in await self.real_chain(remote)
            except SFTPError as exc:
                self.run.fail(rel, exc)
                return
            if not inside:
                self.run.fail(rel, "the symlink points outside the source tree; not followed")
                return
            if loop:
                self.run.fail(
                    rel, "the symlink leads back to a directory above it (a loop); not followed"
                )
                return
            src = entry_from_attrs(src.name, followed)
        if (
            dst is not None
            and dst.kind != src.kind
            and (dst.kind in ("dir", "link") or src.kind == "dir")
        ):
            if dst.kind == "dir" and not self.options.delete:
                self.run.fail(
                    rel, "a directory is in the way on the destination (use delete to replace it)"
                )
                return
            await self.delete_local(target, rel, dst.kind == "dir")
            dst = None
        if src.kind == "dir":
            if dst is None and not self.make_dir(target, rel):
                return
            child = _Job(rel, src, dst)
            self.run.add_dir(child, node, self.finalizer(child, target))
        elif src.kind == "file":
            await self.file(join(remote, src.name), local, src.name, src, dst, rel, node)
        elif src.kind == "link":
            if self.options.links != "skip":
                await self.run.start_file(
                    node, self.link, join(remote, src.name), local, src.name, src, dst, rel
                )
        else:
            self.report.specials += 1

    async def real_root(self) -> bytes:
        """The source root's real path on the server (asked once)."""
        if self._real_root is None:
            self._real_root = await request(self.ch, self.ch.main.realpath, self.remote_root)
        return self._real_root

    async def real_chain(self, remote: bytes) -> set[bytes]:
        """Real paths of the source root, of `remote` and of every directory between."""
        chain = {await self.real_root()}
        rel = remote[len(self.remote_root) :].strip(b"/")
        current = self.remote_root
        for part in rel.split(b"/") if rel else []:
            current = join(current, part)
            chain.add(await request(self.ch, self.ch.main.realpath, current))
        return chain

    async def same_checksum(self, remote_dir: bytes, local: bytes, src: Entry) -> bool:
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.push import _remote_checksums

        sums = await _remote_checksums(self.session, remote_dir, [src.name])  # type: ignore[arg-type]
        return sums[0] is not None and sums[0] == await asyncio.to_thread(_local_checksum, local)

    async def _source_attrs(self, src: str) -> Attrs:
        lookup = self.ch.main.stat if self.options.links == "follow" else self.ch.main.lstat
        try:
            return await request(self.ch, lookup, os.fsencode(src))
        except SFTPError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                raise SourceError(f"the remote source {src} does not exist") from None
            raise SourceError(f"the remote source {src} cannot be read: {exc.reason}") from None

    async def pull(self, src: str, dest: str) -> None:
        remote = os.fsencode(src)
        # The source is looked up, and opened as a directory (which fails harmlessly for a
        # file), together with the server's limits (see open_channels): one round trip.
        self._root_opened = open_dir_early(self.ch.main, self.ch.budget, remote)
        try:
            await self._pull(remote, src, dest)
        finally:
            if self._root_opened is not None:  # not listed: close it
                drop_early_dir(self.ch.main, self.ch.budget, self._root_opened)
                self._root_opened = None

    async def _pull(self, remote: bytes, src: str, dest: str) -> None:
        _learned, attrs = await asyncio.gather(self.ch.learned(), self._source_attrs(src))
        share_files(self.run, self.ch, self.options.max_files, halve=False)
        root = entry_from_attrs(posixpath.basename(remote.rstrip(b"/")) or b".", attrs)
        local = os.fsencode(dest)
        parent = os.path.dirname(local.rstrip(b"/")) or b"."
        if not self.options.check_mode:
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise SourceError(
                    f"the destination {dest} cannot be created: {exc.strerror}"
                ) from None
        existing = list_local_dir_or_empty(parent).get(os.path.basename(local.rstrip(b"/")))
        if root.kind == "dir":
            self.ch.start_tree(small_file_channels=1)
            self.remote_root = remote.rstrip(b"/") or b"/"
            self.local_root = local.rstrip(b"/") or b"/"
            if existing is not None and existing.kind != "dir":
                raise SourceError(f"the destination {dest} exists and is not a directory")
            if existing is None and not self.make_dir(self.local_root, b""):
                return
            job = _Job(b"", root, existing)
            self.run.add_dir(job, None, self.finalizer(job, self.local_root))
            await self.run.run(self.process_dir)
            return
        if existing is not None and existing.kind == "dir":
            raise SourceError(f"the destination {dest} is a directory")
        name = os.path.basename(local.rstrip(b"/"))
        if root.kind == "link":
            await self.link(remote, parent, name, root, existing, name)
        elif root.kind == "file":
            await self.file(remote, parent, name, root, existing, name, None)
        else:
            raise SourceError(f"the remote source {src} is not a regular file or directory")
