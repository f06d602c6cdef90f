"""A 1,000,000-row audience checked offline in flat memory."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from rss import run_pushctl_measured

ROWS = 1_000_000
MAX_RSS_MB = 150


def make_audience(path: Path) -> None:
    """Half APNs, half FCM; a malformed token every 100,000 rows and 10 duplicates."""
    rng = random.Random(42)
    first_tokens: list[str] = []
    with path.open("w", encoding="utf-8") as fh:
        fh.write("token,platform,name,locale\n")
        for i in range(ROWS):
            if i % 100_000 == 50_000:
                token = "not-a-hex-token"
            elif i >= ROWS - 10:
                token = first_tokens[ROWS - 1 - i]
            elif i % 2:
                token = f"{rng.getrandbits(256):064x}"
            else:
                token = f"{rng.getrandbits(88):022x}:APA91b{rng.getrandbits(520):0130x}"
            if i < 10:
                first_tokens.append(token)
            platform = "android" if ":" in token else "ios"
            fh.write(f"{token},{platform},user{i},en\n")


@pytest.mark.slow
def test_million_rows_offline_check_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    make_audience(path)
    started = time.monotonic()
    proc = run_pushctl_measured(["--output", "json", "tokens", "check", str(path)])
    elapsed = time.monotonic() - started
    peak_mb = proc.peak_mb
    print(f"\n1,000,000 rows checked in {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert proc.returncode == 1, proc.stderr
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = objects[-1]
    assert summary["type"] == "summary"
    assert summary["rows"] == ROWS
    assert summary["malformed"] == 10 and summary["invalid"] == 10
    assert summary["duplicate"] == 10
    assert summary["devices"] == ROWS - 20
    assert len(objects) == 21
    assert peak_mb < MAX_RSS_MB
