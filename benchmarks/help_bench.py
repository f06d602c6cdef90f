"""Start-up cost of the CLI: wall time of ``pushctl --help`` (median of N runs) and the top
imports by cumulative time from ``python -X importtime``.

    .venv/bin/python benchmarks/help_bench.py            # 5 runs + importtime top 10
    .venv/bin/python benchmarks/help_bench.py --runs 11 --top 15

Runs the installed console script next to this interpreter, as a user would.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall_times(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(BIN / "pushctl"), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def import_top(top: int) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the slowest imports of one ``--help``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pushctl", "--help"],
        capture_output=True, text=True, check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    wall_times(1)  # warm the page cache and .pyc files
    times = wall_times(args.runs)
    print(f"pushctl --help: median {statistics.median(times) * 1000:.0f} ms of {args.runs} runs "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    print(f"\n-X importtime, top {args.top} by cumulative time:")
    for cumulative, name in import_top(args.top):
        print(f"{cumulative / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
