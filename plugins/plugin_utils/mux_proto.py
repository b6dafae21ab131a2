"""Wire format between the connection plugin and its persistent connection process.

Every message is a frame: one type byte, a 4-byte big-endian length, the payload.
A client opens one unix-socket connection per operation and sends one REQUEST frame
(JSON). For ``exec`` both sides then exchange STDIN/EOF and STDOUT/STDERR/EXIT frames;
for ``sftp`` the socket turns into a raw byte pipe to a new SFTP channel after OK.

Nothing here imports Ansible.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio loads on first async use: a task's worker may never need it
    import asyncio

REQUEST = 1
STDIN = 2
EOF = 3
STDOUT = 4
STDERR = 5
EXIT = 6
ERROR = 7
OK = 8

HEADER = struct.Struct(">BI")
MAX_FRAME = 64 * 1024 * 1024
"""Largest payload a peer accepts; a bigger length means a broken or hostile peer."""
CHUNK = 256 * 1024
"""Largest payload this side sends in one data frame."""


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


def frame(kind: int, payload: bytes = b"") -> bytes:
    """Encode one frame."""
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: int, value: dict[str, Any]) -> bytes:
    """Encode one frame whose payload is a JSON object."""
    return frame(kind, json.dumps(value).encode())


def parse_json(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object payload."""
    try:
        value = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"invalid JSON frame payload: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("JSON frame payload is not an object")
    return value


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """Read one frame; None when the peer closed the stream cleanly between frames."""
    import asyncio

    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("stream ended inside a frame header") from None
    kind, length = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise ProtocolError("stream ended inside a frame payload") from None
    return kind, payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        data = sock.recv(remaining)
        if not data:
            raise ProtocolError("connection closed inside a frame")
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


def read_frame_sync(sock: socket.socket) -> tuple[int, bytes]:
    """Read one frame from a blocking socket."""
    kind, length = HEADER.unpack(_recv_exact(sock, HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return kind, _recv_exact(sock, length) if length else b""
