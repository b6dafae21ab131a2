"""What pipelined_copy, pipelined_fetch and pipelined_remove share as Ansible action plugins.

The base validates task arguments, builds the connection spec from the task's connection
plugin, runs one core call in an event loop, and shapes the Report into an Ansible result:
counts, failures, diff, check mode, unreachable hosts. Each action plugin only turns its
arguments into that core call.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.pipelined.sftp.plugins.plugin_utils.ansible_adapter import (
    AdapterError,
    become_spec,
    connection_spec,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import (
    CappedList,
    Progress,
    ProgressCallback,
    Report,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec

if TYPE_CHECKING:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import Session

display = Display()

PROGRESS_INTERVAL = 5.0
"""Seconds between progress lines; transfers shorter than this print none."""

CoreCall = Callable[["Session", ProgressCallback], Coroutine[Any, Any, Report]]


class TaskError(Exception):
    """The task cannot run as asked; str() is the one-sentence message for the result."""


@dataclass
class Job:
    """One core call an action wants made, and what its result reports besides the counts."""

    call: CoreCall
    result: dict[str, Any] = field(default_factory=dict)
    diff_header: str = ""
    root: str = ""
    """Where the core's relative report paths start (the tree's top at the destination)."""


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_mode(value: Any, option: str) -> int | None:
    """An octal permission mode from a task argument ('0644', '644', or a YAML int)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TaskError(f"{option} {value!r} is not an octal mode such as '0644'.")
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip()
        if not text or any(c not in "01234567" for c in text) or len(text) > 5:
            raise TaskError(f"{option} {text!r} is not an octal mode such as '0644'.")
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise TaskError(f"{option} {value!r} is outside 0000-7777.")
    return mode


def positive(args: Mapping[str, Any], *names: str) -> None:
    """Refuse zero or negative counts and sizes."""
    for name in names:
        value = args.get(name)
        if value is not None and value < 1:
            raise TaskError(f"{name} must be at least 1, not {value}.")


def transfer_options(args: Mapping[str, Any], check_mode: bool) -> TransferOptions:
    """TransferOptions from validated copy/fetch arguments."""
    positive(args, "max_requests", "max_files", "connections", "block_size")
    preserve = set(args.get("preserve") or ())
    return TransferOptions(
        preserve_mode="mode" in preserve,
        preserve_times="times" in preserve,
        mode=parse_mode(args.get("mode"), "mode"),
        directory_mode=parse_mode(args.get("directory_mode"), "directory_mode"),
        owner=args.get("owner") or None,
        group=args.get("group") or None,
        links=args["links"],
        compare=args["compare"],
        delete=bool(args["delete"]),
        exclude=tuple(args.get("exclude") or ()),
        atomic=bool(args["atomic"]),
        resume=bool(args["resume"]),
        max_requests=int(args["max_requests"]),
        max_files=args.get("max_files"),
        connections=int(args["connections"]),
        block_size=int(args["block_size"]),
        fail_fast=bool(args["fail_fast"]),
        check_mode=check_mode,
    )


def reject_tilde(path: str, option: str) -> None:
    """SFTP does not expand '~'; say so instead of creating a directory named '~'."""
    if path.startswith("~"):
        raise TaskError(
            f"{option} {path!r} starts with '~', which SFTP does not expand; give an absolute "
            "path or one relative to the remote login directory."
        )


class ProgressPrinter:
    """A ProgressCallback printing at most one line per `interval` seconds."""

    def __init__(
        self,
        label: str,
        *,
        interval: float = PROGRESS_INTERVAL,
        emit: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval = interval
        self.emit = emit or display.display
        self.clock = clock
        self.next_at = clock() + interval
        self.lines = 0

    def __call__(self, progress: Progress) -> None:
        now = self.clock()
        if now < self.next_at:
            return
        self.next_at = now + self.interval
        self.lines += 1
        self.emit(
            f"{self.label}: {progress.files} files, {human_bytes(progress.bytes)}, "
            f"{human_bytes(progress.rate)}/s, {progress.seconds:.0f} s"
        )


def _diff_section(mark: str, what: str, paths: CappedList) -> list[str]:
    lines = [f"{mark} {path}" for path in paths.items]
    hidden = paths.total - len(paths.items)
    if hidden > 0:
        lines.append(f"{mark} ... and {hidden} more {what}")
    return lines


def build_diff(report: Report, header: str) -> dict[str, str]:
    """A bounded, prepared Ansible diff: added (+), changed (~) and deleted (-) paths."""
    lines = [
        *_diff_section("+", "added", report.added),
        *_diff_section("~", "changed", report.changed_paths),
        *_diff_section("-", "deleted", report.deleted_paths),
    ]
    diff = {"before_header": header, "after_header": header, "prepared": ""}
    if lines:
        diff["prepared"] = "\n".join([f"--- {header}", *lines]) + "\n"
    return diff


def full_path(root: str, path: str) -> str:
    """A report path made absolute against the transfer's root (absolute paths pass)."""
    if not root or path.startswith("/"):
        return path
    path = path.strip("/")
    base = root.rstrip("/") or "/"
    if path in ("", "."):
        return base
    return base.rstrip("/") + "/" + path


def anchor_failures(report: Report, root: str) -> None:
    """Make the report's failure paths absolute, so every message names a real path."""
    report.failures[:] = [
        type(failure)(full_path(root, failure.path), failure.reason) for failure in report.failures
    ]


def failure_message(action: str, host: str, report: Report) -> str:
    """One sentence naming the host, the first failed path and its cause."""
    first = report.failures[0]
    reason = first.reason.strip().rstrip(".")
    more = len(report.failures) - 1
    tail = f" (and {more} more failed {'path' if more == 1 else 'paths'})" if more else ""
    return f"{action} on {host} failed for {first.path}: {reason}{tail}."


def result_counts(report: Report) -> dict[str, object]:
    """Report.as_dict() with keys safe in an Ansible result.

    Ansible reads a true `skipped` key as "the task was skipped", so the count of unchanged
    files is returned as `unchanged`.
    """
    counts = report.as_dict()
    counts["unchanged"] = counts.pop("skipped")
    return counts


def summary(action: str, report: Report, check_mode: bool) -> str:
    """One line for a successful result."""
    verb = "would change" if check_mode else "changed"
    state = verb if report.changed else "nothing to change"
    return (
        f"{action}: {state}; {report.files} files ({human_bytes(report.bytes)}), "
        f"{report.dirs} dirs, {report.skipped} unchanged, {report.deleted} deleted "
        f"in {report.seconds:.1f} s."
    )


class PipelinedAction(ActionBase):  # type: ignore[misc]
    """Base of the three action plugins; subclasses implement `prepare`."""

    ARGUMENT_SPEC: ClassVar[dict[str, dict[str, Any]]] = {}
    ACTION: ClassVar[str] = "pipelined"
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def prepare(self, args: dict[str, Any], task_vars: dict[str, Any], check_mode: bool) -> Job:
        """Turn validated arguments into the core call; raise TaskError for bad input."""
        raise NotImplementedError

    def run(
        self, tmp: str | None = None, task_vars: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = self.validate_argument_spec(self.ARGUMENT_SPEC)[1]
        host = str(task_vars.get("inventory_hostname") or self._play_context.remote_addr)
        if self._task.delegate_to:
            host = f"{self._task.delegate_to} (delegated for {host})"
        check_mode = bool(self._task.check_mode)
        result["changed"] = False
        try:
            job = self.prepare(args, task_vars, check_mode)
            spec = self._spec(host)
            report = self._execute(job, spec, host)
        except TaskError as exc:
            result.update(failed=True, msg=_sentence(f"{self.ACTION} on {host}: {exc}"))
            return result
        except AdapterError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        except Exception as exc:  # the core's errors and anything unexpected
            return self._error_result(result, host, exc)

        anchor_failures(report, job.root)
        result.update(job.result)
        result.update(result_counts(report))
        if self._task.diff:
            result["diff"] = build_diff(report, job.diff_header)
        if report.failures:
            result["failed"] = True
            result["msg"] = failure_message(self.ACTION, host, report)
        else:
            result["msg"] = summary(self.ACTION, report, check_mode)
        return result

    def _spec(self, host: str) -> ConnectionSpec | None:
        """The spec to connect with, or None when the connection plugin lends its session."""
        if callable(getattr(self._connection, "get_core_session", None)):
            return None
        spec = connection_spec(self._connection, host)
        become = become_spec(getattr(self._connection, "become", None), host)
        if become is not None:
            spec = replace(spec, become=become)
        return spec

    def _execute(self, job: Job, spec: ConnectionSpec | None, host: str) -> Report:
        """Run the job's core call on a fresh session, or on the connection plugin's one."""
        progress = ProgressPrinter(f"{self.ACTION} {host}")
        if spec is None:
            session = self._connection.get_core_session()
            # A session opened on the plugin's own event loop must run on that loop.
            runner = getattr(self._connection, "run_core", None) or getattr(
                self._connection, "_run", None
            )
            coroutine = job.call(session, progress)
            if callable(runner):
                report: Report = runner(coroutine)
                return report
            return asyncio.run(coroutine)
        return asyncio.run(_with_session(spec, job.call, progress))

    def _error_result(self, result: dict[str, Any], host: str, exc: Exception) -> dict[str, Any]:
        """Map an exception from the core to an Ansible result (unreachable or failed)."""
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
            ConnectError,
        )

        partial = getattr(exc, "report", None)
        if isinstance(partial, Report):
            # The run stopped as a whole (TransferError): keep what it did before stopping.
            result.update(result_counts(partial))
            result.update(failed=True, msg=_sentence(f"{self.ACTION} on {host} stopped: {exc}"))
            return result
        if isinstance(exc, ConnectError):
            if exc.unreachable:
                return {"unreachable": True, "changed": False, "msg": str(exc)}
            result.update(failed=True, msg=str(exc))
            return result
        if isinstance(exc, OSError) and exc.filename is not None:
            cause = exc.strerror or type(exc).__name__
            message = f"{self.ACTION} on {host} failed for {exc.filename}: {cause}."
        elif isinstance(exc, (OSError, ValueError)):
            message = f"{self.ACTION} on {host} failed: {exc}"
        else:
            message = f"{self.ACTION} on {host} failed unexpectedly: {type(exc).__name__}: {exc}"
        result.update(failed=True, msg=_sentence(message), exception=traceback.format_exc())
        return result


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


async def _with_session(spec: ConnectionSpec, call: CoreCall, progress: ProgressCallback) -> Report:
    """Open a session, run one core call on it, and always close it."""
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session

    session = await open_session(spec)
    try:
        return await call(session, progress)
    finally:
        await session.aclose()
