"""Micro-benchmark of the campaign journal's write path (not a test).

Mimics the sender: mark a batch in flight (one committed transaction), then record each
device's result (buffered, flushed every 500 rows / 0.2 s). Prints records/s; the target is
well above 10,000/s so the journal never limits a ~5,000/s sender.

    .venv/bin/python benchmarks/journal_bench.py [N] [--batch 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200_000, help="devices (default 200,000)")
    parser.add_argument("--batch", type=int, default=500, help="devices marked in flight per transaction")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "journal.sqlite3") as journal:
        run = journal.open_run("bench", template_fp="t", audience_fp="a", options={})
        tokens = [f"{i:064x}" for i in range(args.n)]
        slowest_mark = 0.0
        started = time.perf_counter()
        cpu_started = time.process_time()
        for start in range(0, args.n, args.batch):
            batch = tokens[start : start + args.batch]
            t0 = time.perf_counter()
            run.mark_inflight([(t, Platform.IOS, start + i, "") for i, t in enumerate(batch)])
            slowest_mark = max(slowest_mark, time.perf_counter() - t0)
            for t in batch:
                run.record(Result(t, Platform.IOS, Outcome.DELIVERED, attempts=1, latency_ms=3.0))
        run.finish()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        size = sum(p.stat().st_size for p in Path(tmp).glob("journal.sqlite3*"))

    print(f"devices:            {args.n:,}")
    print(f"mark+record:        {args.n / wall:,.0f} devices/s ({wall:.2f} s wall)")
    print(f"CPU per device:     {cpu / args.n * 1e6:.1f} µs")
    print(f"slowest mark batch: {slowest_mark * 1000:.1f} ms ({args.batch} rows)")
    print(f"database size:      {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
