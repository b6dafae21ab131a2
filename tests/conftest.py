"""Shared pytest fixtures: real SSH servers, latency proxy, test trees, inventories.

Async fixtures need pytest-asyncio in auto mode (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (_REPO_ROOT / ".work" / "collections", _REPO_ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(_REPO_ROOT / ".work" / "collections"))

from tests.fixtures.asyncssh_server import AsyncSSHServer, asyncssh_server_thread  # noqa: E402
from tests.fixtures.endpoint import Endpoint  # noqa: E402
from tests.fixtures.latency_proxy import LatencyProxy, latency_proxy_thread  # noqa: E402
from tests.fixtures.sshd import SSHDServer, ensure_user  # noqa: E402
from tests.fixtures.trees import TreeInfo, generate  # noqa: E402


@pytest.fixture
async def asyncssh_server() -> AsyncIterator[AsyncSSHServer]:
    """An asyncssh SSH/SFTP server on the test's event loop, SFTP rooted in a fresh directory."""
    server = AsyncSSHServer(password=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def asyncssh_server_threaded() -> Iterator[AsyncSSHServer]:
    """An asyncssh SSH/SFTP server on its own loop in a thread; usable from any test."""
    with asyncssh_server_thread(password=True) as server:
        yield server


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SSHDServer]:
    """A private OpenSSH sshd (with sftp-server) on a spare loopback port, as the current user."""
    server = SSHDServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sshd_unprivileged(sshd_server: SSHDServer) -> Endpoint:
    """The sshd server reached as the unprivileged user ``pstest``, who has passwordless sudo."""
    if os.geteuid() != 0:
        pytest.skip("creating the unprivileged test user needs root")
    ensure_user("pstest")
    return sshd_server.endpoint("pstest")


@pytest.fixture
def latency_proxy() -> Iterator[Callable[..., LatencyProxy]]:
    """Factory ``make(target_port, rtt=0.05, **kw)`` for latency proxies in background threads."""
    with contextlib.ExitStack() as stack:

        def make(target_port: int, rtt: float = 0.05, **kwargs: Any) -> LatencyProxy:
            return stack.enter_context(latency_proxy_thread(target_port, rtt=rtt, **kwargs))

        yield make


@pytest.fixture
def tree_factory(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make(shape, seed=0, name=None, **params) -> root`` writing trees under tmp_path."""
    counter = 0

    def make(shape: str, seed: int = 0, name: str | None = None, **params: int) -> Path:
        nonlocal counter
        counter += 1
        root = tmp_path / (name or f"tree-{shape}-{seed}-{counter}")
        info: TreeInfo = generate(shape, root, seed, **params)
        assert info.root == os.fsencode(root)
        return root

    return make
