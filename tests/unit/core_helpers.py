"""Helpers for the transfer-core tests (tests/unit/test_core_*.py).

The fixtures that yield a :class:`Target` and a session live in core_fixtures.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient
from ansible_collections.pipelined.sftp.plugins.plugin_utils.report import Report
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import ConnectionSpec
from tests.fixtures.asyncssh_server import RequestStats
from tests.fixtures.endpoint import Endpoint

SERVERS = ("sshd", "asyncssh")


def spec_for(endpoint: Endpoint) -> ConnectionSpec:
    """A strict-host-key connection spec reaching ``endpoint`` with its client key."""
    return ConnectionSpec(
        host=endpoint.host,
        port=endpoint.port,
        user=endpoint.username,
        client_keys=(str(endpoint.client_key),),
        known_hosts=str(endpoint.known_hosts),
    )


@dataclass
class Target:
    """One server plus a fresh scratch directory on it for one test."""

    name: str
    endpoint: Endpoint
    remote: str
    """The scratch directory as the SFTP client names it."""
    local: Path
    """The same directory on this machine."""
    stats: RequestStats | None
    """Request counters (the asyncssh server only)."""

    @property
    def spec(self) -> ConnectionSpec:
        return spec_for(self.endpoint)

    def rpath(self, *parts: str) -> str:
        """A remote path below the scratch directory."""
        return "/".join([self.remote.rstrip("/"), *parts])

    def lpath(self, *parts: str) -> Path:
        """The local path of rpath(*parts)."""
        return self.local.joinpath(*parts)


# -- local trees -------------------------------------------------------------------------

FIXED_MTIME = 1_600_000_000


def write_file(
    path: Path | bytes, data: bytes, mode: int = 0o644, mtime: int = FIXED_MTIME
) -> None:
    """Create a file with exact content, mode and mtime (parents created)."""
    p = os.fsencode(path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as handle:
        handle.write(data)
    os.chmod(p, mode)
    os.utime(p, (mtime, mtime))


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes of ``size`` (cheap to make)."""
    block = bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    out = (block * (size // len(block) + 1))[:size]
    return out


def set_tree_times(root: Path, mtime: int = FIXED_MTIME) -> None:
    """Set every directory's mtime (bottom up) so directory times are comparable."""
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        os.utime(dirpath, (mtime, mtime))


def failures(report: Report) -> list[tuple[str, str]]:
    return [(f.path, f.reason) for f in report.failures]


def leftovers(root: Path) -> list[str]:
    """Temporary transfer names (``.pipelined.*``) anywhere under ``root``."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            if name.startswith(".pipelined."):
                found.append(os.path.join(dirpath, name))
    return found


class HookedSession:
    """A real session whose new SFTP clients are handed to ``hook`` before use.

    The hook may wrap a client's request methods (instance attributes) to act at an exact
    moment of a transfer, e.g. change a source file after its first WRITE was issued.
    Every request still goes to the real server.
    """

    def __init__(self, inner: Any, hook: Callable[[SFTPClient], None]) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.hook = hook

    async def open_sftp(self, *, early: bool = False) -> SFTPClient:
        client: SFTPClient = await self.inner.open_sftp(early=early)
        self.hook(client)
        return client

    async def exec(self, command: str, stdin: bytes | None = None) -> Any:
        return await self.inner.exec(command, stdin)

    async def aclose(self) -> None:
        """The wrapped session is closed by its own fixture."""


def first_string(payload: bytes | list[bytes]) -> bytes:
    """The first SFTP string of a request payload: the path of an OPEN, the handle of a
    READ or WRITE."""
    data = payload if isinstance(payload, bytes) else b"".join(payload)
    length = int.from_bytes(data[:4], "big")
    return data[4 : 4 + length]


def snapshot(root: Path) -> dict[bytes, tuple[int, int, int, bytes]]:
    """(mode, size, mtime_ns, content or link target) of every entry below root."""
    out: dict[bytes, tuple[int, int, int, bytes]] = {}
    base = os.fsencode(root)
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                body = os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    body = handle.read()
            else:
                body = b""
            out[os.path.relpath(path, base)] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return out
