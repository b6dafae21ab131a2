"""Time to put one file through the plugin's persistent process against OpenSSH's sftp.

Starts the private sshd (tests/fixtures/sshd.py), a persistent connection process (the
connection plugin's) and an OpenSSH control master, then puts a random file of ``--mib``
MiB ``--runs`` times through each: ``put`` op of the process (what ``put_file`` does) and
``sftp -b -`` through the control master (what ``ansible.builtin.ssh`` does). Prints the
median milliseconds of each.

    .venv/bin/python bench/put_latency.py --mib 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO / ".work" / "collections", REPO):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux  # noqa: E402
from ansible_collections.pipelined.sftp.plugins.plugin_utils.mux_session import (  # noqa: E402
    transfer,
)
from tests.fixtures.sshd import sshd_server  # noqa: E402
from tests.unit.core_helpers import spec_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=10, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ppl-"))
    src = scratch / "src.bin"
    src.write_bytes(os.urandom(args.mib << 20))
    with sshd_server(log_level="ERROR") as sshd:
        endpoint = sshd.endpoint()
        dest = sshd.root / f"put-latency-{os.getpid()}"
        path = mux.ensure_server(spec_for(endpoint), directory=str(scratch / "cp"))
        master = [
            *endpoint.ssh_options(),
            "-o", "ControlMaster=auto", "-o", f"ControlPath={scratch}/ssh-%C",
            "-o", "ControlPersist=60",
        ]  # fmt: skip
        target = f"{endpoint.username}@{endpoint.host}"
        times: dict[str, list[float]] = {"persistent process": [], "sftp via control master": []}
        try:
            subprocess.run(["ssh", "-p", str(endpoint.port), *master, target, "true"], check=True)
            asyncio.run(transfer(path, "put", str(src), f"{dest}-warm"))
            for run in range(args.runs):
                started = time.perf_counter()
                asyncio.run(transfer(path, "put", str(src), f"{dest}-p{run}"))
                times["persistent process"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                subprocess.run(
                    ["sftp", "-b", "-", "-P", str(endpoint.port), *master, target],
                    input=f"put {src} {dest}-s{run}\n".encode(),
                    capture_output=True,
                    check=True,
                )
                times["sftp via control master"].append((time.perf_counter() - started) * 1000)
        finally:
            mux.stop(path)
            subprocess.run(
                ["ssh", "-p", str(endpoint.port), *master, "-O", "exit", target],
                capture_output=True,
                check=False,
            )
            for leftover in sshd.root.glob(f"{dest.name}-*"):
                leftover.unlink()
    print(f"# put of {args.mib} MiB at 0 ms, {args.runs} runs each, ms")
    for name, values in times.items():
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:24} median {statistics.median(values):7.1f}  {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
