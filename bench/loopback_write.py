"""The floor under a websocket fan-out on this machine: one ``send`` system call per connection.

Run from the repository root::

    .venv/bin/python bench/loopback_write.py            # 1,000 loopback TCP connections

A reader process (pinned to CPU 1, uvloop, discarding what arrives) accepts N connections; this
process (pinned to CPU 0, as ``bench/ws_fanout.py`` pins the hub) writes a 330-byte payload to
each of them, one ``socket.send`` per connection, 100 times: back to back ("burst") and every
20 ms ("paced", as a fan-out at 50 events/s would). It prints how long one pass over all
connections takes. On loopback the sender's call also pays for the receiver's TCP work and
wake-up, so this is the least a server can spend per connection and frame, with no Python
websocket code at all: the baseline that ``realtime/connection.py``'s flush is compared to.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Sequence
from multiprocessing.synchronize import Event as EventType

PAYLOAD = b"x" * 330


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


def reader(port: int, ready: EventType) -> None:
    import uvloop

    pin(1)

    class Discard(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            pass

    async def serve() -> None:
        await asyncio.get_running_loop().create_server(Discard, "127.0.0.1", port, backlog=4096)
        ready.set()
        await asyncio.sleep(3600)

    uvloop.run(serve())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=100)
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from app.devredis import free_port

    port = free_port()
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=reader, args=(port, ready), daemon=True)
    process.start()
    ready.wait(30)
    pin(0)
    sockets = []
    try:
        for _ in range(args.connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            sockets.append(sock)
        time.sleep(0.5)
        print(f"one send per connection, {args.connections:,} loopback connections, {len(PAYLOAD)}-byte payload")
        print("| mode | pass p50 | pass p90 | pass max | per connection (p50) |")
        print("|---|---:|---:|---:|---:|")
        for mode in ("burst", "paced"):
            passes = []
            for _ in range(args.passes):
                started = time.perf_counter()
                for sock in sockets:
                    sock.send(PAYLOAD)
                passes.append(time.perf_counter() - started)
                if mode == "paced":
                    time.sleep(0.02)
            passes.sort()
            p50, p90 = passes[len(passes) // 2], passes[int(len(passes) * 0.9)]
            per = p50 / args.connections * 1e6
            print(f"| {mode} | {p50 * 1e3:.2f} ms | {p90 * 1e3:.2f} ms | {passes[-1] * 1e3:.2f} ms | {per:.1f} us |")
    finally:
        for sock in sockets:
            sock.close()
        process.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
