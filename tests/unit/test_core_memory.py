"""Memory stays flat with the tree's size: it grows with the widest directory, not the count.

Each push runs in a fresh subprocess that reports its own peak RSS (ru_maxrss). Trees of
empty files on tmpfs keep it quick; sshd (sftp-server) writes them to tmpfs too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures import COLLECTIONS_PATH, REPO_ROOT
from tests.fixtures.sshd import SSHDServer
from tests.unit.core_helpers import spec_for

pytest_plugins = ("tests.unit.core_fixtures",)

PER_DIR = 100

_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys, time
    from ansible_collections.pipelined.sftp.plugins.plugin_utils import api
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.options import TransferOptions

    async def main() -> None:
        args = json.loads(sys.argv[1])
        spec = ConnectionSpec(
            host=args["host"], port=args["port"], user=args["user"],
            client_keys=(args["key"],), known_hosts=args["known_hosts"],
        )
        session = await open_session(spec)
        page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
        sampled = []

        def rss_kib() -> int:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * page_kib

        async def sample() -> None:
            while True:
                sampled.append(rss_kib())
                await asyncio.sleep(0.05)

        before = rss_kib()
        started = time.monotonic()
        try:
            sampler = asyncio.ensure_future(sample())
            report = await api.push(session, args["src"], args["dest"], TransferOptions())
            sampler.cancel()
        finally:
            await session.aclose()
        print(json.dumps({
            "files": report.files, "dirs": report.dirs, "failures": len(report.failures),
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "growth_kib": max(sampled, default=before) - before,
            "seconds": round(time.monotonic() - started, 1),
        }))

    asyncio.run(main())
    """
)


def _empty_tree(root: Path, files: int) -> None:
    """``files`` empty files in directories of PER_DIR entries."""
    root_b = os.fsencode(root)
    os.mkdir(root_b)
    for d in range(files // PER_DIR):
        directory = os.path.join(root_b, b"d%05d" % d)
        os.mkdir(directory)
        for i in range(PER_DIR):
            os.close(os.open(os.path.join(directory, b"f%03d" % i), os.O_CREAT | os.O_WRONLY))


def _push_in_child(sshd: SSHDServer, src: Path, dest: Path) -> dict[str, int]:
    spec = spec_for(sshd.endpoint())
    args = {
        "host": spec.host,
        "port": spec.port,
        "user": spec.user,
        "key": spec.client_keys[0],
        "known_hosts": spec.known_hosts,
        "src": f"{src}/",
        "dest": str(dest),
    }
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{COLLECTIONS_PATH}"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_tree(
    sshd_server: SSHDServer, core_sshd_scratch: Path
) -> None:
    sizes = (20_000, 200_000)
    peaks = {}
    for files in sizes:
        work = core_sshd_scratch / f"memory-{files}"
        work.mkdir()
        try:
            _empty_tree(work / "src", files)
            result = _push_in_child(sshd_server, work / "src", work / "dst")
            assert result["failures"] == 0
            assert result["files"] == files
            assert result["dirs"] == files // PER_DIR + 1
            peaks[files] = result["maxrss_kib"]
            print(f"push of {files} files: {result}")
        finally:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    small, big = peaks[sizes[0]], peaks[sizes[1]]
    assert big <= 1.5 * small, f"peak RSS {small} KiB ({sizes[0]} files), {big} KiB ({sizes[1]})"
