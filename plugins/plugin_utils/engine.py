"""The tree scheduler shared by push, pull and remove.

Directories are listed by a few workers taking jobs from a LIFO stack (depth first, so
pending work stays near the tree's depth × width, not its size). Files are started as
tasks only after a files-in-flight slot is free, so live tasks are bounded. A directory
is finalized (mode, times) once everything below it is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ansible_collections.pipelined.sftp.plugins.plugin_utils.budget import Budget, Lane
from ansible_collections.pipelined.sftp.plugins.plugin_utils.paths import UnsafeName
from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
    FX_CONNECTION_LOST,
    FX_NO_CONNECTION,
    ServerLimits,
    SFTPClient,
    SFTPError,
    display_path,
    mark_retrieved,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import (
    Progress,
    ProgressCallback,
    Report,
)

PROGRESS_INTERVAL = 2.0
MIN_FILES_IN_FLIGHT = 128
MAX_HANDLES = 1024
SMALL_FILE_CHANNELS = 2
"""Channels the small files of a pushed tree spread over (a pull's take one: the server
only reads them, and a second session cost more than it gave: 5,000 files to tmpfs took
0.48 s after connecting on one channel, 0.56 s on two at 0 ms; 0.58 s against 0.62 s at
10 ms; 1.09 s against 1.13 s at 50 ms). Two sftp-server processes create files on two
cores, which is what bounds a push to disk (measured, 5,000 files at 50 ms: 5.7 s on
mostly one channel, 4.0 s on two); more only add session starts, during which sshd relays
nothing for the open channels, and processes competing for the same cores (5,000 files to
tmpfs at 0 ms: 0.66-0.70 s on one or two channels, 0.87 s with four open)."""
WINDOW_BOUND_RTT = 0.025
"""Round trip above which one channel's window caps a bulk transfer (OpenSSH's 2 MiB per
25 ms is about 80 MB/s, what this class of machine moves)."""
MAX_FILES_IN_FLIGHT = 1024
FILES_PER_SECOND = 30000
"""Files per second the round trip is sized for: what the server would complete if the
link added no delay. Under load a reply takes about 1.3-1.6 times the idle round trip (the
server's queue), so this is above the ~10,000 files a second measured here: a 5,000-file
push to tmpfs at 10 ms took 0.70 s after connecting with 900 files in flight, 0.74 s with
450 (scratch A/B of 5 pairs, `max_files`)."""
DIR_WORKERS = 16
UNANSWERED_BYTES = 1536 * 1024
"""Bytes of small requests a channel may have sent and not had answered (at least; see
`unanswered_window` and `SFTPClient.limit_unanswered`). OpenSSH's sftp-server copies its
whole input buffer as that buffer grows and compacts, so small requests sent far ahead of
it cost it CPU more than linearly: with no cap, one push in three at 10 ms had one
sftp-server spend 0.15-0.4 s on those copies alone. Measured, 5,000 files to tmpfs at
10 ms, 16 runs against no cap in the same run: server CPU 0.29 s (median; at most
0.34 s) against 0.37 s (0.51 s), the push 0.71 s (0.65-0.74 s) against 0.74 s
(0.69-0.88 s). A 1 MiB cap did as well for the server and pushed 2 % slower."""
UNANSWERED_RATE = 100 * 1024 * 1024
"""Bytes a second one channel's cap allows at least, once the round trip is known: the cap
grows with the round trip above 15 ms, so that requests waiting on the link do not count
against the server's queue."""
SECOND_CHANNEL_AFTER = 256
"""Entries a tree run lists before its second channel opens: a tree smaller than that would
finish before the second session started, and the run would then wait for it to close
cleanly (40 files at 50 ms: ~35 ms; at 0 ms the session's start took ~80 ms of the
server's CPU, and the run 0.27 s instead of 0.19 s)."""


class FailFast(Exception):
    """Raised to stop a run at the first failure when fail_fast is asked."""


if TYPE_CHECKING:  # connect imports asyncssh: keep it out of tasks that only need the core
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import Session

    SessionLike = Session


@dataclass
class Channels:
    """The SFTP channels of one server and the budget they share.

    Work starts on the first channel. The others (each costs the server a session: a
    login shell that starts sftp-server, ~80 ms of CPU on the benchmark machine, whose
    root ~/.bashrc runs `pyenv init`) open only when the run needs them: a second one for the small
    files of a tree once it has more than SECOND_CHANNEL_AFTER entries (`start_tree`,
    `listed`), the rest for the large files of a tree (`pick_large`). A single small file
    never waits for them.
    """

    clients: list[SFTPClient]
    limits: ServerLimits
    budget: Budget
    rtt: float = 0.0
    tree: bool = False
    """A tree run: its large files each take a channel of their own (`pick_large`)."""
    _next_large: int = 0
    _planned: list[SessionLike] = field(default_factory=list)
    _openers: list[asyncio.Task[None]] = field(default_factory=list)
    _closed: bool = False
    _small_channels: int = SMALL_FILE_CHANNELS
    _until_second: int = 0
    """Entries still to list before the tree's second channel opens."""
    _when_second: list[Callable[[], None]] = field(default_factory=list)
    _learning: asyncio.Future[None] | None = None
    _limits_known: asyncio.Future[None] | None = None

    @property
    def start_error(self) -> BaseException | None:
        """Why the first channel's SFTP session did not start, once known (see
        `open_channels`): the cause to report when requests sent behind its INIT fail."""
        return self.clients[0].start_error

    async def learned(self) -> None:
        """Wait until the server's limits are known (see `open_channels`); raises what
        learning them raised."""
        if self._limits_known is not None:
            await asyncio.shield(self._limits_known)

    async def measured(self) -> None:
        """Wait until the round trip is known too (`rtt`)."""
        await self.learned()
        if self._learning is not None:
            await asyncio.shield(self._learning)

    def measured_rtt(self, rtt: float) -> None:
        """Record the round trip and resize every channel's cap on unanswered requests."""
        self.rtt = rtt
        for client in self.clients:
            self.cap_unanswered(client)

    def cap_unanswered(self, client: SFTPClient) -> None:
        """Set a channel's cap on unanswered small requests for the round trip known now."""
        client.limit_unanswered(unanswered_window(self.rtt))

    def when_measured(self, then: Callable[[], None]) -> None:
        """Call `then` once the round trip is known (at once if it is; never if learning
        it failed: the run fails then anyway)."""
        learning = self._learning
        if learning is None or learning.done():
            then()
            return

        def measured(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                then()

        learning.add_done_callback(measured)

    @property
    def small_file_channels(self) -> int:
        """Channels small files spread over: as `start_tree` asked in a tree run, else one."""
        return self._small_channels if self.tree else 1

    @property
    def window_bound(self) -> bool:
        """Whether the round trip lets one channel's window cap a bulk transfer."""
        return self.rtt > WINDOW_BOUND_RTT

    def start_tree(self, small_file_channels: int = SMALL_FILE_CHANNELS) -> None:
        """Mark a tree run (once): its large files take a channel each (`pick_large`), and
        with `small_file_channels` 2 its small files' second channel opens in the
        background once the run has listed SECOND_CHANNEL_AFTER entries (`listed`)."""
        if self.tree:
            return
        self.tree = True
        self._small_channels = small_file_channels
        if small_file_channels > 1:
            self._until_second = SECOND_CHANNEL_AFTER

    def _open_second(self) -> None:
        self._until_second = 0
        self.open_planned(SMALL_FILE_CHANNELS - 1)
        waiting, self._when_second = self._when_second, []
        for then in waiting:
            self.when_opened(then)

    def listed(self, entries: int) -> None:
        """A tree run listed `entries` more entries (see `start_tree`)."""
        if self._until_second:
            self._until_second = max(0, self._until_second - entries)
            if not self._until_second:
                self._open_second()

    def pick(self) -> SFTPClient:
        """The channel for a small file or a single request: of the small files' channels,
        the one with the fewest requests outstanding, so that a channel opening while the
        first holds a backlog takes the new files until the two are even (see also
        `share_files`)."""
        count = min(len(self.clients), self.small_file_channels)
        if count == 1:
            return self.clients[0]
        return min(self.clients[:count], key=_outstanding)

    async def pick_large(self, own_channel: bool = True) -> SFTPClient:
        """The channel for a large file. In a tree run every channel takes its turn, the
        others opened first: two large files written over one channel share one
        sftp-server process. Reads share it better than they pay for a second process
        while no window caps them: `own_channel` False keeps them on the first channel. A
        single file takes the first channel (spread_over adds others)."""
        if not self.tree:
            return self.pick()
        if not own_channel:
            return self.main
        await self.ready()
        client = self.clients[self._next_large % len(self.clients)]
        self._next_large += 1
        return client

    def write_block(self, block_size: int) -> int:
        """The WRITE size to use for a wanted block size: within the server's limit."""
        return max(1024, min(block_size, self.limits.max_write))

    def read_block(self, block_size: int) -> int:
        """The READ size to use for a wanted block size: within the server's limit."""
        return max(1024, min(block_size, self.limits.max_read))

    @property
    def main(self) -> SFTPClient:
        return self.clients[0]

    def has(self, extension: bytes) -> bool:
        return extension in self.main.extensions

    def open_more(self, sessions: Sequence[SessionLike]) -> None:
        """Open one more channel on each of `sessions` when the run needs them."""
        self._planned = list(sessions)

    def open_planned(self, count: int | None = None) -> None:
        """Start opening `count` more of the other channels (all: None) in the background."""
        if self._closed or not self._planned:
            return
        count = len(self._planned) if count is None else count
        starting, self._planned = self._planned[:count], self._planned[count:]
        if starting:
            self._openers.append(asyncio.ensure_future(self._open_more(starting)))

    async def _open_more(self, sessions: Sequence[SessionLike]) -> None:
        # Not while the first channel's server is still starting: two session starts at
        # once compete for the server's CPU, and the run waits for the first.
        try:
            await self.main.started()
        except Exception:
            return

        async def one(session: SessionLike) -> None:
            try:
                client = await session.open_sftp()
            except Exception:
                return
            if self._closed:
                await client.aclose()
            else:
                self.cap_unanswered(client)
                self.clients.append(client)

        await asyncio.gather(*(one(session) for session in sessions))

    def small_files_opening(self) -> bool:
        """Whether a tree run's second small-file channel is still to open, or opening."""
        opening = self._until_second > 0 or any(not opener.done() for opener in self._openers)
        return self.tree and opening and len(self.clients) < self.small_file_channels

    def when_opened(self, then: Callable[[], None]) -> None:
        """Call `then` once the channels opening now are open (or failed to); for a tree's
        second channel not asked for yet, once it is."""
        if self._until_second:
            self._when_second.append(then)
            return
        pending = [opener for opener in self._openers if not opener.done()]
        if not pending:
            then()
            return
        asyncio.gather(*pending, return_exceptions=True).add_done_callback(lambda _done: then())

    async def ready(self) -> None:
        """Open the other channels now and wait until they are open (or failed to)."""
        if self._until_second:
            self._open_second()
        self.open_planned()
        if self._openers:
            await asyncio.shield(asyncio.gather(*self._openers))

    async def aclose(self) -> None:
        if self._learning is not None:
            self._learning.cancel()  # nobody needs the answers any more (a no-op when done)
            await asyncio.wait([self._learning])
        # Let channels still opening finish rather than abort them half-way: a channel cut
        # off during its setup can take the server's side of the connection down with it.
        if self._openers:
            await asyncio.wait(self._openers)
        self._closed = True
        await self.budget.drain()
        await asyncio.gather(*(client.aclose() for client in self.clients))


async def open_channels(
    sessions: Sequence[SessionLike],
    per_session: int,
    max_requests: int,
    *,
    learn_later: bool = False,
) -> Channels:
    """Open an SFTP channel and learn the server's limits and round trip; the other
    `per_session` channels of each session open when the run needs them.

    With `learn_later`, return as soon as the channel is open: the caller's first
    requests (which must open no handle) then go out together with these (on an in-order
    server, right behind the SFTP INIT), and it awaits `Channels.learned()` before using
    `limits` or the handle cap, and `Channels.measured()` before using `rtt`; a run that
    fails asks `start_error` why first."""
    planned = [session for session in sessions for _channel in range(max(1, per_session))]
    first = await planned[0].open_sftp(early=True)
    channels = Channels([first], ServerLimits(), Budget(max_requests, MAX_HANDLES))
    channels.cap_unanswered(first)
    known: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    known.add_done_callback(mark_retrieved)
    channels._limits_known = known
    channels._learning = asyncio.ensure_future(_learn(channels, first, len(planned), known))
    channels._learning.add_done_callback(mark_retrieved)
    channels.open_more(planned[1:])
    if not learn_later:
        try:
            await channels.measured()
        except BaseException:
            await first.aclose()
            raise
    return channels


async def _learn(
    channels: Channels, first: SFTPClient, planned: int, known: asyncio.Future[None]
) -> None:
    try:
        await _learn_steps(channels, first, planned, known)
    except BaseException as exc:
        if not known.done():
            known.set_exception(exc)
        raise


async def _learn_steps(
    channels: Channels, first: SFTPClient, planned: int, known: asyncio.Future[None]
) -> None:
    budget = channels.budget

    async def round_trip() -> float:
        started = time.monotonic()
        await first.realpath(b".")
        return time.monotonic() - started

    def limits_known(limits: ServerLimits) -> None:
        budget.limit_handles(min(limits.max_handles * planned, MAX_HANDLES))
        channels.limits = limits
        known.set_result(None)

    if first.starting and first.ordered:
        # The limits request goes out right behind INIT (see SFTPClient.limits) and the
        # run starts on its answer; the round trip is measured after, on a started server.
        async with budget.request(listing=True):
            limits = await first.limits()
        await first.started()
        limits_known(limits)
        async with budget.request(listing=True):
            channels.measured_rtt(await round_trip())
        return
    await first.started()
    if budget.batch_fits(2):
        # Both requests go out together: the server answers in order, so the second
        # reply still measures one round trip, and the run starts one round trip sooner.
        async with budget.requests(2):
            limits, rtt = await asyncio.gather(first.limits(), round_trip())
    else:
        async with budget.request(listing=True):
            limits = await first.limits()
        async with budget.request(listing=True):
            rtt = await round_trip()
    limits_known(limits)
    channels.measured_rtt(rtt)


def _outstanding(client: SFTPClient) -> int:
    return client.in_flight


def share_files(
    run: TreeRun[Any],
    channels: Channels,
    configured: int | None,
    halve: bool = True,
    factor: int = 1,
) -> None:
    """Size a run's files in flight: `configured`, or `factor` times what the round trip
    asks for.

    Until the round trip is measured (`Channels.measured`), the run starts with the
    minimum and grows once it is known. With `halve`, while the tree's second channel is
    still opening, the first channel gets half, and the rest follow once it is open: files
    in flight are held until answered, and a disk-bound server can take seconds to work
    through a backlog on one channel while the other, once open, would have no files to
    take (5,000 files to disk at 50 ms: 5.6 s instead of 4.0 s)."""
    granted = 0

    def grant() -> None:
        nonlocal granted
        wanted = files_in_flight(channels.rtt, configured)
        if not configured:
            wanted *= factor
        if halve and channels.small_files_opening():
            wanted = max(1, wanted // 2)
        if wanted > granted:
            run.grow(wanted - granted)
            granted = wanted

    run.resize(0)
    grant()
    if halve:
        channels.when_opened(grant)
    if not configured:
        channels.when_measured(grant)


def unanswered_window(rtt: float) -> int:
    """A channel's cap on request bytes sent and not answered (`UNANSWERED_BYTES`)."""
    return max(UNANSWERED_BYTES, int(rtt * UNANSWERED_RATE))


def files_in_flight(rtt: float, configured: int | None) -> int:
    """Files to keep in flight: enough to cover the round trip, few on a fast link.

    A small file takes about three round trips (open; write + setstat + close; rename).
    """
    if configured:
        return max(1, configured)
    return max(MIN_FILES_IN_FLIGHT, min(MAX_FILES_IN_FLIGHT, int(rtt * 3 * FILES_PER_SECOND)))


def is_fatal(exc: BaseException) -> bool:
    """Errors that end the whole run (the channel is gone), not just one path."""
    return isinstance(exc, SFTPError) and exc.code in (FX_CONNECTION_LOST, FX_NO_CONNECTION)


def reason_of(exc: BaseException) -> str:
    """One-sentence cause of a per-path failure, without the path."""
    if isinstance(exc, SFTPError):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, UnsafeName):
        return str(exc)
    return str(exc) or type(exc).__name__


J = TypeVar("J")
P = ParamSpec("P")


@dataclass
class DirNode:
    """Completion tracking for one directory: finalized when nothing below is pending.

    `finalize` may return once its requests are sent; the parent counts the directory done
    then, so the finalizing requests of a whole branch go out back to back (a server
    answers each channel's requests in order). Awaiting their replies is the finalizer's
    own follow-up (`TreeRun.spawn`).
    """

    parent: DirNode | None
    finalize: Callable[[], Awaitable[None]] | None = None
    pending: int = 1
    children: int = field(default=0)


class TreeRun(Generic[J]):
    """Runs directory jobs and file tasks with bounded concurrency, collecting failures."""

    def __init__(
        self,
        report: Report,
        max_files: int,
        fail_fast: bool,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.report = report
        self.fail_fast = fail_fast
        self._files = Lane(max_files)
        self._stack: list[tuple[J, DirNode]] = []
        self._ready = asyncio.Event()
        self._jobs_open = 0
        self._live_files = 0
        self._all_listed = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._progress = progress
        self._last_progress = time.monotonic()

    def resize(self, max_files: int) -> None:
        """Set the files-in-flight cap (before any file starts)."""
        self._files = Lane(max_files)

    def grow(self, more: int) -> None:
        """Raise the files-in-flight cap by `more`, now."""
        self._files.release(more)

    # -- failures and progress ---------------------------------------------------------

    def fail(self, path: bytes | str, exc: BaseException | str) -> None:
        """Record one path's failure; stop everything if it is fatal or fail_fast."""
        if isinstance(exc, BaseException) and is_fatal(exc):
            raise exc
        reason = exc if isinstance(exc, str) else reason_of(exc)
        shown = display_path(path) or "."
        self.report.fail(shown, reason)
        if self.fail_fast:
            raise FailFast(f"{shown}: {reason}")

    def tick(self) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            seconds = now - self.report.started
            self._progress(Progress(self.report.files, self.report.bytes, seconds))

    # -- directories ---------------------------------------------------------------------

    def add_dir(
        self, job: J, parent: DirNode | None, finalize: Callable[[], Awaitable[None]] | None = None
    ) -> DirNode:
        node = DirNode(parent, finalize)
        if parent is not None:
            parent.pending += 1
        self._jobs_open += 1
        self._stack.append((job, node))
        self._ready.set()
        return node

    def _done(self, node: DirNode) -> None:
        node.pending -= 1
        if node.pending == 0:
            self._spawn(self._finalize(node))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task of the run: the run ends only after it, and a fatal
        failure or fail_fast raised in it stops the run."""
        self._spawn(work)

    def _spawn(self, work: Coroutine[Any, Any, None], *inner: Coroutine[Any, Any, None]) -> None:
        """Run `work` (which awaits the `inner` coroutines) as a task of the run."""
        try:
            self._group_now().create_task(work)
        except RuntimeError:  # the run is being torn down (a failure): nothing to finish
            for coroutine in (work, *inner):
                coroutine.close()

    def _group_now(self) -> asyncio.TaskGroup:
        if self._group is None:
            raise RuntimeError("TreeRun.run() is not running")
        return self._group

    async def _finalize(self, node: DirNode) -> None:
        try:
            if node.finalize is not None:
                await node.finalize()
        finally:
            if node.parent is not None:
                self._done(node.parent)

    # -- files -----------------------------------------------------------------------------

    async def start_file(
        self, node: DirNode, work: Callable[P, Awaitable[None]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Start `work(*args)` for one entry once a files-in-flight slot is free."""
        await self._files.acquire()
        node.pending += 1
        self._live_files += 1
        self._group_now().create_task(self._file(node, work(*args, **kwargs)))

    async def _file(self, node: DirNode, work: Awaitable[None]) -> None:
        try:
            await work
            self.tick()
        finally:
            self._file_done(node)

    def _file_done(self, node: DirNode) -> None:
        self._files.release()
        self._live_files -= 1
        if self._live_files == 0:
            self._ready.set()  # idle workers re-check: a file task may have queued a dir
        self._done(node)

    async def reserve_file(
        self, node: DirNode, take: Callable[[], Awaitable[None]] | None = None
    ) -> Callable[[], None]:
        """Take a files-in-flight slot for one entry handled by reply callbacks instead of
        a task (see chains.py), then what `take` takes (the first request's slots); the
        returned function, called once, ends the entry."""
        await self._files.acquire()
        if take is not None:
            try:
                await take()
            except BaseException:
                self._files.release()
                raise
        node.pending += 1
        self._live_files += 1

        def finished() -> None:
            self.tick()
            self._file_done(node)

        return finished

    def follow_up(self, finished: Callable[[], None], work: Coroutine[Any, Any, None]) -> None:
        """End a callback-driven entry with async work (clean-up, failure reporting) in a
        task of the run, so that a fatal failure stops the run as from a file task."""

        async def run() -> None:
            try:
                await work
            finally:
                finished()

        self._spawn(run(), work)

    def fail_later(self, finished: Callable[[], None], path: bytes, exc: BaseException) -> None:
        """End a callback-driven entry with its failure, recorded as `fail` would (a fatal
        one or fail_fast stops the run)."""

        async def fail() -> None:
            self.fail(path, exc)

        self.follow_up(finished, fail())

    # -- run ---------------------------------------------------------------------------------

    async def run(
        self, process_dir: Callable[[J, DirNode], Awaitable[None]], workers: int = DIR_WORKERS
    ) -> None:
        """Process every directory job (jobs may add more) and wait for all files."""

        async def worker() -> None:
            while True:
                while not self._stack:
                    if self._jobs_open == 0 and self._live_files == 0:
                        self._all_listed.set()
                        return
                    self._ready.clear()
                    await self._ready.wait()
                job, node = self._stack.pop()
                try:
                    await process_dir(job, node)
                finally:
                    self._jobs_open -= 1
                    self._done(node)
                    if self._jobs_open == 0:
                        self._ready.set()

        async with asyncio.TaskGroup() as group:
            self._group = group
            for _worker in range(workers):
                group.create_task(worker())
