"""The latency proxy adds the configured round trip and does not throttle a stream."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from tests.fixtures.latency_proxy import LatencyProxy, latency_proxy_thread

STREAM_SIZE = 64 * 1024 * 1024


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def _median_rtt(port: int, rounds: int = 15) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            writer.write(b"p")
            await writer.drain()
            assert await reader.readexactly(1) == b"p"
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)
    finally:
        writer.close()


@pytest.mark.latency
@pytest.mark.parametrize("rtt", [0.020, 0.050])
async def test_round_trip_matches_configuration(echo_port: int, rtt: float) -> None:
    direct = await _median_rtt(echo_port, rounds=5)
    async with LatencyProxy(echo_port, rtt=rtt) as proxy:
        measured = await _median_rtt(proxy.port)
    assert abs(measured - direct - rtt) <= 0.2 * rtt, (measured, direct, rtt)


@pytest.mark.latency
async def test_half_close_and_connection_refused(echo_port: int) -> None:
    async with LatencyProxy(echo_port, rtt=0.01) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"last words")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"last words"
        writer.close()
    async with LatencyProxy(1, rtt=0.01) as dead:  # nothing listens on port 1
        reader, writer = await asyncio.open_connection("127.0.0.1", dead.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


# Sender and receiver run as separate processes so that only the proxy uses this
# process's interpreter: the measurement is the proxy's, not the GIL's.
_SINK = """
import socket, sys, time
size = int(sys.argv[1])
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
buf = bytearray(1 << 20)
for _ in sys.stdin:
    conn, _ = srv.accept()
    got, first = 0, None
    while got < size:
        n = conn.recv_into(buf)
        if not n:
            break
        first = first or time.perf_counter()
        got += n
    print(got, time.perf_counter() - first, flush=True)
    conn.sendall(b"k")
    conn.close()
"""
_SOURCE = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
block = bytes(1 << 20)
for _ in range(int(sys.argv[2]) >> 20):
    sock.sendall(block)
sock.recv(1)
"""


def _throughput(sink: subprocess.Popen[str], port: int) -> float:
    assert sink.stdin is not None and sink.stdout is not None
    sink.stdin.write("go\n")
    sink.stdin.flush()
    subprocess.run([sys.executable, "-c", _SOURCE, str(port), str(STREAM_SIZE)], check=True)
    got, seconds = sink.stdout.readline().split()
    assert int(got) == STREAM_SIZE
    return STREAM_SIZE / float(seconds)


@pytest.mark.latency
@pytest.mark.slow
def test_stream_throughput_survives_50ms() -> None:
    sink = subprocess.Popen(
        [sys.executable, "-c", _SINK, str(STREAM_SIZE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        direct = _throughput(sink, port)
        with latency_proxy_thread(port, rtt=0.0) as proxy:
            relayed = _throughput(sink, proxy.port)
        with latency_proxy_thread(port, rtt=0.050) as proxy:
            delayed = _throughput(sink, proxy.port)
    finally:
        if sink.stdin is not None:
            sink.stdin.close()
        sink.wait(timeout=10)
    report = f"direct {direct / 1e6:.0f} MB/s, relayed {relayed / 1e6:.0f} MB/s, "
    report += f"50 ms {delayed / 1e6:.0f} MB/s"
    print(report)
    # the delay must not cost throughput: half of what the same relay does without delay
    assert delayed >= 0.5 * relayed, report
    # and the relay itself stays far above what one SSH connection moves (~150 MB/s)
    assert delayed >= 0.15 * direct, report
    assert delayed >= 150e6, report
