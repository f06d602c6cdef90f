"""Requests/s and client CPU per request of H2Pool, against tests/h2_test_server.py in its own process.

    .venv/bin/python benchmarks/h2pool_bench.py [--requests 20000] [--concurrency 200] [--uvloop]

The server runs in a separate process so the two do not share a core; the number that matters
for pushctl is the client's CPU time per request (``time.process_time``), which bounds the
requests/s one core can drive whatever the server's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pushctl.transport import H2Pool, make_ssl_context  # noqa: E402

HEADERS = [
    ("apns-topic", "com.example.pushctl"),
    ("apns-push-type", "alert"),
    ("authorization", "bearer " + "x" * 180),
]
BODY = b'{"aps":{"alert":{"title":"Hello","body":"A benchmark notification"}}}'


async def bench(url: str, ca: Path, total: int, concurrency: int, connections: int) -> None:
    pool = H2Pool(url, ssl_context=make_ssl_context(ca_file=ca), max_connections=connections)
    token = "ab" * 32

    async def worker(n: int) -> None:
        for _ in range(n):
            resp = await pool.request("POST", f"/3/device/{token}", HEADERS, BODY)
            assert resp.status in (200, 404)  # nghttpd has no such file

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm-up: connect, HPACK
    per = total // concurrency
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per * concurrency
    print(
        f"{done} requests, concurrency {concurrency}, {pool.stats.connections_opened} connection(s): "
        f"{done / wall:,.0f} req/s wall, client CPU {cpu / done * 1e6:.0f} µs/request "
        f"(= {done / cpu:,.0f} req/s per client core)"
    )
    await pool.close()


def uvloop_run(coro: Coroutine[Any, Any, None]) -> None:
    import uvloop

    uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--uvloop", action="store_true", help="client and server on uvloop")
    parser.add_argument("--url", help="measure against this server instead (e.g. nghttpd)")
    parser.add_argument("--ca", type=Path, help="CA file for --url")
    args = parser.parse_args()
    if args.url:
        coro = bench(args.url, args.ca, args.requests, args.concurrency, args.connections)
        uvloop_run(coro) if args.uvloop else asyncio.run(coro)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(REPO / "tests" / "h2_test_server.py"), "--cert-dir", tmp]
        cmd += ["--uvloop"] if args.uvloop else []
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            _, port, ca = server.stdout.readline().split()
            url = f"https://127.0.0.1:{port}"
            coro = bench(url, Path(ca), args.requests, args.concurrency, args.connections)
            uvloop_run(coro) if args.uvloop else asyncio.run(coro)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
