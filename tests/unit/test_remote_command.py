"""remote_command.py against real servers: stdin sent behind the exec request, output, status."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ansible_collections.pipelined.sftp.plugins.plugin_utils.connect import open_session
from ansible_collections.pipelined.sftp.plugins.plugin_utils.remote_command import (
    PAUSE_AT,
    CommandError,
    RemoteCommand,
)
from tests.fixtures.asyncssh_server import AsyncSSHServer
from tests.fixtures.latency_proxy import latency_proxy_thread
from tests.fixtures.sshd import SSHDServer
from tests.unit.core_helpers import Target, spec_for

pytestmark = pytest.mark.timeout(120)
pytest_plugins = ("tests.unit.core_fixtures",)


async def _run(remote: RemoteCommand, stdin: bytes | None) -> tuple[int, bytes, bytes]:
    if stdin is not None:
        remote.write(stdin)
        remote.write_eof()
    out, err = bytearray(), bytearray()
    while True:
        name, data, status = await remote.read_event()
        if name == "exit":
            return status, bytes(out), bytes(err)
        (out if name == "stdout" else err).extend(data)


async def test_stdin_and_output_and_status(target: Target) -> None:
    session = await open_session(target.spec)
    try:
        data = os.urandom(3 * 1024 * 1024 + 17)  # more than one channel window
        remote = await RemoteCommand.start(session.conn, "cat; echo to-stderr >&2; exit 3")
        try:
            rc, out, err = await _run(remote, data)
        finally:
            remote.close()
        assert (rc, err) == (3, b"to-stderr\n")
        assert out == data
    finally:
        await session.aclose()


async def test_large_output_read_slowly_arrives_whole(target: Target) -> None:
    """Reading paused at PAUSE_AT resumes as the reader catches up; nothing is lost."""
    size = 4 * PAUSE_AT + 5
    session = await open_session(target.spec)
    try:
        remote = await RemoteCommand.start(session.conn, f"head -c {size} /dev/zero")
        try:
            await asyncio.sleep(0.5)  # let output pile up to the pause point
            rc, out, _err = await _run(remote, None)
        finally:
            remote.close()
        assert rc == 0
        assert out == b"\0" * size
    finally:
        await session.aclose()


def test_stdin_leaves_before_the_exec_reply(sshd_server: SSHDServer, tmp_path: Path) -> None:
    """start() returns with the exec request unanswered, and input sent then is not lost."""

    async def scenario(port: int) -> tuple[bool, tuple[int, bytes, bytes]]:
        endpoint = sshd_server.endpoint().via(port, tmp_path / "known_hosts")
        session = await open_session(spec_for(endpoint))
        try:
            remote = await RemoteCommand.start(session.conn, "tr a-z A-Z")
            try:
                answered_at_start = remote.confirmed
                return answered_at_start, await _run(remote, b"early input\n")
            finally:
                remote.close()
        finally:
            await session.aclose()

    with latency_proxy_thread(sshd_server.port, rtt=0.2) as proxy:
        answered_at_start, result = asyncio.run(scenario(proxy.port))
    assert answered_at_start is False
    assert result == (0, b"EARLY INPUT\n", b"")


def test_refused_exec_is_a_clear_error(core_asyncssh: AsyncSSHServer) -> None:
    async def scenario() -> str:
        session = await open_session(spec_for(core_asyncssh.endpoint()))
        try:
            remote = await RemoteCommand.start(session.conn, "echo never")
            try:
                with pytest.raises(CommandError) as caught:
                    await _run(remote, b"ignored input")
                return str(caught.value)
            finally:
                remote.close()
        finally:
            await session.aclose()

    core_asyncssh.refuse_exec = True
    try:
        message = asyncio.run(scenario())
    finally:
        core_asyncssh.refuse_exec = False
    assert message == "Session request failed"
