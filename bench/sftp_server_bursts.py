"""What a burst of small requests costs OpenSSH's sftp-server, without SSH in between.

sftp-server reads up to 16 KiB of input per turn of its loop but handles one request per
turn, so a burst of small requests piles up in its input buffer, which it grows in small
steps, each a copy of the whole buffer. This sends N WRITEs of SIZE bytes to one file
over pipes, either all at once or STEP at a time (each step waits for its replies), and
prints the wall time and the server's CPU time.

    python bench/sftp_server_bursts.py 2000 8192 0      # one burst
    python bench/sftp_server_bursts.py 2000 8192 32     # 32 requests at a time

Measured in docs/performance.md ("Summary (eighth session…)").
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def _packet(ptype: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, ptype) + body


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _read_replies(reply: Callable[[], bytes], count: int) -> None:
    for _answer in range(count):
        reply()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="WRITE requests")
    parser.add_argument("size", type=int, help="bytes per WRITE")
    parser.add_argument("step", type=int, help="requests per step (0: all in one burst)")
    parser.add_argument("--server", default=SFTP_SERVER)
    args = parser.parse_args()
    server = subprocess.Popen(
        [args.server], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    stdin, stdout = server.stdin, server.stdout
    if stdin is None or stdout is None:
        raise SystemExit("could not start sftp-server")

    def reply() -> bytes:
        header = stdout.read(4)
        while len(header) < 4:
            header += stdout.read(4 - len(header))
        length = struct.unpack(">I", header)[0]
        body = b""
        while len(body) < length:
            body += stdout.read(length - len(body))
        return body

    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        stdin.write(_packet(1, struct.pack(">I", 3)))  # INIT
        reply()
        path = os.path.join(scratch, "target").encode()
        stdin.write(_packet(3, struct.pack(">I", 1) + _string(path) + struct.pack(">II", 0x1A, 0)))
        answer = reply()
        handle = answer[9 : 9 + struct.unpack(">I", answer[5:9])[0]]
        data = b"x" * args.size
        writes = [
            _packet(
                6,
                struct.pack(">I", 10 + i)
                + _string(handle)
                + struct.pack(">Q", i * args.size)
                + _string(data),
            )
            for i in range(args.count)
        ]
        step = args.step or args.count
        started = time.perf_counter()
        for first in range(0, args.count, step):
            batch = writes[first : first + step]
            reader = threading.Thread(target=_read_replies, args=(reply, len(batch)))
            reader.start()
            stdin.write(b"".join(batch))
            reader.join()
        seconds = time.perf_counter() - started
        with open(f"/proc/{server.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        stdin.close()
        server.wait()
    print(
        f"{args.count} WRITEs of {args.size} bytes, {step} at a time: "
        f"{seconds * 1000:.0f} ms, sftp-server CPU {cpu * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
