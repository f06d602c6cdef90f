"""A 20,000-device mixed campaign through injected 503s (with Retry-After) and GOAWAYs: every device
is delivered exactly once according to the emulator's inbox, and the retries show in the results."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli import send_cmd
from pushctl.cli.app import app
from pushctl.delivery import SendOptions
from pushctl.emulator import Emulator

REPO = Path(__file__).resolve().parent.parent
DEVICES = 20_000
GOAWAY_AFTER = 5_000
ERROR_RATE = 0.2
_FCM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def _audience(path: Path, n: int) -> dict[str, str]:
    """Half APNs, half FCM (Android and web), interleaved; token -> platform."""
    rng = random.Random(4)
    tokens: dict[str, str] = {}
    with path.open("w") as fh:
        fh.write("token,platform,name,user_id\n")
        for i in range(n):
            if i % 2 == 0:
                token, platform = f"{i:08x}{rng.getrandbits(224):056x}", "ios"
            else:
                tail = "".join(rng.choices(_FCM_CHARS, k=120))
                token, platform = f"f{i:07d}:APA91b{tail}", "web" if i % 10 == 1 else "android"
            tokens[token] = platform
            fh.write(f"{token},{platform},User {i},u{i}\n")
    return tokens


@pytest.mark.slow
def test_every_device_delivered_exactly_once_through_503s_and_goaways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    # Retry-After (1 s) sets the pace of a retry; the exponential part of the backoff is capped
    # lower than the 30 s default so the rare device that draws five 503s in a row does not
    # hold the test for half a minute. Backoff itself is covered by test_sender_retry.py.
    monkeypatch.setattr(send_cmd, "SendOptions", functools.partial(SendOptions, backoff_max=2.0))
    tokens = _audience(tmp_path / "audience.csv", DEVICES)
    errors = [{"status": 503, "rate": ERROR_RATE, "retry_after": 1}]
    with Emulator(tmp_path / "emu", errors=errors, goaway_after=GOAWAY_AFTER, seed=11) as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        result = CliRunner().invoke(
            app,
            [
                "--config", str(config), "--profile", "emulator", "--output", "json",
                "send", "samples/templates/welcome.yaml", "--audience", str(tmp_path / "audience.csv"),
                "--journal", str(tmp_path / "journal.sqlite3"),
                # 0.2 ** 10 * 20,000 devices: a 0.2% chance that any device runs out of attempts
                "--max-attempts", "10",
            ],
        )
        counts = {token: emu.inbox.count(token) for token in tokens}
        inbox_total = emu.inbox.total()
        stats = emu.stats()

    assert result.exit_code == 0, result.stderr[-2000:]
    assert inbox_total == DEVICES
    assert [t for t, c in counts.items() if c != 1] == []

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    results, summary = lines[:-1], lines[-1]
    assert summary["type"] == "summary" and all(r["type"] == "result" for r in results)
    assert len(results) == DEVICES and {r["token"] for r in results} == set(tokens)
    assert {r["outcome"] for r in results} == {"delivered"}
    assert all(r["platform"] == tokens[r["token"]] for r in results)

    retried = [r for r in results if r["attempts"] > 1]
    # ~20% of first attempts fail; a failed device needs on average 1.25 more attempts.
    assert 0.15 * DEVICES < len(retried) < 0.25 * DEVICES
    assert summary["retries"] == sum(r["attempts"] - 1 for r in results)
    assert summary["retries"] > 0.2 * DEVICES
    assert summary["outcomes"]["delivered"] == DEVICES and summary["exit_code"] == 0
    # Retried devices waited at least the server's Retry-After.
    assert min(r["latency_ms"] for r in retried) >= 1000
    # Both providers saw the 503s, and enough requests that each side got several GOAWAYs.
    apns_503 = stats["apns"]["503 ServiceUnavailable"]
    fcm_503 = stats["fcm"]["503"]
    assert apns_503 > 0 and fcm_503 > 0
    assert stats["apns"]["200"] + apns_503 > 2 * GOAWAY_AFTER
    assert stats["fcm"]["200"] + fcm_503 > 2 * GOAWAY_AFTER
