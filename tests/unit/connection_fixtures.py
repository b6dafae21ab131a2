"""Fixtures shared by the connection plugin's tests: a private sshd and a control directory.

Test modules load them with ``pytest_plugins = ("tests.unit.connection_fixtures",)``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_connection_support import Sshd, run_sshd, wait_gone

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_client as mux


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with run_sshd() as server:
        yield server


@pytest.fixture
def control() -> Iterator[Path]:
    """A short private control directory (unix socket paths are limited to ~100 bytes);
    every persistent process left there is stopped afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="psftp-cp-")) / "cp"
    yield directory
    for path in directory.glob("*.sock"):
        mux.stop(str(path))
    wait_gone(directory, 10)
    shutil.rmtree(directory.parent, ignore_errors=True)
