"""CPU per process name during single core pushes, from `perf record -a`, run by run.

Each run pushes the small-shm tree (5,000 files of 0-16 KiB to tmpfs) through the latency
proxy in a fresh interpreter, as `core_bench.py run` does, with `perf record -a` sampling
every CPU. It prints one line per run, sorted by wall time: milliseconds of CPU per process
name (client, proxy and benchmark are all `python`), so that a slow run shows which process
spent the extra time. Needs root (or perf_event_paranoid <= 0) and `perf`.

    python bench/per_process_cpu.py --rtt 10 --runs 14

Measured in docs/performance.md ("Summary (ninth session…)").
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import core_bench as cb  # noqa: E402

from tests.fixtures.sshd import SSHDServer  # noqa: E402

FREQUENCY = 2000
SHOWN = ("python", "sshd", "sftp-server", "bash")
_ROW = re.compile(r"\s+[\d.]+%\s+(\d+)\s+(\S+)")


def cpu_by_name(data: Path) -> dict[str, float]:
    """Milliseconds of CPU per command name in one perf.data file."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--sort", "comm", "--stdio", "-n", "-g", "none"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    per_sample_ms = 1000 / FREQUENCY
    return {
        m.group(2): int(m.group(1)) * per_sample_ms
        for line in report.splitlines()
        if (m := _ROW.match(line))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=10.0, help="round trip in ms")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    sc = cb.scenario("small-shm", False)
    src = cb.make_tree(sc)
    cb.warm(src)
    dest = sc.root / "work" / "dest"
    rows: list[tuple[float, dict[str, float]]] = []
    server = SSHDServer(log_level="ERROR")
    server.start()
    try:
        with (
            cb.latency_proxy(server.port, args.rtt) as (port, proxy_pid),
            tempfile.TemporaryDirectory() as tmp,
        ):
            bench = cb.Bench(server, port, args.rtt, False, 300, proxy_pid)
            for run in range(args.runs):
                cb.clean(dest)
                cb.settle(server.pid)
                data = Path(tmp) / f"run{run}.data"
                perf = subprocess.Popen(
                    ["perf", "record", "-a", "-F", str(FREQUENCY), "-o", str(data)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.4)  # perf is sampling before the run starts
                seconds, _cpu, error = cb.run_worker(
                    bench.job("core", "push", str(src), str(dest)), 100
                )
                perf.send_signal(signal.SIGINT)
                perf.wait()
                if error or seconds is None:
                    raise SystemExit(f"run {run} failed: {error}")
                rows.append((seconds, cpu_by_name(data)))
    finally:
        server.stop()
    print("wall s  " + " ".join(f"{name:>12s}" for name in SHOWN) + "   others (ms of CPU)")
    for seconds, cpu in sorted(rows, key=lambda row: row[0]):
        others = sum(ms for name, ms in cpu.items() if name not in SHOWN and name != "swapper")
        shown = " ".join(f"{cpu.get(name, 0.0):12.0f}" for name in SHOWN)
        print(f"{seconds:6.3f}  {shown} {others:10.0f}")


if __name__ == "__main__":
    main()
