"""A generated inventory reaches both test servers with real ansible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import COLLECTIONS_PATH
from tests.fixtures.asyncssh_server import AsyncSSHServer
from tests.fixtures.inventory import write_inventory
from tests.fixtures.sshd import SSHDServer

ANSIBLE = Path(sys.executable).with_name("ansible")


@pytest.mark.sshd
def test_ansible_ping_through_generated_inventory(
    sshd_server: SSHDServer, asyncssh_server_threaded: AsyncSSHServer, tmp_path: Path
) -> None:
    inventory = write_inventory(
        tmp_path / "inventory.yml",
        {
            "sshd": sshd_server.endpoint(),
            # the asyncssh server's SFTP is chrooted, so modules go over stdin
            "asyncssh": (asyncssh_server_threaded.endpoint(), {"ansible_pipelining": True}),
        },
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # no ControlPersist master outliving the command (it would hold the output pipes)
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
    }
    result = subprocess.run(
        [str(ANSIBLE), "-i", str(inventory), "all", "-m", "ansible.builtin.ping", "-o"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + sshd_server.log_tail()
    lines = {line.split(" | ")[0]: line for line in result.stdout.splitlines() if " | " in line}
    for host in ("sshd", "asyncssh"):
        assert "SUCCESS" in lines[host] and '"pong"' in lines[host], result.stdout
    document = json.loads(inventory.read_text())
    hosts = document["all"]["children"]["test_servers"]["hosts"]
    assert hosts["sshd"]["ansible_port"] == sshd_server.port
    common_args = hosts["sshd"]["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={sshd_server.known_hosts}" in common_args
