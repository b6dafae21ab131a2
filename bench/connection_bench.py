"""Benchmark of the pipelined.sftp.asyncssh connection plugin against ansible.builtin.ssh.

Starts a private OpenSSH sshd (tests/fixtures/sshd.py) and, per round trip, a latency proxy
(tests/fixtures/latency_proxy.py) in front of it. At each round trip it runs, with each
connection plugin, two playbooks as separate ansible-playbook processes and times them:

- ``tasks``: 50 small tasks (ping, command, stat, file) on one host;
- ``copy``: one ansible.builtin.copy of a 100 MiB file.

ansible.builtin.ssh runs with pipelining and ControlMaster/ControlPersist on; the plugin with
its defaults (pipelining and the persistent connection on). A ``cold`` run starts with no
control master / persistent process, so connection setup is part of the time for both; a
``warm`` run first pings the host (untimed) so both are already up, as for a playbook run
within ControlPersist's minute of the previous one.

    .venv/bin/python bench/connection_bench.py                 # 0 and 50 ms, full size
    .venv/bin/python bench/connection_bench.py --quick         # 10 tasks, 10 MiB
    .venv/bin/python bench/connection_bench.py --rtt 0,10,50 --repeat 5 --start warm
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
COLLECTIONS = REPO / ".work" / "collections"
VENV_BIN = REPO / ".venv" / "bin"

from tests.fixtures.latency_proxy import latency_proxy_thread  # noqa: E402
from tests.fixtures.sshd import sshd_server  # noqa: E402

CONNECTIONS = {
    "ssh": "ansible.builtin.ssh",
    "asyncssh": "pipelined.sftp.asyncssh",
}


def tasks_playbook(count: int, work: str) -> str:
    """A play of ``count`` small tasks cycling through ping, command, stat and file."""
    kinds = [
        "- ping:\n",
        '- command: "echo task-{i}"\n',
        "- stat: {{path: /etc/hostname}}\n",
        "- file: {{path: '{work}/f{i}', state: touch}}\n",
    ]
    lines = [
        "- hosts: target\n  gather_facts: false\n  tasks:\n",
        f"    - file: {{path: '{work}', state: directory}}\n",
    ]
    for i in range(count - 1):
        lines.append("    " + kinds[i % len(kinds)].format(i=i, work=work))
    return "".join(lines)


def copy_playbook(src: Path, dest: str) -> str:
    """A play copying ``src`` to ``dest``."""
    return (
        "- hosts: target\n  gather_facts: false\n  tasks:\n"
        f"    - copy: {{src: '{src}', dest: '{dest}'}}\n"
    )


def inventory(path: Path, port: int, key: Path, known_hosts: Path, connection: str) -> Path:
    """An INI inventory with the single host ``target``."""
    path.write_text(
        f"target ansible_host=127.0.0.1 ansible_port={port} ansible_user=root "
        f"ansible_ssh_private_key_file={key} ansible_connection={connection} "
        f"ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts}'\n"
    )
    return path


def run_playbook(inv: Path, playbook: Path, control: Path, warm: bool = False) -> float:
    """Run one playbook in a fresh control directory; return wall seconds.

    With ``warm``, an untimed ad-hoc ping first starts the control master / persistent
    process."""
    env = dict(os.environ)
    # Python's default: cached bytecode is written and reused. ansible-core's own plugins come
    # with bytecode compiled by pip; a collection's is written on its first use.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_ASYNCSSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    if warm:
        subprocess.run(
            [str(VENV_BIN / "ansible"), "-i", str(inv), "target", "-m", "ping"],
            env=env,
            capture_output=True,
            timeout=300,
            check=True,
        )
    start = time.monotonic()
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{playbook.name} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    return seconds


def stop_persistent(control: Path) -> None:
    """End the control masters and persistent processes a run left behind."""
    from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux

    for path in control.glob("*"):
        if path.name.endswith(".sock") and path.name.startswith("psftp-"):
            mux.stop(str(path))
        elif path.is_socket():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={path}", "-O", "exit", "target"],
                capture_output=True,
                timeout=30,
                check=False,
            )


def one_run(
    args: argparse.Namespace,
    scratch: Path,
    remote_root: Path,
    ep: Any,
    tag: str,
    workload: str,
    connection: str,
    big: Path,
    warm: bool,
) -> float:
    """Time one playbook run of ``workload`` with ``connection`` (cold or warm start)."""
    work = f"{remote_root}/{tag}"
    play = scratch / f"{tag}.yml"
    if workload == "tasks":
        play.write_text(tasks_playbook(args.tasks, work))
    else:
        play.write_text(copy_playbook(big, work + ".bin"))
    inv = inventory(scratch / f"{tag}.ini", ep.port, ep.client_key, ep.known_hosts, connection)
    control = scratch / f"c-{tag}"
    control.mkdir(mode=0o700)
    try:
        return run_playbook(inv, play, control, warm)
    finally:
        stop_persistent(control)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(work + ".bin")


@contextlib.contextmanager
def endpoint_at(port: int, rtt_ms: float) -> Iterator[int]:
    """The port to use for ``rtt_ms`` of added round trip (the proxy's, or sshd's for 0)."""
    if rtt_ms <= 0:
        yield port
        return
    with latency_proxy_thread(port, rtt=rtt_ms / 1000) as proxy:
        yield proxy.port


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table of seconds and asyncssh/ssh ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", default="0,50", help="round trips in ms, comma separated")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; median reported")
    parser.add_argument("--quick", action="store_true", help="10 tasks and 10 MiB")
    parser.add_argument("--start", default="cold,warm", help="cold, warm or both (comma separated)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.size_mib = 10, 10
    rtts = [float(x) for x in args.rtt.split(",") if x.strip()]
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))

    print(f"# {platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"# command: {' '.join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}")
    scratch = Path(tempfile.mkdtemp(prefix="pcb-"))
    starts = [x.strip() for x in args.start.split(",") if x.strip()]
    if not starts or set(starts) - {"cold", "warm"}:
        parser.error("--start takes cold, warm or cold,warm")
    results: dict[tuple[str, float, str, str], float] = {}
    try:
        big = scratch / "big.bin"
        with open(big, "wb") as f:
            for _mib in range(args.size_mib):
                f.write(os.urandom(1024 * 1024))
        with sshd_server(log_level="ERROR") as sshd:
            for rtt in rtts:
                with endpoint_at(sshd.port, rtt) as port:
                    known = scratch / f"known_hosts_{int(rtt)}"
                    ep = sshd.endpoint().via(port, known) if rtt > 0 else sshd.endpoint()
                    for start, workload in itertools.product(starts, ("tasks", "copy")):
                        samples: dict[str, list[float]] = {name: [] for name in CONNECTIONS}
                        # alternate the plugins so a change in machine load hits both alike
                        for n in range(args.repeat):
                            for name, connection in CONNECTIONS.items():
                                tag = f"{start}-{int(rtt)}-{workload}-{name}-{n}"
                                seconds = one_run(
                                    args,
                                    scratch,
                                    sshd.root,
                                    ep,
                                    tag,
                                    workload,
                                    connection,
                                    big,
                                    start == "warm",
                                )
                                samples[name].append(seconds)
                                print(
                                    f"{start} rtt={rtt:g}ms {workload:5} {name:8} "
                                    f"run {n + 1}: {seconds:7.2f} s",
                                    flush=True,
                                )
                        for name, values in samples.items():
                            results[(start, rtt, workload, name)] = statistics.median(values)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(
        "| start | RTT | workload | ansible.builtin.ssh (s) | pipelined.sftp.asyncssh (s) "
        "| asyncssh / ssh |"
    )
    print("|---|---|---|---|---|---|")
    for start, rtt, workload in itertools.product(starts, rtts, ("tasks", "copy")):
        label = f"{args.tasks} tasks" if workload == "tasks" else f"copy {args.size_mib} MiB"
        ssh = results[(start, rtt, workload, "ssh")]
        ours = results[(start, rtt, workload, "asyncssh")]
        print(f"| {start} | {rtt:g} ms | {label} | {ssh:.2f} | {ours:.2f} | {ours / ssh:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
