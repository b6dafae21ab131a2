"""OpenSSH server and Ansible helpers for the connection plugin tests (no tests here).

Starts a private sshd on a loopback port with its own host key, client key and
known_hosts file; and a login user with a password plus a sudo rule that asks for it,
so become with a password prompt runs for real.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".work" / "collections"
VENV_BIN = REPO / ".venv" / "bin"
SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")

BECOME_USER = "psftpconn"
BECOME_PASSWORD = "Conn-test-pw-7"
SUDOERS = Path("/etc/sudoers.d/pipelined-sftp-connection-test")

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().split()[1]


def ensure_become_user() -> None:
    """Create the password login user with a password-requiring sudo rule (idempotent)."""
    if subprocess.run(["id", BECOME_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", BECOME_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{BECOME_USER}:{BECOME_PASSWORD}\n", text=True, check=True)
    rule = f"{BECOME_USER} ALL=(ALL) PASSWD: ALL\nDefaults:{BECOME_USER} !requiretty\n"
    if not SUDOERS.exists() or SUDOERS.read_text() != rule:
        SUDOERS.write_text(rule)
        SUDOERS.chmod(0o440)


@dataclass
class Sshd:
    """A running private OpenSSH server and what a client needs to reach it."""

    root: Path
    port: int
    client_key: Path
    known_hosts: Path
    host_key_line: str
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    def inventory(self, name: str = "target", **extra: str | None) -> Path:
        """An INI inventory file ``name`` with one host, ``target``, pointing at this server.

        ``extra`` adds or overrides host variables; None drops one.
        """
        variables = {
            "ansible_host": self.host,
            "ansible_port": str(self.port),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts}",
        }
        variables.update(extra)
        path = self.root / f"inventory-{name}-{len(extra)}.ini"
        line = " ".join(f"{k}='{v}'" for k, v in variables.items() if v is not None)
        path.write_text(f"target {line}\n")
        return path


@contextlib.contextmanager
def run_sshd() -> Iterator[Sshd]:
    """Start sshd on a spare loopback port; stop it and remove its files afterwards."""
    ensure_become_user()
    root = Path(tempfile.mkdtemp(prefix="psftp-conn-sshd-"))
    root.chmod(0o755)
    host_key = root / "host_ed25519"
    host_blob = _keygen(host_key)
    client_key = root / "client_ed25519"
    client_blob = _keygen(client_key)
    auth = root / "authorized_keys"
    auth.write_text(f"ssh-ed25519 {client_blob}\n")
    auth.chmod(0o644)
    port = free_port()
    known = root / "known_hosts"
    host_key_line = f"[127.0.0.1]:{port} ssh-ed25519 {host_blob}\n"
    known.write_text(host_key_line)
    sftp_server = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), None)
    if sftp_server is None:
        raise RuntimeError(f"no sftp-server at {' or '.join(SFTP_SERVER_CANDIDATES)}")
    config = root / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {auth}
StrictModes no
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
MaxSessions 200
MaxStartups 200
LogLevel ERROR
Subsystem sftp {sftp_server}
"""
    )
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "sshd.log", "wb"),  # noqa: SIM115 - lives as long as sshd
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        time.sleep(0.05)
    else:
        raise RuntimeError(f"sshd did not listen on port {port}")
    try:
        yield Sshd(root, port, client_key, known, host_key_line, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def ansible_env(control_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ansible commands run against the test collection."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(control_dir),
            "PIPELINED_SFTP_CONTROL_DIR": str(control_dir),
            "ANSIBLE_LOCAL_TEMP": str(control_dir.parent / "ansible-tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def mux_processes(control_dir: Path) -> list[int]:
    """Pids of persistent connection processes serving sockets under ``control_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"plugin_utils.mux" in b" ".join(cmdline) and any(
            arg.startswith(str(control_dir).encode()) for arg in cmdline
        ):
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(entry.name))
    return pids


def wait_gone(directory: Path, seconds: float) -> bool:
    """True once no persistent process and no file is left in `directory`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not mux_processes(directory) and not list(directory.glob("*")):
            return True
        time.sleep(0.1)
    return False
