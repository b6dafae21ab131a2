"""``make demo``: start the local SSH test servers and drive them with Ansible.

Starts the OpenSSH sshd fixture and the in-process asyncssh server on loopback, writes an
inventory of both (``.work/demo/inventory.yml``), generates a small source tree, and runs
Ansible against the servers. Everything it starts is stopped before it returns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.fixtures.endpoint import Endpoint
from tools.run_integration import COLLECTIONS, FIXTURE_GROUP, ensure_collection_link, host_vars

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / ".work" / "demo"
COMMAND_TIMEOUT_SECONDS = 300
PLAYBOOK = REPO_ROOT / "tools" / "demo" / "playbook.yml"


@contextlib.contextmanager
def servers() -> Iterator[dict[str, Endpoint]]:
    """Run both test servers; yield their endpoints by inventory host name."""
    from tests.fixtures.asyncssh_server import asyncssh_server_thread
    from tests.fixtures.sshd import sshd_server

    with sshd_server() as sshd, asyncssh_server_thread() as embedded:
        yield {"sshd_fixture": sshd.endpoint(), "asyncssh_fixture": embedded.endpoint()}


def write_inventory(endpoints: dict[str, Endpoint]) -> Path:
    """Write an inventory with both servers in group sftp_fixtures."""
    hosts = {name: host_vars(endpoint) for name, endpoint in endpoints.items()}
    path = DEMO_DIR / "inventory.yml"
    inventory = {"all": {"children": {FIXTURE_GROUP: {"hosts": hosts}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=True), encoding="utf-8")
    return path


def make_tree(root: Path, dirs: int = 20, files_per_dir: int = 50) -> tuple[int, int]:
    """Create a tree of small files under ``root``; return (files, bytes)."""
    total = 0
    for d in range(dirs):
        sub = root / f"dir{d:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dir):
            data = (f"{d}:{f}\n" * (1 + (d * files_per_dir + f) % 64)).encode()
            (sub / f"file{f:04d}.txt").write_bytes(data)
            total += len(data)
    return dirs * files_per_dir, total


def ansible(args: list[str]) -> None:
    """Run an ansible command line from the venv, failing the demo if it fails."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    command = [str(Path(sys.executable).with_name(args[0])), *args[1:]]
    print(f"\n$ {' '.join(args)}", flush=True)
    subprocess.run(
        command, env=env, check=True, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_SECONDS
    )


def main() -> int:
    """Run the demo; return the exit status."""
    ensure_collection_link()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    files, size = make_tree(DEMO_DIR / "src")
    print(f"demo: source tree {DEMO_DIR / 'src'}: {files} files, {size} bytes")
    with servers() as endpoints:
        for name, ep in endpoints.items():
            print(f"demo: {name} listening on {ep.host}:{ep.port}, root {ep.local_root}")
        inventory = write_inventory(endpoints)
        started = time.monotonic()
        ansible(["ansible", "-i", str(inventory), FIXTURE_GROUP, "-m", "ansible.builtin.ping"])
        print(f"\ndemo: both servers answered over ssh in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        ansible(
            [
                "ansible-playbook",
                "-i",
                str(inventory),
                "-e",
                f"demo_src={DEMO_DIR / 'src'}",
                "-e",
                f"demo_dir={DEMO_DIR}",
                str(PLAYBOOK),
            ]
        )
        elapsed = time.monotonic() - started
        print(f"\ndemo: copy, copy again, fetch, compare, remove in {elapsed:.1f} s")
    print("demo: servers stopped")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"demo: {exc.cmd[0]} failed with exit status {exc.returncode}.", file=sys.stderr)
        sys.exit(1)
