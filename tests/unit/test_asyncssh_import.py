"""The core imports asyncssh without running a compiler to look for liboqs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import ctypes.util, json, os, sys
sys.path.insert(0, sys.argv[1])
run = []

def record(event, args):
    if event == "subprocess.Popen":
        run.append(os.path.basename(str(args[0])))

sys.addaudithook(record)
original = ctypes.util.find_library
from ansible_collections.pipelined.sftp.plugins.plugin_utils import connect
import asyncssh.crypto.umac as umac
print(json.dumps({
    "run": run,
    "restored": ctypes.util.find_library is original,
    "nettle": umac._nettle_lib,
    "nettle_now": ctypes.util.find_library("nettle"),
}))
"""


def _collections_root() -> Path:
    root = REPO / ".work" / "collections"
    assert (root / "ansible_collections" / "pipelined" / "sftp").exists(), root
    return root


def test_import_reads_ldconfig_cache_only() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(_collections_root())],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["run"], "asyncssh's library lookups ran nothing: the probe saw no ldconfig"
    assert set(seen["run"]) == {"ldconfig"}, seen["run"]
    assert seen["restored"]
    # A library in ldconfig's cache is found as the full lookup finds it.
    assert seen["nettle"] == seen["nettle_now"]
