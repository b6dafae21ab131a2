"""Result shaping of the action plugins: options, modes, diff, failures, progress, fetch layout."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ansible_collections.pipelined.sftp.plugins.action.pipelined_fetch import fetch_destination
from ansible_collections.pipelined.sftp.plugins.module_utils.argspecs import COPY_ARGUMENT_SPEC
from ansible_collections.pipelined.sftp.plugins.plugin_utils.action_base import (
    ProgressPrinter,
    TaskError,
    anchor_failures,
    build_diff,
    failure_message,
    full_path,
    human_bytes,
    parse_mode,
    reject_tilde,
    summary,
    transfer_options,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import Progress, Report


def defaults(**overrides: Any) -> dict[str, Any]:
    args = {name: rule.get("default") for name, rule in COPY_ARGUMENT_SPEC.items()}
    args.update(overrides)
    return args


def test_parse_mode_accepts_octal_strings_and_yaml_ints() -> None:
    assert parse_mode("0644", "mode") == 0o644
    assert parse_mode("755", "mode") == 0o755
    assert parse_mode("01777", "mode") == 0o1777
    assert parse_mode(0o600, "mode") == 0o600  # YAML 1.1 reads 0600 as octal
    assert parse_mode(None, "mode") is None


@pytest.mark.parametrize("bad", ["u+rw", "0648", "", "9", True, 0o17777, "077777"])
def test_parse_mode_refuses_what_is_not_an_octal_mode(bad: Any) -> None:
    with pytest.raises(TaskError, match="directory_mode"):
        parse_mode(bad, "directory_mode")


def test_transfer_options_defaults_match_core_defaults() -> None:
    options = transfer_options(defaults(), check_mode=False)
    assert options.preserve_mode and options.preserve_times
    assert (options.links, options.compare, options.atomic) == ("preserve", "size_mtime", True)
    assert (options.delete, options.resume, options.check_mode) == (False, False, False)
    assert (options.connections, options.block_size, options.max_files) == (1, 262144, None)
    assert options == TransferOptions()  # every field, max_requests included, as the core has it


def test_transfer_options_carry_every_argument() -> None:
    options = transfer_options(
        defaults(
            preserve=["times"],
            mode="0640",
            directory_mode="0750",
            owner="app",
            group="web",
            links="skip",
            compare="checksum",
            delete=True,
            exclude=["*.pyc", ".git"],
            atomic=False,
            resume=True,
            max_requests=64,
            max_files=16,
            connections=3,
            block_size=65536,
            fail_fast=True,
        ),
        check_mode=True,
    )
    assert (options.preserve_mode, options.preserve_times) == (False, True)
    assert (options.mode, options.directory_mode) == (0o640, 0o750)
    assert (options.owner, options.group) == ("app", "web")
    assert (options.links, options.compare, options.delete) == ("skip", "checksum", True)
    assert options.exclude == ("*.pyc", ".git")
    assert (options.atomic, options.resume, options.fail_fast) == (False, True, True)
    assert (options.max_requests, options.max_files) == (64, 16)
    assert (options.connections, options.block_size, options.check_mode) == (3, 65536, True)


def test_empty_preserve_preserves_nothing() -> None:
    options = transfer_options(defaults(preserve=[]), check_mode=False)
    assert not options.preserve_mode and not options.preserve_times


@pytest.mark.parametrize("name", ["max_requests", "max_files", "connections", "block_size"])
def test_counts_below_one_are_refused(name: str) -> None:
    with pytest.raises(TaskError, match=f"{name} must be at least 1"):
        transfer_options(defaults(**{name: 0}), check_mode=False)


def test_tilde_paths_are_refused() -> None:
    with pytest.raises(TaskError, match="does not expand"):
        reject_tilde("~/x", "dest")
    reject_tilde("/home/u/~x", "dest")


def report_with(added: int = 0, changed: int = 0, deleted: int = 0) -> Report:
    report = Report()
    for i in range(added):
        report.added.add(f"/d/new{i}")
    for i in range(changed):
        report.changed_paths.add(f"/d/chg{i}")
    for i in range(deleted):
        report.deleted_paths.add(f"/d/old{i}")
    return report


def test_diff_lists_paths_with_marks() -> None:
    diff = build_diff(report_with(added=2, changed=1, deleted=1), "/d")
    assert diff["prepared"] == "--- /d\n+ /d/new0\n+ /d/new1\n~ /d/chg0\n- /d/old0\n"
    assert diff["before_header"] == diff["after_header"] == "/d"


def test_diff_is_capped_at_100_with_a_count_of_the_rest() -> None:
    diff = build_diff(report_with(added=250, deleted=3), "/d")
    lines = diff["prepared"].splitlines()
    assert sum(1 for line in lines if line.startswith("+ /d/")) == 100
    assert "+ ... and 150 more added" in lines
    assert lines[-1] == "- /d/old2"


def test_diff_of_nothing_is_empty() -> None:
    assert build_diff(Report(), "/d")["prepared"] == ""


def test_failure_message_is_one_sentence_with_host_path_and_cause() -> None:
    report = Report()
    report.fail("/srv/a", "Permission denied.")
    assert failure_message("pipelined_copy", "web1", report) == (
        "pipelined_copy on web1 failed for /srv/a: Permission denied."
    )
    report.fail("/srv/b", "No space left on device")
    report.fail("/srv/c", "No space left on device")
    assert failure_message("pipelined_copy", "web1", report) == (
        "pipelined_copy on web1 failed for /srv/a: Permission denied (and 2 more failed paths)."
    )


def test_summary_says_whether_something_changed() -> None:
    report = Report(files=3, bytes=3072, skipped=1)
    assert summary("pipelined_copy", report, check_mode=False).startswith(
        "pipelined_copy: changed; 3 files (3.0 KiB), 0 dirs, 1 unchanged"
    )
    assert "would change" in summary("pipelined_copy", report, check_mode=True)
    assert "nothing to change" in summary("pipelined_copy", Report(skipped=4), check_mode=False)


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


def test_progress_is_bounded_to_one_line_per_interval() -> None:
    now = [100.0]
    lines: list[str] = []
    printer = ProgressPrinter(
        "pipelined_copy web1", interval=5.0, emit=lines.append, clock=lambda: now[0]
    )
    # A burst of callbacks inside the first interval prints nothing.
    for i in range(1000):
        printer(Progress(files=i, bytes=i * 1024, seconds=1.0))
    assert lines == []
    for step in range(160):  # 20 simulated seconds, a callback every 0.125 s
        now[0] += 0.125
        printer(Progress(files=step, bytes=2 * 1024 * 1024, seconds=1.0))
    assert len(lines) == 4  # at 105, 110, 115 and 120 s
    assert lines[0] == "pipelined_copy web1: 39 files, 2.0 MiB, 2.0 MiB/s, 1 s"


def dwim(path: str) -> str:
    return os.path.join("/play", path)


def test_fetch_layout_is_dest_host_src() -> None:
    assert fetch_destination("/var/log/app", "out", flat=False, hostname="web1", dwim=dwim) == (
        "/play/out/web1/var/log/app"
    )
    assert fetch_destination("data/x/", "/abs/", flat=False, hostname="h", dwim=dwim) == (
        "/abs/h/data/x"
    )


def test_fetch_flat_uses_dest_or_dest_slash_basename() -> None:
    assert fetch_destination("/srv/tree/", "/tmp/t", flat=True, hostname="h", dwim=dwim) == "/tmp/t"
    assert fetch_destination("/srv/tree/", "/tmp/t/", flat=True, hostname="h", dwim=dwim) == (
        "/tmp/t/tree"
    )
    assert fetch_destination("/etc/os-release", "rel/", flat=True, hostname="h", dwim=dwim) == (
        "/play/rel/os-release"
    )


@pytest.mark.parametrize(
    ("src", "dest", "flat", "message"),
    [
        ("/a/../../etc", "out", False, "contains '..'"),
        ("~/x", "out", False, "does not expand"),
        ("", "out", False, "src is empty"),
        ("/", "out/", True, "has no name"),
    ],
)
def test_fetch_refuses_paths_that_could_escape_or_mean_nothing(
    src: str, dest: str, flat: bool, message: str
) -> None:
    with pytest.raises(TaskError, match=message):
        fetch_destination(src, dest, flat=flat, hostname="h", dwim=dwim)


def test_relative_failure_paths_are_anchored_at_the_transfer_root() -> None:
    report = Report()
    report.fail("", "Permission denied")
    report.fail("sub/a.txt", "No space left on device")
    report.fail("/already/absolute", "Gone")
    anchor_failures(report, "/srv/app/")
    paths = [f.path for f in report.failures]
    assert paths == ["/srv/app", "/srv/app/sub/a.txt", "/already/absolute"]
    assert full_path("", "rel") == "rel"
