"""The pipelined.sftp.asyncssh connection plugin driven by real ansible against real sshd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_connection_support import (
    BECOME_PASSWORD,
    BECOME_USER,
    REPO,
    VENV_BIN,
    Sshd,
    ansible_env,
    mux_processes,
)

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux

pytestmark = pytest.mark.timeout(300)

PLUGIN = "pipelined.sftp.asyncssh"

PLAYBOOK = """
- hosts: target
  gather_facts: true
  vars:
    work: /tmp/psftp-conn-play
  tasks:
    - file: {path: "{{ work }}", state: absent}
    - file: {path: "{{ work }}/d", state: directory, mode: "0750"}
      register: mkdir
    - command: echo hello
      register: cmd
    - shell: echo $((6*7)) | tr 4 X; echo to-stderr >&2
      register: sh
    - copy: {src: "{{ local }}/payload.bin", dest: "{{ work }}/d/payload.bin", mode: "0640"}
      register: copy1
    - copy: {src: "{{ local }}/payload.bin", dest: "{{ work }}/d/payload.bin", mode: "0640"}
      register: copy2
    - copy: {content: "inline {{ inventory_hostname }}\\n", dest: "{{ work }}/d/inline.txt"}
      register: copy3
    - template: {src: "{{ local }}/page.j2", dest: "{{ work }}/d/page.txt"}
      register: tmpl
    - stat: {path: "{{ work }}/d/payload.bin", checksum_algorithm: sha256}
      register: st
    - fetch: {src: "{{ work }}/d/page.txt", dest: "{{ local }}/fetched-{{ tag }}/", flat: true}
      register: fetched
    - fetch: {src: "{{ work }}/d/payload.bin", dest: "{{ local }}/fetched-{{ tag }}/", flat: true}
      register: fetched_big
    - command: id -un
      become: true
      become_user: nobody
      register: become_cmd
    - command: "echo item-{{ item }}"
      loop: "{{ range(20) | list }}"
      register: looped
    - file: {path: "{{ work }}", state: absent}
      register: cleanup
    - copy:
        dest: "{{ local }}/result-{{ tag }}.json"
        content: "{{ summary | to_nice_json }}"
      delegate_to: localhost
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
        summary:
          user_id: "{{ ansible_facts.user_id }}"
          hostname: "{{ ansible_facts.hostname }}"
          mkdir: "{{ [mkdir.changed, mkdir.mode] }}"
          cmd: "{{ [cmd.rc, cmd.stdout, cmd.stderr] }}"
          sh: "{{ [sh.rc, sh.stdout, sh.stderr] }}"
          copy: "{{ [copy1.changed, copy1.checksum, copy1.mode, copy2.changed, copy3.changed] }}"
          tmpl: "{{ [tmpl.changed, tmpl.checksum] }}"
          stat: "{{ [st.stat.size, st.stat.mode, st.stat.checksum] }}"
          fetched: "{{ [fetched.changed, fetched.checksum, fetched_big.checksum] }}"
          become: "{{ become_cmd.stdout }}"
          looped: "{{ looped.results | map(attribute='stdout') | list }}"
          cleanup: "{{ cleanup.changed }}"
"""


pytest_plugins = ("tests.unit.connection_fixtures",)


def _run(
    tool: str, args: list[str], control: Path, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / tool), *args],
        env=ansible_env(control, ANSIBLE_ASYNCSSH_CONTROL_PATH_DIR=str(control), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(control.parent),
        check=False,
    )


def _play(
    sshd: Sshd, control: Path, local: Path, tag: str, connection: str, **extra: str | None
) -> dict[str, Any]:
    playbook = local / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = sshd.inventory(tag, ansible_connection=connection, **extra)
    result = _run(
        "ansible-playbook",
        ["-i", str(inventory), str(playbook), "-e", f"local={local}", "-e", f"tag={tag}"],
        control,
        ANSIBLE_PIPELINING="True",
        ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s",
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    assert (local / f"result-{tag}.json").exists(), output
    summary: dict[str, Any] = json.loads((local / f"result-{tag}.json").read_text())
    return summary


def test_playbook_matches_builtin_ssh(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    local = tmp_path
    (local / "payload.bin").write_bytes(bytes(range(256)) * 4096 + b"tail")  # 1 MiB + 4
    (local / "page.j2").write_text("host={{ inventory_hostname }} n={{ 6 * 7 }}\n")

    with_ssh = _play(sshd, control, local, "ssh", "ansible.builtin.ssh")
    with_plugin = _play(sshd, control, local, "plugin", PLUGIN)

    assert with_plugin == with_ssh
    assert with_plugin["become"] == "nobody"
    assert with_plugin["looped"] == [f"item-{i}" for i in range(20)]
    assert with_plugin["copy"][0] is True and with_plugin["copy"][3] is False
    assert (local / "fetched-plugin" / "payload.bin").read_bytes() == (
        local / "payload.bin"
    ).read_bytes()
    assert (local / "fetched-plugin" / "page.txt").read_text() == "host=target n=42\n"
    # one persistent process served every task of the play
    assert len(mux_processes(control)) == 1


def test_adhoc_ping_and_reuse(sshd: Sshd, control: Path) -> None:
    inventory = sshd.inventory("adhoc")
    first = _run("ansible", ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "ping"], control)
    assert first.returncode == 0, first.stdout + first.stderr
    assert '"ping": "pong"' in first.stdout
    (socket_path,) = control.glob("*.sock")
    pid = mux.ping(str(socket_path))
    assert pid is not None
    second = _run(
        "ansible",
        ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "command", "-a", "true"],
        control,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert mux.ping(str(socket_path)) == pid  # the second run reused the connection


def test_idle_timeout_cleans_up_after_a_run(sshd: Sshd, control: Path) -> None:
    inventory = sshd.inventory("idle", ansible_asyncssh_persist_idle_timeout="1")
    result = _run("ansible", ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "ping"], control)
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (mux_processes(control) or list(control.iterdir())):
        time.sleep(0.1)
    assert mux_processes(control) == []
    assert list(control.iterdir()) == []


def test_not_persistent_starts_no_process(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    inventory = sshd.inventory("direct", ansible_asyncssh_persistent="false")
    src = tmp_path / "src.txt"
    src.write_text("direct\n")
    dest = f"/tmp/psftp-conn-direct-{tmp_path.name}"
    result = _run(
        "ansible",
        ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "copy", "-a", f"src={src} dest={dest}"],
        control,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(dest).read_text() == "direct\n"
    Path(dest).unlink()
    assert mux_processes(control) == []
    assert not list(control.glob("*.sock"))


def test_password_login_and_become_with_password_prompt(sshd: Sshd, control: Path) -> None:
    inventory = sshd.inventory(
        "pw",
        ansible_user=BECOME_USER,
        ansible_password=BECOME_PASSWORD,
        ansible_ssh_private_key_file=None,
        ansible_become_password=BECOME_PASSWORD,
    )
    base = ["-i", str(inventory), "all", "-c", PLUGIN]
    plain = _run("ansible", [*base, "-m", "command", "-a", "id -un"], control)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert f"\n{BECOME_USER}\n" in plain.stdout
    for module, args in (("command", "id -un"), ("raw", "id -un"), ("shell", "whoami")):
        become = _run("ansible", [*base, "-b", "-m", module, "-a", args], control)
        assert become.returncode == 0, become.stdout + become.stderr
        lines = become.stdout.strip().splitlines()
        assert lines[-1].strip() == "root", become.stdout
        assert "BECOME-SUCCESS" not in become.stdout
        assert "password" not in become.stdout.lower()
    pinged = _run("ansible", [*base, "-b", "-m", "ping"], control)
    assert pinged.returncode == 0 and '"pong"' in pinged.stdout, pinged.stdout + pinged.stderr
    wrong = _run(
        "ansible",
        [*base, "-b", "-m", "ping", "-e", "ansible_become_password=wrong-one"],
        control,
        ANSIBLE_TIMEOUT="20",
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "Incorrect sudo password" in wrong.stdout + wrong.stderr
    assert "wrong-one" not in wrong.stdout + wrong.stderr
    assert BECOME_PASSWORD not in plain.stdout + plain.stderr


def _unreachable(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 4, result.stdout + result.stderr
    assert "UNREACHABLE" in result.stdout, result.stdout
    return result.stdout + result.stderr


def test_host_key_mismatch_is_unreachable(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    inventory = sshd.inventory("badkey", ansible_ssh_common_args=f"-o UserKnownHostsFile={wrong}")
    out = _unreachable(
        _run("ansible", ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "ping"], control)
    )
    assert "host key" in out.lower()
    assert mux_processes(control) == []
    # the explicit option wins over the ssh arguments, and checking can be turned off
    fixed = sshd.inventory(
        "badkey-opt",
        ansible_ssh_common_args=f"-o UserKnownHostsFile={wrong}",
        ansible_asyncssh_known_hosts_file=str(sshd.known_hosts),
    )
    ok = _run("ansible", ["-i", str(fixed), "all", "-c", PLUGIN, "-m", "ping"], control)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_wrong_key_and_wrong_password_are_unreachable(
    sshd: Sshd, control: Path, tmp_path: Path
) -> None:
    other_key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    inventory = sshd.inventory("wrongkey", ansible_ssh_private_key_file=str(other_key))
    out = _unreachable(
        _run("ansible", ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "ping"], control)
    )
    assert "auth" in out.lower() or "permission denied" in out.lower()

    inventory = sshd.inventory(
        "wrongpw",
        ansible_user=BECOME_USER,
        ansible_ssh_private_key_file=None,
        ansible_password="definitely-wrong",
    )
    out = _unreachable(
        _run("ansible", ["-i", str(inventory), "all", "-c", PLUGIN, "-m", "ping"], control)
    )
    assert "auth" in out.lower() or "permission denied" in out.lower()
    assert "definitely-wrong" not in out


def test_jump_host_is_used(sshd: Sshd, control: Path) -> None:
    through = sshd.inventory(
        "jump",
        ansible_ssh_common_args=(
            f"-o UserKnownHostsFile={sshd.known_hosts} -J root@127.0.0.1:{sshd.port}"
        ),
    )
    ok = _run("ansible", ["-i", str(through), "all", "-c", PLUGIN, "-m", "ping"], control)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    from test_connection_support import free_port

    dead = free_port()
    broken = sshd.inventory("jump-dead", ansible_asyncssh_jump_host=f"root@127.0.0.1:{dead}")
    out = _unreachable(
        _run("ansible", ["-i", str(broken), "all", "-c", PLUGIN, "-m", "ping"], control)
    )
    assert str(dead) in out


def test_accept_new_records_the_host_key(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    known = tmp_path / "fresh_known_hosts"
    known.write_text("")
    strict = sshd.inventory("strict-new", ansible_asyncssh_known_hosts_file=str(known))
    _unreachable(_run("ansible", ["-i", str(strict), "all", "-c", PLUGIN, "-m", "ping"], control))
    accept = sshd.inventory(
        "accept-new",
        ansible_asyncssh_known_hosts_file=str(known),
        ansible_asyncssh_host_key_policy="accept-new",
    )
    ok = _run("ansible", ["-i", str(accept), "all", "-c", PLUGIN, "-m", "ping"], control)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert sshd.host_key_line.split()[2] in known.read_text()


def test_reset_connection_restarts_the_process(sshd: Sshd, control: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "reset.yml"
    playbook.write_text(
        "- hosts: target\n  gather_facts: false\n  tasks:\n"
        "    - command: echo before\n"
        "    - meta: reset_connection\n"
        "    - command: echo after\n"
        "      register: after\n"
        "    - assert: {that: [after.stdout == 'after']}\n"
    )
    inventory = sshd.inventory("reset", ansible_connection=PLUGIN)
    first = _run("ansible", ["-i", str(inventory), "all", "-m", "ping"], control)
    assert first.returncode == 0, first.stdout + first.stderr
    (socket_path,) = control.glob("*.sock")
    pid = mux.ping(str(socket_path))
    result = _run("ansible-playbook", ["-i", str(inventory), str(playbook)], control)
    assert result.returncode == 0, result.stdout + result.stderr
    assert mux.ping(str(socket_path)) not in (None, pid)


PROBE_ACTION = """
from ansible.plugins.action import ActionBase


def ssh_connections(port):
    # established TCP connections to port on this machine (IPv4)
    count = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":
                count += 1
    return count


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        conn = self._connection
        session = conn.get_core_session()
        port = int(conn.get_option("port"))
        before = ssh_connections(port)

        async def probe():
            try:
                done = await session.exec("id -un")
                client = await session.open_sftp()
                during = ssh_connections(port)
                try:
                    await client.lstat(b"/root/.")  # needs search permission on /root
                    root_dir = True
                except Exception:
                    root_dir = False
                finally:
                    await client.aclose()
                return done.stdout.decode().strip(), root_dir, during
            finally:
                await session.aclose()

        try:
            user, root_dir, during = conn.run_core(probe())
        except Exception:
            return {"failed": True, "msg": traceback.format_exc()}
        after = conn.exec_command("echo still-open", sudoable=False)[1].decode().strip()
        return {"changed": False, "user": user, "root_dir": root_dir, "after": after,
                "connections": before, "new_connections": during - before}
"""


@pytest.mark.parametrize("persistent", ["true", "false"])
def test_core_session_for_actions(
    sshd: Sshd, control: Path, tmp_path: Path, persistent: str
) -> None:
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "core_probe.py").write_text(PROBE_ACTION)
    playbook = tmp_path / "probe.yml"
    playbook.write_text(
        "- hosts: target\n  gather_facts: false\n  tasks:\n"
        "    - core_probe:\n      register: plain\n"
        "    - core_probe:\n      become: true\n      register: root\n"
        "    - copy: {dest: '{{ local }}/probe.json', content: '{{ [plain, root] | to_json }}'}\n"
        "      delegate_to: localhost\n"
        "      vars: {ansible_connection: local}\n"
    )
    inventory = sshd.inventory(
        f"probe-{persistent}",
        ansible_connection=PLUGIN,
        ansible_user=BECOME_USER,
        ansible_password=BECOME_PASSWORD,
        ansible_ssh_private_key_file=None,
        ansible_become_password=BECOME_PASSWORD,
        ansible_asyncssh_persistent=persistent,
    )
    result = _run(
        "ansible-playbook",
        ["-i", str(inventory), str(playbook), "-e", f"local={tmp_path}"],
        control,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plain, root = json.loads((tmp_path / "probe.json").read_text())
    assert (plain["user"], plain["root_dir"]) == (BECOME_USER, False)
    assert (root["user"], root["root_dir"]) == ("root", True)
    assert plain["after"] == root["after"] == "still-open"
    # become or not, the action's channels ride the plugin's connection: no second handshake
    # (fewer, never more: a persistent process of an earlier test may idle out meanwhile)
    assert plain["connections"] >= 1  # the plugin's own connection is seen
    assert plain["new_connections"] <= 0
    assert root["new_connections"] <= 0
    assert bool(mux_processes(control)) == (persistent == "true")


def test_without_pipelining_payloads_go_through_put_file(sshd: Sshd, control: Path) -> None:
    inventory = sshd.inventory(
        "nopipe",
        ansible_user=BECOME_USER,
        ansible_password=BECOME_PASSWORD,
        ansible_ssh_private_key_file=None,
        ansible_become_password=BECOME_PASSWORD,
        ansible_pipelining="false",
    )
    base = ["-i", str(inventory), "all", "-c", PLUGIN, "-vvv"]
    plain = _run("ansible", [*base, "-m", "ping"], control)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
    assert "PUT " in plain.stdout and "AnsiballZ_ping.py" in plain.stdout
    become = _run("ansible", [*base, "-b", "-m", "command", "-a", "id -un"], control)
    assert become.returncode == 0, become.stdout[-3000:] + become.stderr[-3000:]
    assert "PUT " in become.stdout
    assert become.stdout.rstrip().endswith("root"), become.stdout[-500:]
    assert BECOME_PASSWORD not in become.stdout + become.stderr


WORKER_IMPORTS = """
import sys
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader, init_plugin_loader

init_plugin_loader([sys.argv[1]])
connection_loader.get("pipelined.sftp.asyncssh", PlayContext())
from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec

prefix = "ansible_collections.pipelined.sftp.plugins.plugin_utils."
assert mux_client is sys.modules[prefix + "mux_client"]
assert mux_client.ConnectionSpec is ConnectionSpec
for name in ("spec", "mux_proto", "mux_client", "ansible_adapter"):
    module = sys.modules[prefix + name]
    print(name, type(module.__spec__.loader).__name__, module.__cached__)
"""


def test_worker_loads_command_helpers_from_cached_bytecode(tmp_path: Path) -> None:
    """The helpers every task needs load with Python's bytecode cache, not compiled per task."""
    collection = tmp_path / "ansible_collections" / "pipelined" / "sftp"
    no_bytecode = shutil.ignore_patterns("__pycache__")
    for part in ("plugins", "meta"):
        shutil.copytree(REPO / part, collection / part, ignore=no_bytecode)
    shutil.copy(REPO / "galaxy.yml", collection / "galaxy.yml")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [str(VENV_BIN / "python"), "-c", WORKER_IMPORTS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line.split() for line in run.stdout.splitlines()]
    assert [name for name, _loader, _cached in lines] == [
        "spec",
        "mux_proto",
        "mux_client",
        "ansible_adapter",
    ]
    for name, loader, cached in lines:
        assert loader == "SourceFileLoader", name
        assert Path(cached).is_file(), f"{name}: no bytecode written at {cached}"
        assert Path(cached).is_relative_to(collection / "plugins" / "plugin_utils")
