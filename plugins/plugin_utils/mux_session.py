"""The persistent connection seen from asyncio code: commands, SFTP channels, file copies.

The async side of ``mux_client``: core sessions for actions (``MuxSession``), the ``exec``
stream (``MuxExec``) and whole-file copies done by the process (``transfer``). Loaded only
when a task moves files or an action runs the core, never for a plain command.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ansible_collections.pipelined.sftp.plugins.plugin_utils import mux_proto as mp
from ansible_collections.pipelined.sftp.plugins.plugin_utils.mux_client import (
    MuxError,
    cannot_reach,
    exec_event,
    refusal,
    stdin_frames,
)
from ansible_collections.pipelined.sftp.plugins.plugin_utils.spec import (
    BecomeSpec,
    ConnectionSpec,
)

if TYPE_CHECKING:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient


async def _request(
    path: str, request: dict[str, Any], info: dict[str, Any] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=4 * mp.CHUNK)
    except OSError as exc:
        raise cannot_reach(path, exc) from None
    writer.write(mp.json_frame(mp.REQUEST, request))
    got = await mp.read_frame(reader)
    if got is None:
        writer.close()
        raise MuxError(f"The persistent connection at {path} closed the request.", "unreachable")
    kind, payload = got
    if kind != mp.OK:
        writer.close()
        raise refusal(payload, "The persistent connection refused the request: ")
    if info is not None and payload:
        info.update(mp.parse_json(payload))
    return reader, writer


async def transfer(path: str, op: str, src: str, dest: str) -> None:
    """Have the persistent process copy one file (``op`` "put": local src to remote dest,
    "get": remote src to local dest), reading or writing the local file itself.

    Raises mux_files.TransferError when the copy fails, MuxError when the process does.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError as exc:
        raise cannot_reach(path, exc) from None
    try:
        writer.write(mp.json_frame(mp.REQUEST, {"op": op, "src": src, "dest": dest}))
        got = await mp.read_frame(reader)
    finally:
        writer.close()
    if got is None:
        raise MuxError(
            f"The persistent connection at {path} closed during the transfer.", "unreachable"
        )
    kind, payload = got
    if kind != mp.OK:
        raise refusal(payload)


class MuxExec:
    """One remote command through the persistent connection, read as a stream of events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def start(cls, path: str, command: str, become: BecomeSpec | None = None) -> MuxExec:
        """Start ``command`` (under ``become`` when given: then it runs once stdin ends)."""
        request: dict[str, Any] = {"op": "exec", "command": command}
        if become is not None:
            request["become"] = dataclasses.asdict(become)
        reader, writer = await _request(path, request)
        return cls(reader, writer)

    def write(self, data: bytes) -> None:
        self._writer.write(stdin_frames(data))

    def write_eof(self) -> None:
        self._writer.write(mp.frame(mp.EOF))

    async def drain(self) -> None:
        await self._writer.drain()

    async def read_event(self) -> tuple[str, bytes, int]:
        """Next ("stdout"|"stderr", data, 0) or ("exit", b"", exit status)."""
        got = await mp.read_frame(self._reader)
        if got is None:
            raise MuxError(
                "The persistent connection closed while a command was running.", "unreachable"
            )
        return exec_event(*got)

    def close(self) -> None:
        self._writer.close()


@dataclass(frozen=True)
class ExecResult:
    """Exit status and output of one remote command (as connect.ExecResult)."""

    rc: int
    stdout: bytes
    stderr: bytes


async def open_sftp_streams(
    path: str,
    command: str | None = None,
    info: dict[str, Any] | None = None,
    become: BecomeSpec | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw byte pipe to a new SFTP channel of the persistent connection at ``path``.

    ``info`` receives what the connection process says of the server (server_version).
    With ``become`` the process runs sftp-server under sudo and does the SFTP handshake
    itself: ``info`` then also holds its sftp_version and extensions (hex), and the
    client adopts the session instead of starting it.
    """
    request: dict[str, Any] = {"op": "sftp"}
    if command is not None:
        request["command"] = command
    if become is not None:
        request["become"] = dataclasses.asdict(become)
    return await _request(path, request, info)


# --------------------------------------------------------------------------- core sessions


async def collect(channel: Any, stdin: bytes | None) -> ExecResult:
    """Feed ``stdin`` to a started command and gather all its output."""
    if stdin:
        channel.write(stdin)
    channel.write_eof()
    await channel.drain()
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        while True:
            name, data, rc = await channel.read_event()
            if name == "exit":
                return ExecResult(rc, b"".join(out), b"".join(err))
            (out if name == "stdout" else err).append(data)
    finally:
        channel.close()


async def _start_sftp(reader: Any, writer: Any, server_version: str) -> SFTPClient:
    from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import (
        SFTPClient,
        answers_in_order,
    )

    client = SFTPClient(
        reader,
        writer,
        nonstandard_symlink="OpenSSH" in server_version,
        ordered=answers_in_order(server_version),
    )
    try:
        await client.start()
    except BaseException:
        writer.close()
        raise
    return client


class MuxSession:
    """A core Session whose channels come from the persistent connection process.

    Holds nothing but the socket path, so it works from any event loop and process. With
    ``spec.become`` set, the process runs SFTP channels and commands under sudo on its own
    connection (the become password travels over the private unix socket, never argv).
    """

    def __init__(self, spec: ConnectionSpec, path: str) -> None:
        self.spec = spec
        self.path = path

    async def open_sftp(self, *, early: bool = False) -> SFTPClient:
        """A new started SFTP client on its own channel (`early` changes nothing here: the
        persistent connection process starts the session)."""
        info: dict[str, Any] = {}
        become = self.spec.become
        reader, writer = await open_sftp_streams(self.path, info=info, become=become)
        if become is None:
            return await _start_sftp(reader, writer, str(info.get("server_version", "")))
        from ansible_collections.pipelined.sftp.plugins.plugin_utils.protocol import SFTPClient

        # sftp-server under sudo is OpenSSH's: in-order replies, swapped symlink arguments
        client = SFTPClient(reader, writer, nonstandard_symlink=True, ordered=True)
        try:
            extensions = {
                bytes.fromhex(name): bytes.fromhex(value)
                for name, value in dict(info.get("extensions") or {}).items()
            }
            client.adopt(int(info.get("sftp_version") or 3), extensions)
        except (TypeError, ValueError):
            writer.close()
            raise MuxError("The persistent connection sent an invalid SFTP handshake.") from None
        return client

    async def exec(self, command: str, stdin: bytes | None = None) -> ExecResult:
        """Run ``command`` and return its exit status and output."""
        return await collect(await MuxExec.start(self.path, command, self.spec.become), stdin)

    async def aclose(self) -> None:
        """Nothing to release: channels close with their clients, the connection stays."""
