"""Micro-benchmark of ``--where`` evaluation (not a test): parse once, match many rows.

Prints microseconds per row; a million-row audience should spend seconds, not minutes, here.

    .venv/bin/python benchmarks/segment_bench.py [N]
"""

from __future__ import annotations

import argparse
import time

from pushctl.audience import Segment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200_000, help="rows (default 200,000)")
    args = parser.parse_args()
    seg = Segment.parse('country in ["JP", "FR"] and age >= 18 and locale startswith "en"')
    countries = ("JP", "FR", "US")
    rows = [{"country": countries[i % 3], "age": str(i % 90), "locale": "en_US"} for i in range(1000)]
    matched = 0
    started = time.perf_counter()
    for i in range(args.n):
        matched += seg.matches(rows[i % 1000])
    elapsed = time.perf_counter() - started
    print(f"{args.n:,} rows in {elapsed:.2f} s: {elapsed / args.n * 1e6:.2f} µs/row ({matched:,} matched)")


if __name__ == "__main__":
    main()
