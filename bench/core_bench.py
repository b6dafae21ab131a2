"""Benchmark of the transfer core against sftp, scp, rsync, tar | ssh and asyncssh.

Every run starts a private OpenSSH sshd (tests/fixtures/sshd.py) and, per round trip, a
latency proxy process (tests/fixtures/latency_proxy.py) in front of it; the core and every
peer connect through the same proxy port in the same run, and each result row is printed
with the ratio core / peer. See bench/README.md for the scenarios, flags and caveats.

    python bench/core_bench.py run --quick
    python bench/core_bench.py run --rtt 50 --scenario small --peers tar,rsync --ops push
    python bench/core_bench.py profile --scenario small-shm
    python bench/core_bench.py report bench/results/*.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import platform
import pstats
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BASELINE = "baseline"
"""The peer that is the core of another git revision (run --baseline REV)."""
BASELINE_ENV = "PIPELINED_BENCH_COLLECTIONS"
COLLECTIONS = Path(os.environ.get(BASELINE_ENV) or REPO / ".work" / "collections")
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from tests.fixtures.endpoint import Endpoint  # noqa: E402
from tests.fixtures.sshd import SSHDServer  # noqa: E402

KIB = 1024
MIB = 1024 * KIB

DISK_ROOT = Path(os.environ.get("PSBENCH_DISK", "/var/tmp/pstest-bench"))
SHM_ROOT = Path(os.environ.get("PSBENCH_SHM", "/dev/shm/pstest-bench"))
RESULTS = REPO / "bench" / "results"

ALL_PEERS = ("sftp", "scp", "scp-legacy", "rsync", "tar", "asyncssh")
DEFAULT_PEERS = ("sftp", "scp", "rsync", "tar", "asyncssh")
REMOVE_PEERS = ("sftp", "ssh-rm")
ALL_SCENARIOS = ("config", "small", "small-shm", "medium", "large")
ALL_OPS = ("push", "pull", "remove")
RUN_TIMEOUT = 1500.0
"""Seconds one peer run may take before it is killed and reported as a timeout."""


# -- trees -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One tree shape and where its files live (disk or tmpfs)."""

    name: str
    files: int
    shape: str  # "config" | "small" | "medium" | "large"
    large_size: int = 0
    on_shm: bool = False

    @property
    def root(self) -> Path:
        return SHM_ROOT if self.on_shm else DISK_ROOT

    @property
    def tree_id(self) -> str:
        return f"t-{self.shape}-{self.files}-{self.large_size // MIB}"


def scenario(name: str, quick: bool) -> Scenario:
    """The scenario called `name`, scaled down when `quick`."""
    if name == "config":  # what a role typically copies: a few directories of small files
        return Scenario(name, 40, "config")
    if name in ("small", "small-shm"):
        return Scenario(name, 1000 if quick else 5000, "small", on_shm=name == "small-shm")
    if name == "medium":
        return Scenario(name, 100 if quick else 300, "medium")
    if name == "large":
        return Scenario(name, 2, "large", large_size=(128 if quick else 512) * MIB)
    raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(ALL_SCENARIOS)}")


def make_tree(sc: Scenario) -> Path:
    """The source tree of `sc`, made by tests/fixtures/trees.py once and reused across runs."""
    from tests.fixtures.trees import generate

    dest = sc.root / "src" / sc.tree_id
    marker = dest.with_name(dest.name + ".done")
    if marker.exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    if sc.shape == "small":  # 0..16 KiB, 100 files per directory
        generate("small", dest, seed=4, count=sc.files)
    elif sc.shape == "config":  # 0..16 KiB, 10 files per directory
        generate("small", dest, seed=4, count=sc.files, per_dir=10)
    elif sc.shape == "medium":  # 1 MiB each, one directory
        generate("large", dest, seed=4, count=sc.files, size=MIB)
    else:
        generate("large", dest, seed=4, count=sc.files, size=sc.large_size)
    marker.touch()
    return dest


def tree_size(path: Path) -> tuple[int, int]:
    """(regular files, bytes) under `path`; (0, 0) when missing."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
    return files, size


def warm(path: Path) -> None:
    """Read every file once so all runs read the source from the page cache."""
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                while f.read(8 * MIB):
                    pass


def clean(path: Path) -> None:
    """Delete `path` (untimed) and flush dirty pages so the next run starts level."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.sync()


# -- proxy -------------------------------------------------------------------------------


def proc_cpu(pid: int | None, children: bool = False) -> float:
    """CPU seconds (user + sys) of process `pid`, or of its reaped children."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    first = 13 if children else 11  # utime, stime = fields 14, 15; cutime, cstime = 16, 17
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


class CPUSampler:
    """CPU seconds used by every descendant of `pid` (sshd's sessions) while it runs.

    Polls /proc every 20 ms and keeps each process's last seen user + sys time, so the
    CPU of processes that are never reaped by sshd (reparented to init when a client
    drops the connection first) still counts; at most ~20 ms per process is missed.
    """

    def __init__(self, pid: int | None, interval: float = 0.02) -> None:
        import threading

        self.pid = pid
        self.interval = interval
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        """Descendants via /proc/<pid>/task/<pid>/children (cheap: no scan of /proc)."""
        found: list[int] = []
        todo = [pid]
        while todo:
            parent = todo.pop()
            try:
                text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            except OSError:
                continue
            for child in map(int, text.split()):
                found.append(child)
                todo.append(child)
        return found

    def _run(self) -> None:
        while self.pid is not None and not self._stop.is_set():
            for child in self._descendants(self.pid):
                used = proc_cpu(child)
                if used:
                    self.seen[child] = max(self.seen.get(child, 0.0), used)
            self._stop.wait(self.interval)

    def __enter__(self) -> CPUSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def total(self) -> float:
        return sum(self.seen.values())


def settle(pid: int | None, timeout: float = 10.0) -> None:
    """Wait until sshd's session processes of the last run are gone."""
    deadline = time.monotonic() + timeout
    while pid is not None and CPUSampler._descendants(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def latency_proxy(target_port: int, rtt_ms: float) -> Iterator[tuple[int, int | None]]:
    """A latency proxy in its own process (so it never shares a GIL with the core).

    Yields (port, proxy pid). A negative `rtt_ms` means no proxy: the sshd port itself.
    """
    if rtt_ms < 0:
        yield target_port, None
        return
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fixtures.latency_proxy",
            "--target",
            f"127.0.0.1:{target_port}",
            "--rtt-ms",
            str(rtt_ms),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port="):
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"latency proxy did not start: {line!r} {err[-500:]}")
        yield int(line.split()[0].split("=", 1)[1]), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- peers -------------------------------------------------------------------------------


def ssh_opts(ep: Endpoint) -> list[str]:
    """OpenSSH client options: the fixture's key and known_hosts, no multiplexing."""
    return [
        *ep.ssh_options(),
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        "Compression=no",
    ]


def sftp_quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Row:
    """One timed run."""

    scenario: str
    op: str
    rtt_ms: float
    peer: str
    seconds: float | None
    ok: bool
    files: int = 0
    bytes: int = 0
    cpu: float | None = None
    """Client CPU seconds (user + sys), core and asyncssh only."""
    error: str = ""
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    repeat: int = 0


def pick(rows: list[Row]) -> Row | None:
    """The median successful row (lower median), else the last row, else None."""
    ok = sorted((r for r in rows if r.ok and r.seconds is not None), key=lambda r: r.seconds or 0)
    if ok:
        return ok[(len(ok) - 1) // 2]
    return rows[-1] if rows else None


def run_cmd(
    argv: list[str] | str, timeout: float, stdin_file: Path | None = None
) -> tuple[float, str]:
    """Run a command, return (wall seconds, error text or "")."""
    shell = isinstance(argv, str)
    started = time.perf_counter()
    stdin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.run(
            argv,
            shell=shell,
            executable="/bin/bash" if shell else None,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, f"timeout after {timeout:.0f} s"
    finally:
        if stdin_file:
            stdin.close()  # type: ignore[union-attr]
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return seconds, f"rc={proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}"
    return seconds, ""


def run_worker(
    job: dict[str, Any],
    timeout: float,
    extra: dict[str, Any] | None = None,
    collections: Path | None = None,
) -> tuple[float | None, float | None, str]:
    """Run the core or asyncssh in a fresh interpreter; (seconds, cpu, error).

    `extra` receives the connect time and the core's report counters; `collections` is
    another collections root to import the core from (the baseline's).
    """
    env = None if collections is None else {**os.environ, BASELINE_ENV: str(collections)}
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "worker", json.dumps(job)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, None, f"timeout after {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None, None, f"rc={proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
    out = json.loads(lines[-1])
    if extra is not None:
        extra.update({k: out[k] for k in ("connect", "report") if out.get(k) is not None})
    return out["seconds"], out["cpu"], out.get("error", "")


class Bench:
    """Runs peers of one scenario at one round trip through one proxy port."""

    def __init__(
        self,
        server: SSHDServer,
        port: int,
        rtt_ms: float,
        quick: bool,
        timeout: float,
        proxy_pid: int | None = None,
        baseline: Path | None = None,
    ) -> None:
        self.server = server
        self.baseline = baseline
        self.proxy_pid = proxy_pid
        self.rtt_ms = rtt_ms
        self.quick = quick
        self.timeout = timeout
        kh = server.workdir / f"known_hosts_{port}"
        self.ep = server.endpoint().via(port, kh)
        self.dest_host = f"{self.ep.username}@{self.ep.host}"
        self.extra: dict[str, Any] = {}

    def job(self, tool: str, op: str, src: str, dest: str) -> dict[str, Any]:
        return {
            "tool": tool,
            "op": op,
            "src": src,
            "dest": dest,
            "host": self.ep.host,
            "port": self.ep.port,
            "user": self.ep.username,
            "key": str(self.ep.client_key),
            "known_hosts": str(self.ep.known_hosts),
        }

    def transfer(
        self, peer: str, op: str, src: Path, dest: Path
    ) -> tuple[float | None, float | None, str]:
        """Copy tree `src` to `dest` (push: dest is remote; pull: src is remote)."""
        opts = ssh_opts(self.ep)
        port = str(self.ep.port)
        s, d = str(src), str(dest)
        if peer in ("core", "asyncssh"):
            return run_worker(self.job(peer, op, s, d), self.timeout, self.extra)
        if peer == BASELINE:
            return run_worker(self.job("core", op, s, d), self.timeout, None, self.baseline)
        cpu = None
        if peer == "sftp":
            batch = self.server.workdir / "batch"
            line = (
                f"put -r -p {sftp_quote(s)} {sftp_quote(d)}"
                if op == "push"
                else f"get -r -p {sftp_quote(s)} {sftp_quote(d)}"
            )
            batch.write_text(line + "\n")
            secs, err = run_cmd(
                ["sftp", "-q", "-b", str(batch), "-P", port, *opts, self.dest_host], self.timeout
            )
            return secs, cpu, err
        if peer in ("scp", "scp-legacy"):
            legacy = ["-O"] if peer == "scp-legacy" else []
            pair = [s, f"{self.dest_host}:{d}"] if op == "push" else [f"{self.dest_host}:{s}", d]
            secs, err = run_cmd(
                ["scp", *legacy, "-q", "-r", "-p", "-P", port, *opts, *pair], self.timeout
            )
            return secs, cpu, err
        if peer == "rsync":
            rsh = shlex.join(["ssh", "-p", port, *opts])
            pair = (
                [s + "/", f"{self.dest_host}:{d}/"]
                if op == "push"
                else [f"{self.dest_host}:{s}/", d + "/"]
            )
            secs, err = run_cmd(["rsync", "-a", "-e", rsh, *pair], self.timeout)
            return secs, cpu, err
        if peer == "tar":
            ssh = shlex.join(["ssh", "-p", port, *opts, self.dest_host])
            if op == "push":
                remote = shlex.quote(f"mkdir -p {shlex.quote(d)} && tar xf - -C {shlex.quote(d)}")
                cmd = f"set -o pipefail; tar cf - -C {shlex.quote(s)} . | {ssh} {remote}"
            else:
                remote = shlex.quote(f"tar cf - -C {shlex.quote(s)} .")
                cmd = (
                    f"set -o pipefail; mkdir -p {shlex.quote(d)} && "
                    f"{ssh} {remote} | tar xf - -C {shlex.quote(d)}"
                )
            secs, err = run_cmd(cmd, self.timeout)
            return secs, cpu, err
        raise SystemExit(f"unknown peer {peer!r}")

    def remove(self, peer: str, target: Path) -> tuple[float | None, float | None, str]:
        """Remove remote tree `target`."""
        port = str(self.ep.port)
        if peer in ("core", BASELINE):
            job = self.job("core", "remove", "", str(target))
            if peer == BASELINE:
                return run_worker(job, self.timeout, None, self.baseline)
            return run_worker(job, self.timeout, self.extra)
        if peer == "ssh-rm":
            secs, err = run_cmd(
                [
                    "ssh",
                    "-p",
                    port,
                    *ssh_opts(self.ep),
                    self.dest_host,
                    "rm -rf -- " + shlex.quote(str(target)),
                ],
                self.timeout,
            )
            return secs, None, err
        if peer == "sftp":
            # a sequential walk: rm every file, rmdir every directory, bottom-up
            batch = self.server.workdir / "rm-batch"
            with open(batch, "w") as f:
                for dirpath, dirs, names in os.walk(target, topdown=False):
                    for name in names:
                        f.write(f"rm {sftp_quote(os.path.join(dirpath, name))}\n")
                    for name in dirs:
                        f.write(f"rmdir {sftp_quote(os.path.join(dirpath, name))}\n")
                f.write(f"rmdir {sftp_quote(str(target))}\n")
            secs, err = run_cmd(
                ["sftp", "-q", "-b", str(batch), "-P", port, *ssh_opts(self.ep), self.dest_host],
                self.timeout,
            )
            return secs, None, err
        raise SystemExit(f"unknown remove peer {peer!r}")


def run_scenario(
    bench: Bench,
    sc: Scenario,
    ops: list[str],
    peers: list[str],
    out: list[Row],
    sink: Path,
    repeat: int = 1,
) -> None:
    """Time every op of `sc` for the core and each peer and record the rows.

    With `repeat` > 1 the tools take turns (core, peers, core, peers, ...) so slow drifts of
    the machine hit every tool alike; tables show each tool's median.
    """
    src = make_tree(sc)
    want = tree_size(src)
    warm(src)
    work = sc.root / "work"
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "dest"
    for op in ops:
        known = REMOVE_PEERS if op == "remove" else ALL_PEERS
        tools = ["core", *(p for p in peers if p in known or p == BASELINE)]
        for rep, tool in [(n, t) for n in range(max(1, repeat)) for t in tools]:
            bench.extra = {}
            clean(dest)
            if op == "remove":
                subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
                os.sync()
            proxy_cpu0 = proc_cpu(bench.proxy_pid)
            bench.extra["load1"] = round(os.getloadavg()[0], 2)  # other work on the machine
            reaped0 = proc_cpu(bench.server.pid, children=True)
            sampler = CPUSampler(bench.server.pid).__enter__()
            if op == "remove":
                secs, cpu, err = bench.remove(tool, dest)
                if not err and dest.exists():
                    err = f"{dest} still exists after remove"
                got = want
            else:
                secs, cpu, err = bench.transfer(tool, op, src, dest)
                got = tree_size(dest)
                if not err and got != want:
                    err = (
                        f"destination has {got[0]} files / {got[1]} bytes, "
                        f"want {want[0]} / {want[1]}"
                    )
            settled = time.perf_counter()
            settle(bench.server.pid)
            sampler.__exit__()
            bench.extra["settle"] = round(time.perf_counter() - settled, 2)
            # a lower bound: sampling misses the last 20 ms of each process, reaped time
            # misses processes orphaned when the client drops first
            reaped = proc_cpu(bench.server.pid, children=True) - reaped0
            bench.extra["server_cpu"] = round(max(sampler.total, reaped), 2)
            bench.extra["proxy_cpu"] = round(proc_cpu(bench.proxy_pid) - proxy_cpu0, 2)
            row = Row(
                sc.name,
                op,
                bench.rtt_ms,
                tool,
                None if secs is None else round(secs, 3),
                not err,
                want[0],
                want[1],
                None if cpu is None else round(cpu, 3),
                err,
                bench.quick,
                dict(bench.extra),
                rep,
            )
            out.append(row)
            with open(sink, "a") as f:
                f.write(json.dumps(asdict(row)) + "\n")
            print(format_row(row, out), flush=True)
        clean(dest)


def core_time(row: Row, rows: list[Row]) -> float | None:
    """The core's (median) seconds for the same scenario, op and round trip."""
    key = (row.scenario, row.op, row.rtt_ms, "core", row.quick)
    best = pick([r for r in rows if (r.scenario, r.op, r.rtt_ms, r.peer, r.quick) == key])
    return best.seconds if best is not None and best.ok else None


def rtt_label(rtt_ms: float) -> str:
    return "direct" if rtt_ms < 0 else f"{rtt_ms:g} ms"


def format_row(row: Row, rows: list[Row]) -> str:
    head = f"{row.scenario:9} {row.op:6} rtt={rtt_label(row.rtt_ms):>6} {row.peer:10}"
    if not row.ok:
        return f"{head} FAILED {row.error}"
    core = core_time(row, rows)
    ratio = (
        f"  core/peer={core / row.seconds:5.2f}"
        if core and row.seconds and row.peer != "core"
        else ""
    )
    cpu = f"  cpu={row.cpu:.2f}s" if row.cpu is not None else ""
    if "server_cpu" in row.extra:
        cpu += (
            f"  server_cpu={row.extra['server_cpu']:.2f}s proxy_cpu={row.extra['proxy_cpu']:.2f}s"
        )
    rate = (
        f"  {row.bytes / MIB / row.seconds:7.1f} MiB/s"
        if row.seconds and row.op != "remove"
        else ""
    )
    return f"{head} {row.seconds:9.2f} s{rate}{ratio}{cpu}"


# -- worker: the core and asyncssh, in a fresh process -----------------------------------


async def _core_job(job: dict[str, Any]) -> None:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import (
        RemoveOptions,
        TransferOptions,
    )
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec

    spec = ConnectionSpec(
        host=job["host"],
        port=job["port"],
        user=job["user"],
        client_keys=(job["key"],),
        known_hosts=job["known_hosts"],
    )
    opts = TransferOptions(**job.get("options", {}))
    started = time.perf_counter()
    session = await open_session(spec)
    job["_connect"] = time.perf_counter() - started
    try:
        if job["op"] == "push":
            report = await api.push(session, job["src"] + "/", job["dest"], opts)
        elif job["op"] == "pull":
            report = await api.pull(session, job["src"], job["dest"], opts)
        else:
            report = await api.remove(session, [job["dest"]], RemoveOptions())
    finally:
        await session.aclose()
    job["_report"] = {
        k: getattr(report, k) for k in ("files", "dirs", "bytes", "skipped", "deleted")
    }
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} failures, first: {report.failures[0]}")


async def _asyncssh_job(job: dict[str, Any]) -> None:
    import asyncssh

    async with (
        asyncssh.connect(
            job["host"],
            job["port"],
            username=job["user"],
            client_keys=[job["key"]],
            known_hosts=job["known_hosts"],
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        if job["op"] == "push":
            await sftp.put(job["src"], job["dest"], recurse=True, preserve=True)
        else:
            await sftp.get(job["src"], job["dest"], recurse=True, preserve=True)


def worker(job: dict[str, Any]) -> None:
    """Run one job, print {"seconds", "cpu", "error"} as JSON (cpu: user + sys seconds)."""
    coro = _core_job if job["tool"] == "core" else _asyncssh_job
    profiler = None
    if job.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    error = ""
    try:
        if profiler is not None:
            profiler.enable()
        asyncio.run(coro(job))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if profiler is not None:
            profiler.disable()
    seconds = time.perf_counter() - started
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if profiler is not None:
        profiler.dump_stats(job["profile"])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "error": error,
                "connect": job.get("_connect"),
                "report": job.get("_report"),
                "utime": ru1.ru_utime - ru0.ru_utime,
                "stime": ru1.ru_stime - ru0.ru_stime,
            }
        )
    )


# -- profile -----------------------------------------------------------------------------

CATEGORIES = [
    ("idle: waiting in epoll (wall time, not CPU)", ("of 'select.epoll'",)),
    (
        "asyncssh packet crypto",
        (
            "asyncssh/crypto",
            "asyncssh/encryption",
            "asyncssh/mac",
            "cryptography/",
            "<built-in method _openssl",
            "of 'cryptography",
            "_rust",
        ),
    ),
    ("asyncssh SSH/channel layer", ("asyncssh/",)),
    ("protocol encode/decode", ("plugin_utils/protocol.py", "_struct", "struct.")),
    ("core scheduling (engine, transfer, push/pull, budget)", ("plugin_utils/",)),
    ("socket I/O", ("of '_socket.socket'", "socket.socket", "method 'send'", "method 'recv'")),
    (
        "local file I/O",
        (
            "posix.",
            "of '_io.",
            "io.open",
            "os.py",
            "scandir",
            "builtins.open",
            "method 'read' of",
            "method 'readinto'",
        ),
    ),
    (
        "asyncio event loop",
        (
            "asyncio/",
            "selectors.py",
            "_contextvars",
            "method 'run' of 'Context'",
        ),
    ),
]


def categorize(key: tuple[str, int, str]) -> str:
    filename, _line, name = key
    text = f"{filename}:{name}"
    for label, needles in CATEGORIES:
        if any(n in text for n in needles):
            return label
    return "other"


def summarize_profile(
    path: Path, label: str, files: int, size: int, wall: float, cpu: float, top: int = 25
) -> str:
    """A Markdown summary: time by category, then the top functions by own time."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_cat: dict[str, float] = {}
    for key, value in raw.items():
        by_cat[categorize(key)] = by_cat.get(categorize(key), 0.0) + value[2]
    lines = [
        f"#### {label}",
        "",
        f"{files} files, {size / MIB:.1f} MiB; profiled wall {wall:.2f} s, "
        f"client CPU {cpu:.2f} s (profiler overhead included; cProfile's clock is wall "
        "time, so time blocked in epoll shows as idle)",
        "",
        "| where | own time (s) | share |",
        "|---|---:|---:|",
    ]
    for cat, secs in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cat} | {secs:.2f} | {100 * secs / total:.0f} % |")
    lines += ["", f"Top {top} functions by own time:", "", "```"]
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (fn, line, name), value in ranked:
        short = fn.split("site-packages/")[-1].split("plugins/plugin_utils/")[-1]
        lines.append(f"{value[2]:7.3f}s {value[1]:>9} calls  {short}:{line}({name})")
    lines.append("```")
    return "\n".join(lines)


# -- commands ----------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), kernel {platform.release()}, "
        f"Python {platform.python_version()}, {ssh}"
    )


def core_version() -> str:
    """The commit, plus a digest of plugins/plugin_utils as it is on disk (it may be dirty)."""
    import hashlib

    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    digest = hashlib.sha1()
    for path in sorted((REPO / "plugins" / "plugin_utils").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{head} plugin_utils sha1 {digest.hexdigest()[:12]}"


def rev_parse(rev: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"--baseline {rev}: not a git revision of {REPO}")
    return result.stdout.strip()


def export_baseline(rev: str) -> Path:
    """The plugins of git revision `rev` as a collections root (in a temporary directory
    removed at exit), for the `baseline` peer."""
    commit = rev_parse(rev)
    root = Path(tempfile.mkdtemp(prefix="pstest-baseline-"))
    atexit.register(shutil.rmtree, root, True)
    target = root / "ansible_collections" / "pipelined" / "sftp"
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "plugins"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return root


def byte_compile(collections: Path) -> None:
    """Write the bytecode caches of the collection under `collections`, as an installed
    package has them: the workers import the core from them instead of compiling ~30 ms
    of source each run (which they would where PYTHONDONTWRITEBYTECODE is set, as on the
    machines these figures come from)."""
    import compileall

    plugins = (collections / "ansible_collections" / "pipelined" / "sftp" / "plugins").resolve()
    compileall.compile_dir(plugins, quiet=1)


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in allowed:
            raise SystemExit(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return items


def cmd_run(args: argparse.Namespace) -> None:
    rtts = [-1.0 if x.strip() == "direct" else float(x) for x in args.rtt.split(",")]
    scenarios = [
        scenario(n, args.quick) for n in parse_list(args.scenario, ALL_SCENARIOS, "scenario")
    ]
    ops = parse_list(args.ops, ALL_OPS, "op")
    peers = (
        parse_list(args.peers, (*ALL_PEERS, *REMOVE_PEERS), "peer")
        if args.peers
        else [*DEFAULT_PEERS, *REMOVE_PEERS]
    )
    baseline = None
    if args.baseline:
        baseline = export_baseline(args.baseline)
        byte_compile(baseline)
        peers.append(BASELINE)
    byte_compile(COLLECTIONS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sink = Path(args.out) if args.out else RESULTS / time.strftime("run-%Y%m%d-%H%M%S.jsonl")
    command = "python bench/core_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with open(sink, "a") as f:
        f.write(
            json.dumps(
                {
                    "command": command,
                    "machine": machine(),
                    "core": core_version(),
                    "baseline": args.baseline and rev_parse(args.baseline),
                    "plain_shell": args.plain_shell,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            + "\n"
        )
    print(f"# {command}\n# {machine()}\n# results -> {sink}", flush=True)
    rows: list[Row] = []
    server = SSHDServer(log_level="ERROR", plain_shell=args.plain_shell)
    server.start()
    try:
        for rtt in rtts:
            with latency_proxy(server.port, rtt) as (port, proxy_pid):
                bench = Bench(server, port, rtt, args.quick, args.timeout, proxy_pid, baseline)
                for sc in scenarios:
                    run_scenario(bench, sc, ops, peers, rows, sink, args.repeat)
    finally:
        server.stop()
    print()
    print(render(rows))


def render(rows: list[Row]) -> str:
    """Markdown tables: one per (scenario, op); rows are tools, columns round trips."""
    out: list[str] = []
    keys = sorted(
        {(r.scenario, r.op, r.quick) for r in rows},
        key=lambda k: (
            ALL_SCENARIOS.index(k[0]) if k[0] in ALL_SCENARIOS else 9,
            ALL_OPS.index(k[1]),
            k[2],
        ),
    )
    for sc, op, quick in keys:
        sel = [r for r in rows if (r.scenario, r.op, r.quick) == (sc, op, quick)]
        rtts = sorted({r.rtt_ms for r in sel})
        peers: list[str] = []
        for r in sel:
            if r.peer not in peers:
                peers.append(r.peer)
        peers.sort(key=lambda p: p != "core")
        any_row = sel[0]
        head = (
            f"**{sc}, {op}**{' (quick)' if quick else ''}: {any_row.files} files, "
            f"{any_row.bytes / MIB:.1f} MiB. Seconds (core / peer)."
        )
        out += [
            head,
            "",
            "| tool | " + " | ".join(rtt_label(x) for x in rtts) + " |",
            "|---|" + "---:|" * len(rtts),
        ]
        for peer in peers:
            cells = []
            for rtt in rtts:
                match = [r for r in sel if r.peer == peer and r.rtt_ms == rtt]
                if not match:
                    cells.append("–")
                    continue
                r = pick(match)  # type: ignore[assignment]
                if not r.ok:
                    cells.append("failed" if "timeout" not in r.error else "timeout")
                    continue
                core = core_time(r, rows)
                cell = f"{r.seconds:.2f}"
                if peer != "core" and core and r.seconds:
                    cell += f" ({core / r.seconds:.2f}x)"
                elif peer == "core" and r.op != "remove" and r.seconds and r.bytes > 50 * MIB:
                    cell += f" [{r.bytes / MIB / r.seconds:.0f} MiB/s]"
                cells.append(cell)
            out.append(f"| {peer} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def cmd_report(args: argparse.Namespace) -> None:
    """Tables per invocation (ratios only ever against the core of the same invocation)."""
    runs: list[tuple[dict[str, Any], list[Row]]] = []
    for name in args.files:
        for line in Path(name).read_text().splitlines():
            data = json.loads(line)
            if "peer" in data:
                if not runs:
                    runs.append(({}, []))
                runs[-1][1].append(Row(**data))
            else:
                runs.append((data, []))
    for header, rows in runs:
        if not rows:
            continue
        if header:
            print(f"Command (started {header.get('started', '?')}):\n")
            print(f"    {header['command']}\n")
        print(render(rows))


def cmd_profile(args: argparse.Namespace) -> None:
    sc = scenario(args.scenario, args.quick)
    src = make_tree(sc)
    files, size = tree_size(src)
    warm(src)
    byte_compile(COLLECTIONS)
    dest = sc.root / "work" / "dest"
    server = SSHDServer(log_level="ERROR", plain_shell=args.plain_shell)
    server.start()
    try:
        with latency_proxy(server.port, args.rtt) as (port, _pid):
            bench = Bench(server, port, args.rtt, args.quick, args.timeout)
            results = {}
            for profiled in (False, True):
                clean(dest)
                job = bench.job("core", args.op, str(src), str(dest))
                stats = Path(tempfile.gettempdir()) / f"core-{sc.name}-{args.op}.pstats"
                if profiled:
                    job["profile"] = str(stats)
                secs, cpu, err = run_worker(job, args.timeout)
                if err:
                    raise SystemExit(f"core run failed: {err}")
                results[profiled] = (secs, cpu, stats)
            clean(dest)
    finally:
        server.stop()
    secs, cpu, _stats = results[False]
    assert secs is not None and cpu is not None
    print(
        f"### core {args.op}, {sc.name} ({files} files, {size / MIB:.1f} MiB), "
        f"{args.rtt:g} ms RTT\n"
    )
    print(
        f"Unprofiled: wall {secs:.2f} s, client CPU {cpu:.2f} s = "
        f"{1e6 * cpu / max(files, 1):.0f} µs per file, "
        f"{1e3 * cpu / max(size / MIB, 1e-9):.2f} ms per MiB; "
        f"{files / secs:.0f} files/s, {size / MIB / secs:.1f} MiB/s\n"
    )
    psecs, pcpu, stats = results[True]
    assert psecs is not None and pcpu is not None
    print(
        summarize_profile(
            stats, f"cProfile of the same run ({stats})", files, size, psecs, pcpu, args.top
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="time the core and the peers")
    run.add_argument(
        "--rtt",
        default="0,10,50",
        help="round trips in ms (default 0,10,50); 'direct' skips the proxy",
    )
    run.add_argument(
        "--scenario",
        default="small,small-shm,medium,large",
        help=f"comma list of {', '.join(ALL_SCENARIOS)}",
    )
    run.add_argument("--ops", default="push,pull,remove", help="comma list of push,pull,remove")
    run.add_argument(
        "--peers",
        default="",
        help=f"comma list of {', '.join((*ALL_PEERS, *REMOVE_PEERS))} "
        "(the core always runs); default: all but scp-legacy",
    )
    run.add_argument(
        "--quick", action="store_true", help="1,000 small files, 100 medium, 2 x 128 MiB large"
    )
    run.add_argument("--repeat", type=int, default=1, help="runs per tool; tables show medians")
    run.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the core of git revision REV (peer 'baseline'), for a same-run A/B",
    )
    run.add_argument("--timeout", type=float, default=RUN_TIMEOUT, help="seconds per run")
    run.add_argument(
        "--plain-shell",
        action="store_true",
        help="sessions start with an empty HOME: the target's shell reads no ~/.bashrc",
    )
    run.add_argument(
        "--out", help="JSON lines file to append to (default bench/results/run-*.jsonl)"
    )
    run.set_defaults(func=cmd_run)
    prof = sub.add_parser("profile", help="cProfile the core on one scenario")
    prof.add_argument("--scenario", default="small-shm", choices=ALL_SCENARIOS)
    prof.add_argument("--op", default="push", choices=("push", "pull"))
    prof.add_argument("--rtt", type=float, default=0.0)
    prof.add_argument("--quick", action="store_true")
    prof.add_argument("--top", type=int, default=25)
    prof.add_argument("--timeout", type=float, default=RUN_TIMEOUT)
    prof.add_argument("--plain-shell", action="store_true")
    prof.set_defaults(func=cmd_profile)
    rep = sub.add_parser("report", help="Markdown tables from result files")
    rep.add_argument("files", nargs="+")
    rep.set_defaults(func=cmd_report)
    wk = sub.add_parser("worker", help=argparse.SUPPRESS)
    wk.add_argument("job")
    wk.set_defaults(func=lambda a: worker(json.loads(a.job)))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
