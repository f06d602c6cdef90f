"""`pushctl send` on a bad day, end to end against the emulator (issue 11): defect 5's fault mix at
a small scale, and a project quota. The assertions are counts (devices delivered, attempts, pauses,
refusals), never timings; the speed of these runs is benchmarks/fault_bench.py's business."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_send_faults import _audience
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

REPO = Path(__file__).resolve().parent.parent
DEFECT_5 = [{"status": 429, "rate": 0.07, "retry_after": 1}, {"status": 503, "rate": 0.07, "retry_after": 1},
            {"status": 500, "rate": 0.06, "retry_after": 1}]


def send(tmp_path: Path, emu: Emulator, audience: Path, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    config = emu.write_profile(tmp_path / "config.toml")
    result = CliRunner().invoke(app, [
        "--config", str(config), "--profile", "emulator", "--output", "json",
        "send", str(REPO / "samples" / "templates" / "welcome.yaml"), "--audience", str(audience),
        "--journal", str(tmp_path / "journal.sqlite3"), *extra,
    ])  # fmt: skip
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_the_fault_mix_of_defect_5_ends_with_every_device_delivered(tmp_path: Path) -> None:
    tokens = _audience(tmp_path / "audience.csv", 1_500)
    with Emulator(tmp_path / "emu", errors=DEFECT_5, goaway_after=300, drop_rate=0.01, seed=5) as emu:
        code, lines, err = send(tmp_path, emu, tmp_path / "audience.csv")
        received = {t: emu.inbox.count(t) for t in tokens}
    results, summary = lines[:-1], lines[-1]
    assert code == 0, err[-2000:]
    assert summary["outcomes"]["delivered"] == 1_500 and summary["outcomes"]["failed"] == 0
    assert all(received.values())
    # Dropped connections lost answers to requests already delivered: those devices were sent twice
    # (the collapse id hides it on the device), yet the lost request did not count as an attempt.
    attempts = {r["token"]: r["attempts"] for r in results}
    twice = [t for t, n in received.items() if n > 1]
    assert twice and any(attempts[t] == 1 for t in twice)
    # Attempts are answers: with 20% of answers retryable, 1.25 on average (lost requests would add
    # one for every connection drop that caught a device in flight).
    assert sum(attempts.values()) / len(attempts) < 1.4
    assert Counter(attempts.values())[1] > 1_000
    # 14% of answers are 429/503, scattered over devices: no provider-wide pause is called for.
    assert "pausing" not in err


@pytest.mark.slow
def test_against_a_project_quota_the_sender_slows_down_instead_of_failing(tmp_path: Path) -> None:
    audience = tmp_path / "fcm.txt"
    audience.write_text("".join(f"f{i:07d}:APA91b{'x' * 120}\n" for i in range(1_200)))
    with Emulator(tmp_path / "emu", fcm_quota_per_second=150) as emu:
        code, lines, err = send(tmp_path, emu, audience)
        refused = emu.stats()["fcm"].get("429", 0)
    summary = lines[-1]
    assert code == 0, err[-2000:]
    assert summary["outcomes"]["delivered"] == 1_200 and summary["outcomes"]["failed"] == 0
    pauses = [line for line in err.splitlines() if "pausing" in line]
    assert pauses and all("QUOTA_EXCEEDED" in p and "sending to it at" in p for p in pauses)
    assert len(pauses) <= 4  # slowed down after the first burst, not a pause a second
    # The first burst is refused wholesale (500 requests in flight against 150/s); after that the
    # adaptive rate keeps refusals a fraction of the deliveries.
    assert refused < 1_200
