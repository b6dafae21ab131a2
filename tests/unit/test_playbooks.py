"""The pipelined_* modules through real ansible-playbook and ansible against real servers.

Runs the integration playbooks of tests/integration/targets/pipelined_* (the same ones
ansible-test runs) against a private OpenSSH sshd, the in-process asyncssh server and the
sshd behind the latency proxy, plus ad-hoc ``ansible -m`` runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.asyncssh_server import TEST_PASSWORD, asyncssh_server_thread
from tests.fixtures.latency_proxy import latency_proxy_thread
from tests.fixtures.sshd import TEST_USER, ensure_user, sshd_server
from tools.run_integration import host_vars

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "tests" / "integration" / "targets"
COLLECTIONS = ROOT / ".work" / "collections"
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 300
LATENCY_RTT = 0.02
ADHOC_DEST = (
    "{{ sftp_fixture_remote_root | regex_replace('/$', '') }}/adhoc_{{ inventory_hostname }}"
)

pytestmark = [pytest.mark.sshd, pytest.mark.asyncssh_server, pytest.mark.slow]


class Bed:
    """Running servers, and the inventory (and integration config) that describe them."""

    def __init__(self, workdir: Path, inventory: dict[str, Any], config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.inventory = workdir / "inventory.yml"
        self.config = workdir / "integration_config.yml"
        (workdir / "work").mkdir(exist_ok=True)
        self.inventory.write_text(yaml.safe_dump(inventory), encoding="utf-8")
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    @classmethod
    def of(cls, workdir: Path, hosts: dict[str, dict[str, Any]]) -> Bed:
        """sshd_latency in group latency_fixtures, every other host in sftp_fixtures."""
        groups = {
            "sftp_fixtures": {k: v for k, v in hosts.items() if k != "sshd_latency"},
            "latency_fixtures": {"sshd_latency": hosts["sshd_latency"]},
        }
        inventory = {"all": {"children": {g: {"hosts": h} for g, h in groups.items()}}}
        config = {
            "sftp_fixture_inventory": str(workdir / "inventory.yml"),
            "sftp_fixture_group": "sftp_fixtures",
            "sftp_fixture_hosts": groups["sftp_fixtures"],
            "sftp_fixture_workdir": str(workdir / "work"),
        }
        return cls(workdir, inventory, config)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_DEPRECATION_WARNINGS="false",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="false",
            PYTHONPATH=os.pathsep.join([str(ROOT), str(COLLECTIONS)]),
        )
        env.setdefault("HOME", str(ROOT / ".work" / "home"))
        return env

    def run(
        self, tool: str, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / tool), "-i", str(self.inventory), *args],
            cwd=cwd or self.workdir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    ensure_user(TEST_USER)
    workdir = tmp_path_factory.mktemp("playbooks")
    with contextlib.ExitStack() as stack:
        sshd = stack.enter_context(sshd_server())
        embedded = stack.enter_context(asyncssh_server_thread())
        proxy = stack.enter_context(latency_proxy_thread(sshd.port, rtt=LATENCY_RTT))
        slow = sshd.endpoint().via(proxy.port, workdir / "latency_known_hosts")
        hosts = {
            "sshd_fixture": host_vars(sshd.endpoint()),
            "asyncssh_fixture": host_vars(embedded.endpoint()),
            "sshd_latency": host_vars(slow),
        }
        yield Bed.of(workdir, hosts)


def tail(proc: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-lines:])


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("pipelined_copy", []),
        ("pipelined_fetch", []),
        ("pipelined_remove", []),
        ("pipelined_connection", ["-e", f"pstest_user={TEST_USER}", "--forks", "6"]),
    ],
)
def test_integration_playbook(bed: Bed, target: str, extra: list[str]) -> None:
    playbook = TARGETS / target / f"{target.removeprefix('pipelined_')}.yml"
    proc = bed.run(
        "ansible-playbook", "-e", f"@{bed.config}", *extra, str(playbook), cwd=TARGETS / target
    )
    assert proc.returncode == 0, tail(proc)
    assert "failed=0" in proc.stdout


@pytest.mark.latency
def test_copy_playbook_through_the_latency_proxy(bed: Bed) -> None:
    playbook = TARGETS / "pipelined_copy" / "copy.yml"
    proc = bed.run(
        "ansible-playbook",
        "-e",
        f"@{bed.config}",
        "-e",
        "sftp_fixture_group=latency_fixtures",
        str(playbook),
    )
    assert proc.returncode == 0, tail(proc)
    assert re.search(r"sshd_latency\s+: ok=\d+ .*failed=0", proc.stdout), tail(proc)


def adhoc(bed: Bed, pattern: str, module: str, args: str, *flags: str) -> dict[str, Any]:
    """Run `ansible PATTERN -m MODULE -a ARGS -o`; return {host: (status, result)}."""
    proc = bed.run("ansible", pattern, "-m", module, "-a", args, "-o", *flags)
    results: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(\S+) \| (\w+!?)(?::| =>) ?(.*)$", line)
        if match:
            host, status, rest = match.groups()
            try:
                body = json.loads(rest)
            except json.JSONDecodeError:
                body = {"msg": rest}
            results[host] = (status.rstrip("!"), body)
    assert results, tail(proc)
    return results


def test_adhoc_copy_is_idempotent_on_every_server(bed: Bed) -> None:
    src = bed.workdir / "adhoc_src"
    (src / "sub").mkdir(parents=True)
    for i in range(30):
        (src / "sub" / f"f{i}.txt").write_text(f"{i}\n" * (i + 1))
    args = f"src={src}/ dest={ADHOC_DEST}"
    module = "pipelined.sftp.pipelined_copy"
    checked = adhoc(bed, "all", module, args, "--check")
    first = adhoc(bed, "all", module, args)
    second = adhoc(bed, "all", module, args)
    for host in ("sshd_fixture", "asyncssh_fixture", "sshd_latency"):
        assert checked[host][0] == "CHANGED", checked[host]
        assert first[host][0] == "CHANGED", first[host]
        assert first[host][1]["files"] == 30
        assert second[host][0] == "SUCCESS", second[host]
        assert second[host][1]["bytes"] == 0 and second[host][1]["files"] == 0
    removed = adhoc(
        bed,
        "all",
        "pipelined.sftp.pipelined_remove",
        f"path={ADHOC_DEST}",
    )
    assert all(status == "CHANGED" for status, _body in removed.values()), removed


def test_adhoc_unreachable_and_bad_arguments(bed: Bed) -> None:
    unreachable = adhoc(
        bed,
        "sshd_fixture",
        "pipelined.sftp.pipelined_remove",
        "path=/tmp/pipelined-nothing",
        "-e",
        "ansible_port=1",
    )
    status, body = unreachable["sshd_fixture"]
    assert status == "UNREACHABLE", unreachable
    assert "127.0.0.1:1" in str(body)
    bad = adhoc(
        bed, "sshd_fixture", "pipelined.sftp.pipelined_copy", "src=/tmp dest=/tmp/x links=sometimes"
    )
    status, body = bad["sshd_fixture"]
    assert status == "FAILED"
    assert "links" in body["msg"] and "sometimes" in body["msg"]


def test_password_login_and_a_wrong_password(tmp_path: Path) -> None:
    """ansible_password reaches the server; a wrong one is unreachable and never echoed."""
    with asyncssh_server_thread(password=True) as server:
        variables = host_vars(server.endpoint())
        del variables["ansible_ssh_private_key_file"]
        variables["ansible_ssh_common_args"] += " -o IdentitiesOnly=yes"
        inventory = {
            "all": {
                "hosts": {
                    "pw_host": {**variables, "ansible_password": TEST_PASSWORD},
                    "bad_pw_host": {**variables, "ansible_password": "wrong-secret-1234"},
                }
            }
        }
        bed = Bed(tmp_path, inventory, {})
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("a\n")
        results = adhoc(bed, "all", "pipelined.sftp.pipelined_copy", f"src={src}/ dest=/pw")
    status, body = results["pw_host"]
    assert status == "CHANGED" and body["files"] == 1, results
    status, body = results["bad_pw_host"]
    assert status == "UNREACHABLE", results
    assert "wrong-secret-1234" not in json.dumps(body)


BECOME_PW_USER = "pspwbecome"
BECOME_PW = "Become-pw-7f3a"


@pytest.fixture
def password_sudo_user() -> Iterator[str]:
    """A real user whose sudo asks for its password (no NOPASSWD rule)."""
    ensure_user(BECOME_PW_USER, sudo=False, password=BECOME_PW)
    rule = Path("/etc/sudoers.d") / f"pipelined-sftp-{BECOME_PW_USER}-pw"
    tmp = rule.with_name(f".{rule.name}.tmp")
    tmp.write_text(f"{BECOME_PW_USER} ALL=(ALL) ALL\n")
    tmp.chmod(0o440)
    subprocess.run(["visudo", "-cqf", str(tmp)], check=True, capture_output=True)
    tmp.rename(rule)
    try:
        yield BECOME_PW_USER
    finally:
        rule.unlink()


def test_become_with_a_sudo_password(bed: Bed, password_sudo_user: str) -> None:
    """become_password reaches sudo: files land as root where the user cannot write;
    a wrong password is a clear failure that never shows the password."""
    src = bed.workdir / "become_pw_src"
    src.mkdir(exist_ok=True)
    (src / "secret.txt").write_text("for root only\n")
    dest = bed.workdir / "root_only_pw"
    dest.mkdir(mode=0o700, exist_ok=True)
    args = f"src={src}/ dest={dest}/tree"
    user = ["-e", f"ansible_user={password_sudo_user}"]

    denied = adhoc(bed, "sshd_fixture", "pipelined.sftp.pipelined_copy", args, *user)
    assert denied["sshd_fixture"][0] == "FAILED", denied
    assert "permission denied" in denied["sshd_fixture"][1]["msg"].lower()

    wrong = adhoc(
        bed,
        "sshd_fixture",
        "pipelined.sftp.pipelined_copy",
        args,
        *user,
        "--become",
        "-e",
        "ansible_become_password=not-the-password",
    )
    status, body = wrong["sshd_fixture"]
    assert status in ("FAILED", "UNREACHABLE"), wrong
    assert "password" in body["msg"].lower()
    assert "not-the-password" not in json.dumps(body)

    done = adhoc(
        bed,
        "sshd_fixture",
        "pipelined.sftp.pipelined_copy",
        args,
        *user,
        "--become",
        "-e",
        f"ansible_become_password={BECOME_PW}",
    )
    assert done["sshd_fixture"][0] == "CHANGED", done
    assert BECOME_PW not in json.dumps(done)
    copied = dest / "tree" / "secret.txt"
    assert copied.read_text() == "for root only\n"
    assert copied.stat().st_uid == 0
