"""The latency proxy adds the configured round trip and does not throttle a stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures import REPO_ROOT
from tests.fixtures.latency_proxy import LatencyProxy, latency_proxy_thread
from tests.fixtures.sshd import SSHDServer

STREAM_SIZE = 64 * 1024 * 1024
MIN_ROUNDS, MAX_ROUNDS, MAX_SECONDS = 4, 16, 60.0  # interleaved throughput measurements


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
        for _round in range(rounds):
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


@contextlib.contextmanager
def _proxy_process(target_port: int, rtt_ms: float) -> Iterator[int]:
    """The proxy's command line in its own process (as the benchmark runs it); yields its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.latency_proxy",
         "--target", f"127.0.0.1:{target_port}", "--rtt-ms", str(rtt_ms)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port="), line
        yield int(line.split()[0].removeprefix("port="))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


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
        # best of several, interleaved: the machine is shared, and a single run measures
        # whatever else runs at that moment. At least MIN_ROUNDS; under load, more rounds
        # (bounded in count and time) until the best runs show what the proxy can do. A
        # proxy that throttles a delayed stream (a window far below the bandwidth-delay
        # product) stays far below the bar however often it is measured.
        direct = relayed = delayed = 0.0
        rounds = 0
        deadline = time.monotonic() + MAX_SECONDS
        with _proxy_process(port, 0) as relay_port, _proxy_process(port, 50) as delay_port:
            while rounds < MAX_ROUNDS:
                rounds += 1
                direct = max(direct, _throughput(sink, port))
                relayed = max(relayed, _throughput(sink, relay_port))
                delayed = max(delayed, _throughput(sink, delay_port))
                enough = delayed >= 0.5 * relayed and delayed >= 200e6
                if (rounds >= MIN_ROUNDS and enough) or time.monotonic() > deadline:
                    break
    finally:
        if sink.stdin is not None:
            sink.stdin.close()
        sink.wait(timeout=10)
        if sink.stdout is not None:
            sink.stdout.close()
    report = f"direct {direct / 1e6:.0f} MB/s, relayed {relayed / 1e6:.0f} MB/s, "
    report += f"50 ms {delayed / 1e6:.0f} MB/s (best of {rounds} rounds)"
    print(report)
    # the delay must not cost throughput: half of what the same relay does without delay
    assert delayed >= 0.5 * relayed, report
    # a userspace relay does twice the kernel copying on 2 shared cores, so raw loopback
    # (reported above) is out of reach; it must stay far above what one SSH connection
    # moves (scp ~140 MB/s here)
    assert delayed >= 200e6, report


async def test_threaded_proxy_relays(echo_port: int) -> None:
    """The in-thread variant, for sync callers, relays both ways."""

    def exchange(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"x" * 100_000)
            got = b""
            while len(got) < 100_000:
                got += sock.recv(65536)
            return got

    with latency_proxy_thread(echo_port, rtt=0.01) as proxy:
        # the echo server runs on this test's loop: block in a worker thread
        assert await asyncio.to_thread(exchange, proxy.port) == b"x" * 100_000
        assert proxy.connections == 1


@pytest.mark.latency
@pytest.mark.sshd
def test_real_ssh_through_the_proxy(
    sshd_server: SSHDServer, latency_proxy: Callable[..., LatencyProxy], tmp_path: Path
) -> None:
    proxy = latency_proxy(sshd_server.port, rtt=0.05)
    endpoint = sshd_server.endpoint().via(proxy.port, tmp_path / "known_hosts")
    started = time.monotonic()
    result = subprocess.run(
        ["ssh", *endpoint.ssh_options(), "-p", str(endpoint.port),
         f"{endpoint.username}@{endpoint.host}", "echo through"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.stdout == "through\n", result.stderr
    # version exchange, key exchange, auth, session and command each pay the round trip
    assert elapsed >= 4 * 0.05, elapsed
    assert proxy.connections == 1
