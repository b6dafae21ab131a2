"""Push a local file or tree to a server: directories before their children, files
pipelined across files, unchanged files skipped, extra files deleted on request."""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import SessionLike
from ansible_collections.pipelined.sftp.plugins.plugin_utils.chains import SmallWrite
from ansible_collections.pipelined.sftp.plugins.plugin_utils.engine import (
    Channels,
    DirNode,
    TreeRun,
    files_in_flight,
    share_files,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.local_io import LocalBatches
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import (
    Excluder,
    join,
    relative,
    temp_name,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.plan import (
    Wanted,
    attrs_differ,
    content_decision,
    mirror_deletions,
    wanted_dir,
    wanted_file,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.prefetch import LocalPrefetch
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_NO_SUCH_FILE,
    POSIX_RENAME,
    Attrs,
    Reply,
    SFTPClient,
    SFTPError,
    display_path,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.remove import remove_tree
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import ProgressCallback, Report
from ansible_collections.pipelined.sftp.plugins.plugin_utils.transfer import (
    FileAttrs,
    discard,
    read_many,
    rename_into_place,
    request,
    send_file,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.walk import (
    Entry,
    LocalListing,
    entry_from_attrs,
    entry_from_stat,
    list_local_dir,
    read_link_target,
    remote_dir_entries,
)

CHECKSUM_BATCH = 64
NEW_DIR = Attrs(permissions=0o700)
"""A directory is created private; its finalizer sets its mode once its contents are in."""
READ_BATCH_FILES = 32
READ_BATCH_BYTES = 1 << 20
READ_BATCH_MAX_FILE = 64 * 1024
"""Larger files are read in their own task, under the byte budget."""


INLINE_LISTING_BYTES = 65536
"""A local directory whose own size is at most this is listed on the event loop while
listings are quick (see local_io.py): up to a few thousand entries on common file systems,
a few milliseconds when cached. Listing in a thread made the GIL change hands at every
system call (measured, 5,000 files in 50 directories at 0 ms: 9 % more client CPU)."""


def _listed(listing: LocalListing) -> int:
    return len(listing.entries) + 1


class SourceError(Exception):
    """The local source cannot be read (one sentence naming it)."""


@dataclass
class _Job:
    rel: bytes
    src: Entry
    dst: Entry | None
    """The destination directory as listed before the run, None when it is created."""
    created: asyncio.Future[bool] | None = None
    """For a directory this run creates: whether its MKDIR succeeded, once answered."""


async def _made(created: asyncio.Future[bool] | None) -> bool:
    """Whether a directory can take entries: it existed, or its MKDIR succeeded."""
    return created is None or await created


def _show(rel: bytes) -> str:
    return display_path(rel) if rel else "."


async def resolve_ids(
    session: SessionLike, owner: str | None, group: str | None
) -> tuple[int | None, int | None]:
    """Numeric uid/gid on the target for owner/group names (numbers pass through)."""

    async def lookup(value: str | None, command: str) -> int | None:
        if value is None:
            return None
        if value.isdigit():
            return int(value)
        result = await session.exec(command.format(shlex.quote(value)))
        text = result.stdout.decode("utf-8", "replace").strip()
        if result.rc != 0 or not text.isdigit():
            kind = "user" if "id -u" in command else "group"
            raise SourceError(f"the {kind} {value!r} does not exist on the target")
        return int(text)

    uid = await lookup(owner, "id -u -- {}")
    gid = await lookup(group, "getent group -- {} | cut -d: -f3")
    return uid, gid


async def login_ids(session: SessionLike) -> tuple[int | None, int | None]:
    """uid and gid that new files of this session get on the target."""
    result = await session.exec("id -u; id -g")
    values = result.stdout.decode("ascii", "replace").split()
    if result.rc != 0 or len(values) != 2 or not all(v.isdigit() for v in values):
        raise SourceError("cannot learn the login user's uid and gid on the target (id failed)")
    return int(values[0]), int(values[1])


async def _remote_checksums(
    session: SessionLike, remote_dir: bytes, names: list[bytes]
) -> list[str | None]:
    """sha256 of each remote file (None where it cannot be read), one command per batch."""
    try:
        quoted = " ".join(shlex.quote(name.decode("utf-8")) for name in names)
        directory = shlex.quote(remote_dir.decode("utf-8"))
    except UnicodeDecodeError:
        return [None] * len(names)
    command = (
        f'cd {directory} && for f in {quoted}; do sha256sum < "$f" 2>/dev/null || echo -; done'
    )
    result = await session.exec(command)
    lines = result.stdout.decode("ascii", "replace").splitlines()
    if result.rc != 0 or len(lines) != len(names):
        return [None] * len(names)
    return [line.split()[0] if line and line[0] != "-" else None for line in lines]


def _local_checksum(path: bytes) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _SmallFiles:
    """Small files of one directory waiting to be sent, read from disk in batches (run
    where the push's `LocalBatches` puts them)."""

    def __init__(
        self,
        push: Push,
        local: bytes,
        remote: bytes,
        node: DirNode,
        created: asyncio.Future[bool] | None,
    ) -> None:
        self.push = push
        self.local = local
        self.remote = remote
        self.node = node
        self.created = created
        self.batch: list[tuple[Entry, bytes, Entry | None]] = []
        self.bytes = 0

    async def add(self, src: Entry, rel: bytes, dst: Entry | None) -> None:
        options = self.push.options
        if options.check_mode or src.size > READ_BATCH_MAX_FILE:
            await self._start(src, rel, dst, None)
            return
        self.batch.append((src, rel, dst))
        self.bytes += src.size
        if len(self.batch) >= READ_BATCH_FILES or self.bytes >= READ_BATCH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        batch, self.batch, self.bytes = self.batch, [], 0
        if not batch:
            return
        loaded = await self._read(batch)
        for (src, rel, dst), data in zip(batch, loaded, strict=True):
            if isinstance(data, Exception):
                self.push.run.fail(rel, data)
                continue
            behind = self._unanswered_mkdir()
            if behind is None and not await _made(self.created):
                return
            if self.push.chainable(len(data)):
                await self.push.start_chained(
                    self.node, self.local, self.remote, src, rel, dst, data, behind
                )
            else:
                await self._start(src, rel, dst, data)

    async def _read(
        self, batch: list[tuple[Entry, bytes, Entry | None]]
    ) -> list[bytes | Exception]:
        """The contents of a batch's files: read ahead (`LocalPrefetch`), or now."""
        prefetch = self.push.prefetch
        ahead = [
            prefetch.data(self.local, src.name) if prefetch is not None else None
            for src, _rel, _dst in batch
        ]
        wanted = [
            (src.name, src.size, src.mtime)
            for (src, _rel, _dst), data in zip(batch, ahead, strict=True)
            if data is None
        ]
        read: list[bytes | Exception] = []
        if wanted:
            read = await self.push.local_batches.run(
                partial(read_many, self.local, wanted), len(wanted)
            )
        now = iter(read)
        return [data if data is not None else next(now) for data in ahead]

    def _unanswered_mkdir(self) -> asyncio.Future[bool] | None:
        """This directory's MKDIR, when a file can go right behind it: sent, not answered
        yet, on a server that answers in order (elsewhere files wait for the answer)."""
        created = self.created
        if created is None or created.done() or not self.push.ch.main.ordered:
            return None
        return created

    async def _start(self, src: Entry, rel: bytes, dst: Entry | None, data: bytes | None) -> None:
        """Start sending one file (``data``: its content, when already read)."""
        if not await _made(self.created):
            return
        path = os.path.join(self.local, src.name)
        await self.push.run.start_file(
            self.node, self.push.send, path, self.remote, src, rel, dst, data
        )


class Push:
    """One push run: a local root onto a remote root."""

    def __init__(
        self,
        session: SessionLike,
        channels: Channels,
        options: TransferOptions,
        report: Report,
        progress: ProgressCallback | None,
        extra_channels: Channels | None = None,
    ) -> None:
        self.session = session
        self.ch = channels
        self.options = options
        self.report = report
        self.excluder = Excluder(options.exclude)
        self.run: TreeRun[_Job] = TreeRun(
            report, files_in_flight(channels.rtt, options.max_files), options.fail_fast, progress
        )
        self.extra = extra_channels
        self.local_batches = LocalBatches()
        self.prefetch: LocalPrefetch | None = None
        self.uid: int | None = None
        self.gid: int | None = None
        self.default_ids: tuple[int | None, int | None] = (None, None)
        self.local_root = b""
        self.remote_root = b""
        self.final_root: bytes | None = None
        """Where the tree goes once complete, when it is built under a staging name
        (`remote_root`) first; None when it is built in place."""
        self.direct = False
        """The staging directory is this run's own (its MKDIR made it): files in it are
        written under their final names, no temporary name and rename each."""
        self.stage_dirty = False
        """A file written directly failed and could not be removed: the staged tree must
        not be moved into place."""

    # -- single file ------------------------------------------------------------------

    def complete_ids(self, wanted: Wanted, dst: Entry | None) -> Wanted:
        """SFTP v3 sets uid and gid together: fill the one not asked for from the
        existing entry, or for a new one from the login (or become) user's ids."""
        if (wanted.uid is None) == (wanted.gid is None):
            return wanted
        uid = wanted.uid
        if uid is None:
            uid = dst.uid if dst is not None and dst.uid is not None else self.default_ids[0]
        gid = wanted.gid
        if gid is None:
            gid = dst.gid if dst is not None and dst.gid is not None else self.default_ids[1]
        return Wanted(wanted.mode, wanted.mtime, uid, gid)

    def file_attrs(self, wanted: Wanted) -> FileAttrs:
        return FileAttrs(wanted.mode, wanted.mtime, wanted.uid, wanted.gid)

    async def send(
        self,
        local: bytes,
        remote_dir: bytes,
        src: Entry,
        rel: bytes,
        dst: Entry | None,
        data: bytes | None = None,
    ) -> None:
        wanted = self.complete_ids(wanted_file(src, self.options, self.uid, self.gid), dst)
        is_new = dst is None
        if not self.options.check_mode:
            try:
                sent = await send_file(
                    self.ch,
                    local,
                    remote_dir,
                    src.name,
                    src.size,
                    src.mtime,
                    self.file_attrs(wanted),
                    atomic=self.options.atomic and not self.direct,
                    resume=self.options.resume,
                    block_size=self.options.block_size,
                    large_threshold=self.options.large_file_threshold,
                    extra_clients=self.extra.clients if self.extra else [],
                    data=data,
                )
            except Exception as exc:
                if self.direct:
                    await self._remove_partial(self.ch.main, join(remote_dir, src.name))
                self.run.fail(rel, exc)
                return
        else:
            sent = src.size
        self.report.wrote(_show(rel), sent, is_new)

    async def _remove_partial(self, client: SFTPClient, path: bytes) -> None:
        """Remove a file written directly into the staged tree whose write failed: if it
        stays, the tree must not be moved into place (it would show a partial file)."""
        try:
            await request(self.ch, client.remove, path)
        except SFTPError as exc:
            if exc.code != FX_NO_SUCH_FILE:
                self.stage_dirty = True

    def chainable(self, size: int) -> bool:
        """Whether a small file already read can go as a chain of reply callbacks: its
        requests fit the cap at once, and the rename (if any) is posix-rename."""
        block = self.ch.write_block(self.options.block_size)
        atomic_ok = not self.options.atomic or self.ch.has(POSIX_RENAME)
        return atomic_ok and self.ch.budget.batch_fits(SmallWrite.requests(size, block))

    async def start_chained(
        self,
        node: DirNode,
        local_dir: bytes,
        remote_dir: bytes,
        src: Entry,
        rel: bytes,
        dst: Entry | None,
        data: bytes,
        behind: asyncio.Future[bool] | None = None,
    ) -> None:
        """Start writing one small file already read (see `chainable`), driven by reply
        callbacks: no task per file. Returns once it is under way. `behind`: the MKDIR of
        its directory, sent and not yet answered; the file then goes on the main channel
        right behind it (an in-order server runs the MKDIR first)."""
        wanted = self.complete_ids(wanted_file(src, self.options, self.uid, self.gid), dst)
        final = join(remote_dir, src.name)
        atomic = self.options.atomic and not self.direct
        target = join(remote_dir, temp_name(src.name)) if atomic else final
        block = self.ch.write_block(self.options.block_size)
        budget = self.ch.budget
        finished = await self.run.reserve_file(node, budget.hold_first)
        client = self.ch.main if behind is not None else self.ch.pick()

        def done(error: SFTPError | None, temp_left: bool) -> None:
            if error is None:
                self.report.wrote(_show(rel), len(data), dst is None)
                finished()
                return
            left = target if temp_left and (target != final or self.direct) else None
            if behind is None:
                self.run.follow_up(finished, self._chain_failed(client, left, rel, error))
                return
            local = os.path.join(local_dir, src.name)
            resend = partial(self.send, local, remote_dir, src, rel, dst, data)
            failed = self._failed_behind(behind, client, left, rel, error, resend)
            self.run.follow_up(finished, failed)

        attrs = self.file_attrs(wanted).as_sftp()
        SmallWrite(client, budget, data, target, final, block, attrs, done).start()

    async def _chain_failed(
        self, client: SFTPClient, temp: bytes | None, rel: bytes, error: SFTPError
    ) -> None:
        if temp is not None and self.direct:
            await self._remove_partial(client, temp)
        elif temp is not None:
            await discard(self.ch, client, temp)
        self.run.fail(rel, error)

    async def _failed_behind(
        self,
        created: asyncio.Future[bool],
        client: SFTPClient,
        temp: bytes | None,
        rel: bytes,
        error: SFTPError,
        resend: Callable[[], Awaitable[None]],
    ) -> None:
        """A file sent behind its directory's MKDIR failed: nothing to report if the
        directory could not be made (its own failure is reported); sent again if it went
        out before the MKDIR after all (a wait for request slots can reorder them)."""
        if not await created:
            return
        if error.code == FX_NO_SUCH_FILE:
            await resend()
            return
        await self._chain_failed(client, temp, rel, error)

    async def fix_attrs(self, remote: bytes, wanted: Wanted, rel: bytes) -> None:
        if not self.options.check_mode:
            attrs = Attrs(
                permissions=wanted.mode, uid=wanted.uid, gid=wanted.gid, mtime=wanted.mtime
            )
            try:
                await request(self.ch, self.ch.pick().setstat, remote, attrs)
            except SFTPError as exc:
                self.run.fail(rel, exc)
                return
        self.report.attributes += 1
        self.report.changed_paths.add(_show(rel))

    async def link(self, remote_dir: bytes, src: Entry, dst: Entry | None, rel: bytes) -> None:
        remote = join(remote_dir, src.name)
        target = src.target or b""
        if dst is not None and dst.kind == "link":
            try:
                current: bytes | None = await read_link_target(
                    self.ch.main, self.ch.budget, remote, dst
                )
            except SFTPError:
                current = None  # unreadable: replace it like a link that differs
            if current == target:
                self.report.skipped += 1
                return
        if not self.options.check_mode:
            client = self.ch.main
            tmp = join(remote_dir, temp_name(src.name))
            try:
                await request(self.ch, client.symlink, tmp, target)
                await rename_into_place(self.ch, client, tmp, remote)
            except SFTPError as exc:
                self.run.fail(rel, exc)
                return
        self.report.symlinks += 1
        (self.report.added if dst is None else self.report.changed_paths).add(_show(rel))

    async def delete(self, remote: bytes, entry: Entry, rel: bytes) -> None:
        if entry.kind == "dir":
            await remove_tree(
                self.ch,
                remote,
                self.report,
                max_files=64,
                fail_fast=self.options.fail_fast,
                check_mode=self.options.check_mode,
                display_root=rel,
            )
            return
        if not self.options.check_mode:
            try:
                await request(self.ch, self.ch.main.remove, remote)
            except SFTPError as exc:
                if exc.code != FX_NO_SUCH_FILE:
                    self.run.fail(rel, exc)
                return
        self.report.deleted += 1
        self.report.deleted_paths.add(_show(rel))

    # -- directories -------------------------------------------------------------------

    async def make_dir(
        self, remote: bytes, rel: bytes, parent_created: asyncio.Future[bool] | None = None
    ) -> bool:
        """Create one directory. `parent_created`: its parent's MKDIR, maybe unanswered.
        A server that answers in order gets this MKDIR right behind the parent's; another
        gets it once the parent's has succeeded."""
        if not self.options.check_mode:
            if not self.ch.main.ordered and not await _made(parent_created):
                return False
            for attempt in range(2):
                parent_pending = parent_created is not None and not parent_created.done()
                try:
                    await request(self.ch, self.ch.main.mkdir, remote, NEW_DIR)
                    break
                except SFTPError as exc:
                    if not await _made(parent_created):
                        return False  # the parent's failure is the one reported
                    if attempt == 0 and parent_pending and exc.code == FX_NO_SUCH_FILE:
                        continue  # sent before the parent's MKDIR after all (a slot wait)
                    self.run.fail(rel, exc)
                    return False
        self._created(rel)
        return True

    def _created(self, rel: bytes) -> None:
        self.report.dirs += 1
        self.report.added.add(_show(rel) + "/")

    def finalizer(self, job: _Job) -> Callable[[], Awaitable[None]]:
        """Set a directory's mode, owner and times once everything below it is done."""
        remote = join(self.remote_root, job.rel) if job.rel else self.remote_root
        wanted = self.complete_ids(wanted_dir(job.src, self.options, self.uid, self.gid), job.dst)
        created = job.dst is None
        differs = job.dst is not None and attrs_differ(job.dst, wanted)

        def counted() -> None:
            if differs:
                self.report.attributes += 1
                self.report.changed_paths.add(_show(job.rel) + "/")

        async def settled(reply: Reply) -> None:
            try:
                SFTPClient.status_of(await reply, remote)
            except SFTPError as exc:
                self.run.fail(job.rel or b".", exc)
                return
            counted()

        async def finalize() -> None:
            if not await _made(job.created):
                return
            await set_attrs()
            if not job.rel and self.final_root is not None:
                await self._move_into_place(remote, self.final_root)

        async def set_attrs() -> None:
            # Writes inside a directory move its mtime: reset it whenever the run changed.
            moved = wanted.mtime is not None and self.report.changed
            if self.options.check_mode or not (created or differs or moved):
                counted()
                return
            mode = wanted.mode if wanted.mode is not None else (0o755 if created else None)
            attrs = Attrs(permissions=mode, uid=wanted.uid, gid=wanted.gid, mtime=wanted.mtime)
            client = self.ch.main
            reply = await self.ch.budget.issue(partial(client.setstat_nowait, remote, attrs))
            if client.ordered:
                # The parent's SETSTAT follows on the same channel, after this one: it need
                # not wait for the answer (a mode without search permission set first
                # would fail this one).
                self.run.spawn(settled(reply))
            else:
                await settled(reply)

        return finalize

    async def _move_into_place(self, staged: bytes, final: bytes) -> None:
        """Rename the finished staged tree to its final name (behind its SETSTAT on an
        in-order channel). A plain SFTP RENAME: it fails rather than replace anything
        that appeared at the final name meanwhile."""
        where = f"the tree was left at {display_path(staged)}"
        if self.stage_dirty:
            self.run.fail(b".", f"a partly written file could not be removed; {where}")
            return
        try:
            await request(self.ch, self.ch.main.rename, staged, final)
        except SFTPError as exc:
            self.run.fail(b".", f"could not move the tree into place ({exc.reason}); {where}")

    def add_subdir(self, job: _Job, parent: DirNode) -> None:
        self.run.add_dir(job, parent, self.finalizer(job))

    async def make_subdir(
        self, remote: bytes, job: _Job, parent_created: asyncio.Future[bool] | None
    ) -> None:
        """Create a directory whose job is already queued: its listing and its own
        subdirectories' MKDIRs go ahead meanwhile, its files wait for `job.created`."""
        made = False
        try:
            made = await self.make_dir(remote, job.rel, parent_created)
        finally:
            if job.created is not None and not job.created.done():
                job.created.set_result(made)

    async def _list_local(self, local: bytes, follow: bool, src: Entry) -> LocalListing:
        """A local directory's entries: on the event loop while that is quick (no thread
        hop, no GIL taken in turns), on a thread for a large directory or a slow disk."""
        prefetched = self.prefetch.listing(local) if self.prefetch is not None else None
        if prefetched is not None:
            return prefetched
        work = partial(list_local_dir, local, follow, self.local_root)
        if src.size > INLINE_LISTING_BYTES:
            return await asyncio.to_thread(work)
        return await self.local_batches.run(work, _listed)

    async def process_dir(self, job: _Job, node: DirNode) -> None:
        local = os.path.join(self.local_root, job.rel) if job.rel else self.local_root
        remote = join(self.remote_root, job.rel) if job.rel else self.remote_root
        if not job.rel and job.created is not None:
            # The staged root: its entries follow its MKDIR as a new subdirectory's do.
            await self.run.start_file(node, self.make_subdir, remote, job, None)
        follow = self.options.links == "follow"
        listing_task = asyncio.ensure_future(self._list_local(local, follow, job.src))
        unsafe: list[bytes] = []
        existing: dict[bytes, Entry] = {}
        if job.dst is not None:
            try:
                existing = await remote_dir_entries(self.ch.main, self.ch.budget, remote, unsafe)
            except SFTPError as exc:
                if exc.code != FX_NO_SUCH_FILE:
                    listing_task.cancel()
                    self.run.fail(job.rel or b".", exc)
                    return
        try:
            listing = await listing_task
        except OSError as exc:
            self.run.fail(local, exc)
            return
        self.ch.listed(len(listing.entries))
        for name in listing.escaped:
            self.run.fail(
                relative(job.rel, name), "the symlink points outside the source tree; not followed"
            )
        for name in listing.loops:
            self.run.fail(
                relative(job.rel, name),
                "the symlink leads back to a directory above it (a loop); not followed",
            )
        checksum_candidates: list[tuple[Entry, Entry]] = []
        created = job.created
        small = _SmallFiles(self, local, remote, node, created)
        entries = listing.entries
        if created is not None:
            # Subdirectories first: their MKDIRs follow this directory's own without
            # waiting for its answer; its files wait for it (`_made`).
            entries = sorted(entries, key=lambda entry: entry.kind != "dir")
        for src in entries:
            rel = relative(job.rel, src.name)
            if self.excluder and self.excluder.excluded(rel, src.kind == "dir"):
                existing.pop(src.name, None)
                continue
            dst = existing.pop(src.name, None)
            target = join(remote, src.name)
            if (
                dst is not None
                and dst.kind != src.kind
                and (src.kind == "dir" or dst.kind == "dir")
            ):
                if dst.kind == "dir" and not self.options.delete:
                    self.run.fail(
                        rel,
                        "a directory is in the way on the destination (use delete to replace it)",
                    )
                    continue
                await self.delete(target, dst, rel)
                dst = None
            if src.kind == "dir":
                if dst is None:
                    child = _Job(rel, src, None, asyncio.get_running_loop().create_future())
                    await self.run.start_file(node, self.make_subdir, target, child, created)
                    self.add_subdir(child, node)
                else:
                    self.add_subdir(_Job(rel, src, dst), node)
            elif src.kind == "file":
                decision = content_decision(src, dst, self.options)
                if decision == "send":
                    await small.add(src, rel, dst)
                elif decision == "checksum" and dst is not None:
                    checksum_candidates.append((src, dst))
                elif dst is not None:
                    await self.after_skip(target, src, dst, rel, node)
            elif src.kind == "link":
                if self.options.links == "skip" or not await _made(created):
                    continue
                await self.run.start_file(node, self.link, remote, src, dst, rel)
            else:
                self.report.specials += 1
        await small.flush()
        if self.prefetch is not None:
            self.prefetch.forget(local)
        for start in range(0, len(checksum_candidates), CHECKSUM_BATCH):
            batch = checksum_candidates[start : start + CHECKSUM_BATCH]
            await self.checksum_batch(local, remote, job.rel, batch, node)
        for name in unsafe:
            self.run.fail(
                job.rel or b".", f"the server listed an unsafe name {name!r}; it was left alone"
            )
        if self.options.delete:
            for name, dst, rel in mirror_deletions(existing, job.rel, self.excluder):
                await self.run.start_file(node, self.delete, join(remote, name), dst, rel)

    async def after_skip(
        self, target: bytes, src: Entry, dst: Entry, rel: bytes, node: DirNode
    ) -> None:
        wanted = wanted_file(src, self.options, self.uid, self.gid)
        if attrs_differ(dst, wanted):
            wanted = self.complete_ids(wanted, dst)
            await self.run.start_file(node, self.fix_attrs, target, wanted, rel)
        else:
            self.report.skipped += 1

    async def checksum_batch(
        self,
        local: bytes,
        remote: bytes,
        rel_dir: bytes,
        batch: list[tuple[Entry, Entry]],
        node: DirNode,
    ) -> None:
        names = [src.name for src, _dst in batch]
        remote_sums = await _remote_checksums(self.session, remote, names)
        for (src, dst), remote_sum in zip(batch, remote_sums, strict=True):
            rel = relative(rel_dir, src.name)
            local_sum = await asyncio.to_thread(_local_checksum, os.path.join(local, src.name))
            if remote_sum is not None and remote_sum == local_sum:
                await self.after_skip(join(remote, src.name), src, dst, rel, node)
            else:
                await self.run.start_file(
                    node, self.send, os.path.join(local, src.name), remote, src, rel, dst
                )

    # -- entry points ------------------------------------------------------------------

    async def stat_remote(self, path: bytes) -> Attrs | None:
        try:
            return await request(self.ch, self.ch.main.stat, path)
        except SFTPError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                return None
            raise

    async def make_parents(self, path: bytes) -> None:
        """mkdir -p for the destination's missing parents."""
        missing: list[bytes] = []
        current = path
        while current not in (b"", b"/", b"."):
            if await self.stat_remote(current) is not None:
                break
            missing.append(current)
            current = posixpath.dirname(current)
        for directory in reversed(missing):
            if self.options.check_mode:
                continue
            await request(self.ch, self.ch.main.mkdir, directory)

    async def push(self, src: str, dest: str) -> None:
        self.uid, self.gid = await resolve_ids(self.session, self.options.owner, self.options.group)
        if (self.uid is None) != (self.gid is None):
            self.default_ids = await login_ids(self.session)
        local = os.fsencode(src)
        try:
            st = os.stat(local) if self.options.links == "follow" else os.lstat(local)
        except FileNotFoundError:
            raise SourceError(f"the source {src} does not exist") from None
        except OSError as exc:
            raise SourceError(f"the source {src} cannot be read: {exc.strerror}") from None
        root_entry = entry_from_stat(os.path.basename(local.rstrip(b"/")) or b".", st)
        remote_dest = os.fsencode(dest)
        if root_entry.kind == "dir":
            self.local_root = local.rstrip(b"/") or b"/"
            contents_only = src.endswith("/")
            self.remote_root = remote_dest.rstrip(b"/") or b"/"
            if not contents_only:
                self.remote_root = join(self.remote_root, root_entry.name)
            await self.push_dir(root_entry)
            return
        if root_entry.kind not in ("file", "link"):
            raise SourceError(f"the source {src} is not a regular file or directory")
        _learned, dest_attrs = await asyncio.gather(
            self.ch.learned(), self.stat_remote(remote_dest)
        )
        if dest.endswith("/") or (dest_attrs is not None and dest_attrs.is_dir):
            remote_dir, name = remote_dest.rstrip(b"/") or b"/", root_entry.name
        else:
            remote_dir, name = (
                posixpath.dirname(remote_dest) or b".",
                posixpath.basename(remote_dest),
            )
        await self.make_parents(remote_dir)
        final = join(remote_dir, name)
        existing = await self._lstat_entry(final)
        root_entry.name = name
        if root_entry.kind == "link":
            root_entry.target = os.readlink(local)
            await self.link(remote_dir, root_entry, existing, name)
            return
        decision = content_decision(root_entry, existing, self.options)
        if existing is not None and existing.kind == "dir":
            raise SourceError(f"the destination {dest} is a directory")
        if decision == "checksum" and existing is not None:
            sums = await _remote_checksums(self.session, remote_dir, [name])
            same = sums[0] is not None and sums[0] == await asyncio.to_thread(
                _local_checksum, local
            )
            decision = "skip" if same else "send"
        if decision == "send":
            await self.send(local, remote_dir, root_entry, name, existing)
        elif existing is not None:
            wanted = wanted_file(root_entry, self.options, self.uid, self.gid)
            if attrs_differ(existing, wanted):
                await self.fix_attrs(final, self.complete_ids(wanted, existing), name)
            else:
                self.report.skipped += 1

    async def _lstat_entry(self, path: bytes) -> Entry | None:
        try:
            attrs = await request(self.ch, self.ch.main.lstat, path)
        except SFTPError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                return None
            raise
        return entry_from_attrs(posixpath.basename(path), attrs)

    async def _is_dir(self, path: bytes) -> bool:
        """Whether `path` is a directory on the server (False when it cannot tell)."""
        try:
            attrs = await request(self.ch, self.ch.main.stat, path)
        except SFTPError:
            return False
        return attrs.is_dir

    async def _try_mkdir(self, path: bytes) -> bool:
        """MKDIR that may fail quietly (the caller finds out why from its LSTAT)."""
        if self.options.check_mode:
            return False
        try:
            await request(self.ch, self.ch.main.mkdir, path, NEW_DIR)
        except SFTPError:
            return False
        return True

    async def push_dir(self, root_entry: Entry) -> None:
        parent = posixpath.dirname(self.remote_root)
        staged = self._staging_name()
        self.prefetch = LocalPrefetch(
            self.local_root,
            root_entry.size,
            self.options.links == "follow",
            INLINE_LISTING_BYTES,
            0 if self.options.check_mode else READ_BATCH_MAX_FILE,
        )
        self.prefetch.start()
        # One round trip, the same as the server's limits (see open_channels): the root,
        # its parent and its staging name are looked up together. Without staging the
        # root is also created: the MKDIR fails harmlessly when it exists (the server
        # answers in order, so the LSTAT still sees what was there before).
        try:
            _learned, existing, parent_exists, made, leftover = await asyncio.gather(
                self.ch.learned(),
                self._lstat_entry(self.remote_root),
                self._is_dir(parent),
                self._try_mkdir(self.remote_root) if staged is None else _false(),
                self._lstat_entry(staged) if staged is not None else _none(),
            )
        finally:
            self.prefetch.stop()
        share_files(self.run, self.ch, self.options.max_files)
        if existing is not None and existing.kind != "dir":
            raise SourceError(
                f"the destination {display_path(self.remote_root)} exists and is not a directory"
            )
        root_created: asyncio.Future[bool] | None = None
        if made:
            existing = None
            self._created(b"")
        elif existing is None:
            if not parent_exists:
                await self.make_parents(parent)
            if staged is not None and leftover is not None and leftover.kind == "dir":
                self._stage(staged, direct=False)  # left by an interrupted run: go on
                existing = leftover
                self._created(b"")
            elif staged is not None:
                self._stage(staged, direct=True)
                root_created = asyncio.get_running_loop().create_future()
            elif not await self.make_dir(self.remote_root, b""):
                return
        job = _Job(b"", root_entry, existing, root_created)
        self.run.add_dir(job, None, self.finalizer(job))
        await self.run.run(self.process_dir)

    def _staging_name(self) -> bytes | None:
        """Where a new tree is built before it is moved to its final name in one rename:
        a stable hidden sibling, so that a run after an interruption finds it and goes on
        (resuming large files). None when the tree is updated in place: check mode, no
        atomic writes, or a root without a name of its own."""
        name = posixpath.basename(self.remote_root)
        if self.options.check_mode or not self.options.atomic or name in (b"", b".", b".."):
            return None
        return posixpath.join(posixpath.dirname(self.remote_root), temp_name(name, True))

    def _stage(self, staged: bytes, direct: bool) -> None:
        """Build the tree at `staged` and move it to the root's name once complete.
        `direct`: this run made `staged`, so no one else writes in it and its files are
        written under their final names (one request and one round trip less each; a
        file that fails is removed). A staging directory left by an earlier run is
        updated like any existing destination, with a temporary name per file."""
        self.final_root, self.remote_root = self.remote_root, staged
        self.direct = direct


async def _false() -> bool:
    return False


async def _none() -> None:
    return None
