"""Fixtures for the transfer-core tests: both real servers, a scratch directory, a session.

Every core test runs against both real servers: OpenSSH sshd (sftp-server, not chrooted)
and the in-process asyncssh server (chrooted, instrumented). Test modules load these
fixtures with ``pytest_plugins = ("tests.unit.core_fixtures",)`` and never import this
module themselves (so pytest can rewrite its asserts).

The servers start once per test session; each test gets a fresh scratch directory on the
server (:attr:`Target.remote` / :attr:`Target.local` name the same directory as the client
and as this machine see it) and a connected core session.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import (
    SSHSession,
    open_session,
)
from tests.fixtures.asyncssh_server import AsyncSSHServer, RequestStats, asyncssh_server_thread
from tests.fixtures.sshd import SSHDServer
from tests.unit.core_helpers import SERVERS, Target

SHM = Path("/dev/shm")


def _scratch_base(prefix: str) -> Path:
    """A fresh directory on tmpfs when there is one (file creation on disk is slow here)."""
    base = SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@pytest.fixture(scope="session")
def core_asyncssh() -> Iterator[AsyncSSHServer]:
    """The instrumented asyncssh server, its SFTP root on tmpfs."""
    root = _scratch_base("pstest-core-asyncssh-")
    try:
        with asyncssh_server_thread(root=root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def core_sshd_scratch() -> Iterator[Path]:
    """Where sshd tests work: sshd is not chrooted, so any local directory will do."""
    root = _scratch_base("pstest-core-sshd-")
    root.chmod(0o777)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def local_tmp() -> Iterator[Path]:
    """A fresh local directory on tmpfs, for source trees and pull destinations."""
    root = _scratch_base("pstest-core-local-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=SERVERS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each server in turn, with a fresh scratch directory that is removed afterwards."""
    name: str = request.param
    scratch = f"t-{uuid.uuid4().hex[:12]}"
    stats: RequestStats | None = None
    if name == "sshd":
        sshd: SSHDServer = request.getfixturevalue("sshd_server")  # tests/conftest.py
        base: Path = request.getfixturevalue("core_sshd_scratch")
        endpoint = dataclasses.replace(sshd.endpoint(), remote_root=str(base), local_root=base)
    else:
        bed: AsyncSSHServer = request.getfixturevalue("core_asyncssh")
        endpoint = bed.endpoint()
        stats = bed.stats
    local = endpoint.local_root / scratch
    local.mkdir()
    remote = "/".join([endpoint.remote_root.rstrip("/"), scratch])
    yield Target(name, endpoint, remote, local, stats)
    shutil.rmtree(local, ignore_errors=True)


@pytest.fixture
async def session(target: Target) -> AsyncIterator[SSHSession]:
    """A connected core session to the target's server."""
    sess = await open_session(target.spec)
    try:
        yield sess
    finally:
        await sess.aclose()
