"""`pushctl tokens check --online`: FCM validate_only, the APNs probe, prune list, exit codes,
against the real emulator (HTTP/2 + TLS on loopback)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pushctl.checks import APNS_NOT_CHECKED
from pushctl.cli.app import app
from pushctl.emulator import Emulator
from pushctl.errors import ExitCode

GOOD_IOS = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"
GOOD_ANDROID = (
    "jORS_6ilI8ihN5KXSc7Tvo:APA91b_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWtGSU8po"
    "-799NksnRH9ucAUsdMlHUvTCQCyEZDz_TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3"
)

# line -> the reason `tokens check --online --apns-probe` must give (the sample's `expect` column).
EXPECTED = {
    5: "Unregistered",
    6: "DeviceTokenNotForTopic",
    7: "BadDeviceToken",
    8: "malformed",
    9: "UNREGISTERED",
    10: "SENDER_ID_MISMATCH",
    11: "INVALID_ARGUMENT",
    12: "malformed",
    13: "wrong_platform",
}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[Emulator, Path]]:
    with Emulator(tmp_path / "emu") as emu:
        yield emu, emu.write_profile(tmp_path / "config.toml")


def run(cfg: Path | None, *args: str) -> tuple[int, str, str]:
    base = ["--config", str(cfg), "--profile", "emulator"] if cfg is not None else []
    result = CliRunner().invoke(app, [*base, *args], terminal_width=250, env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def sample_rows(samples: Path) -> dict[int, dict[str, str]]:
    with (samples / "audience-check.csv").open(encoding="utf-8") as fh:
        return {i: row for i, row in enumerate(csv.DictReader(fh), start=2)}


def test_sample_audience_every_bad_token_with_its_reason(
    emulator: tuple[Emulator, Path], samples: Path, tmp_path: Path
) -> None:
    _emu, cfg = emulator
    prune = tmp_path / "out.txt"
    code, out, err = run(cfg, "-o", "json", "tokens", "check", str(samples / "audience-check.csv"),
                         "--online", "--apns-probe", "--prune-list", str(prune))
    assert code == ExitCode.PARTIAL, err
    lines = json_lines(out)
    findings, summary = lines[:-1], lines[-1]
    assert all(f["type"] == "finding" for f in findings) and summary["type"] == "summary"
    invalid = {f["line"]: f["reason"] for f in findings if f["invalid"]}
    assert invalid == EXPECTED
    rows = sample_rows(samples)
    assert all(rows[line]["expect"] == reason for line, reason in invalid.items())
    # Warnings are reported, but are not invalid: the 62-hex token (then BadDeviceToken online),
    # the too-short FCM token (then INVALID_ARGUMENT online), the duplicate.
    warnings = {(f["line"], f["problem"]) for f in findings if not f["invalid"]}
    assert warnings == {(7, "unusual_length"), (11, "unusual_length"), (14, "duplicate")}
    online = summary["online"]
    assert online["checked"] == 9 and online["valid"] == 3 and online["not_checked"] == {}
    assert summary["invalid"] == 9 and summary["invalid_offline"] == 3 and summary["invalid_online"] == 6
    # The prune list holds exactly the invalid tokens, nothing else.
    with prune.open(encoding="utf-8") as fh:
        pruned = list(csv.DictReader(fh))
    assert sorted((int(r["line"]), r["reason"]) for r in pruned) == sorted(EXPECTED.items())
    assert {r["token"] for r in pruned} == {rows[line]["token"] for line in EXPECTED}
    assert summary["pruned"] == 9 and f"9 invalid token(s) written to {prune}" in err


def test_table_output_lists_reasons_and_summary(emulator: tuple[Emulator, Path], samples: Path) -> None:
    _emu, cfg = emulator
    code, out, _err = run(cfg, "-o", "table", "tokens", "check", str(samples / "audience-check.csv"),
                          "--online", "--apns-probe")
    assert code == ExitCode.PARTIAL
    for reason in set(EXPECTED.values()):
        assert reason in out
    assert "Summary" in out and "checked online" in out
    assert "the token belongs to another app (not com.example.pushctl)" in out
    assert "another Firebase project (not pushctl-emulator)" in out


def test_apns_probe_is_a_silent_background_push(emulator: tuple[Emulator, Path], tmp_path: Path) -> None:
    emu, cfg = emulator
    audience = tmp_path / "a.csv"
    audience.write_text(f"token,platform\n{GOOD_IOS},ios\n{GOOD_ANDROID},android\n")
    code, out, err = run(cfg, "-o", "json", "tokens", "check", str(audience), "--online", "--apns-probe")
    assert code == ExitCode.OK, err
    assert json_lines(out) == [json_lines(out)[-1]]  # no findings, only the summary
    assert "no invalid tokens (2 checked online and valid)" in err
    (push,) = emu.inbox.received(GOOD_IOS)
    assert push.payload == {"aps": {"content-available": 1}}
    assert push.headers["apns-push-type"] == "background"
    assert push.headers["apns-priority"] == "5"
    # FCM's check is validate_only: nothing reaches the Android device.
    assert emu.inbox.received(GOOD_ANDROID) == [] and emu.inbox.total() == 1


def test_without_probe_apns_tokens_are_not_checked(emulator: tuple[Emulator, Path], samples: Path) -> None:
    emu, cfg = emulator
    audience = str(samples / "audience-check.csv")
    code, out, err = run(cfg, "-o", "json", "tokens", "check", audience, "--online")
    assert code == ExitCode.PARTIAL
    summary = json_lines(out)[-1]
    assert summary["online"]["not_checked"] == {"apns_no_dry_run": 4}
    assert {f["line"] for f in json_lines(out)[:-1] if f["invalid"]} == {8, 9, 10, 11, 12, 13}
    assert f"4 APNs token(s) {APNS_NOT_CHECKED}" in err
    assert emu.stats()["apns"] == {} and emu.inbox.total() == 0  # not a single push


def test_help_says_apns_has_no_dry_run() -> None:
    code, out, _ = run(None, "tokens", "check", "--help")
    assert code == 0
    assert APNS_NOT_CHECKED in " ".join(out.split())


def test_online_options_need_online(samples: Path) -> None:
    code, out, err = run(None, "tokens", "check", str(samples / "audience-check.csv"), "--apns-probe")
    assert code == ExitCode.USAGE and out == ""
    assert "--apns-probe needs --online" in err


def test_refused_credentials_exit_3(emulator: tuple[Emulator, Path], samples: Path, tmp_path: Path) -> None:
    emu, cfg = emulator
    emu.registry.revoked_keys.add("EMU0000001")
    audience = tmp_path / "ios.csv"
    audience.write_text(f"token,platform\n{GOOD_IOS},ios\n")
    code, out, err = run(cfg, "-o", "json", "tokens", "check", str(audience), "--online", "--apns-probe")
    assert code == ExitCode.AUTH
    assert json_lines(out)[-1]["type"] == "summary"
    assert "apns refused the credentials (InvalidProviderToken)" in err
    assert "pushctl credentials check --online" in err


def test_refused_service_account_exit_3(emulator: tuple[Emulator, Path], samples: Path) -> None:
    emu, cfg = emulator
    emu.registry.service_accounts.clear()
    audience = str(samples / "audience-check.csv")
    code, out, err = run(cfg, "-o", "json", "tokens", "check", audience, "--online")
    assert code == ExitCode.AUTH and out == ""
    assert "Google refused the service account" in err and "BEGIN" not in err


def test_all_valid_exits_0_and_retries_transient_errors(tmp_path: Path) -> None:
    # Every other FCM answer is a 503: the sender's retries still reach a verdict for each token.
    errors = [{"status": 503, "rate": 0.5, "provider": "fcm"}]
    with Emulator(tmp_path / "emu", errors=errors, seed=3) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        tokens = [GOOD_ANDROID[:-2] + f"{i:02d}" for i in range(20)]
        audience = tmp_path / "a.txt"
        audience.write_text("".join(t + "\n" for t in tokens))
        code, out, err = run(cfg, "-o", "json", "tokens", "check", str(audience), "--online",
                             "--concurrency", "4", "--rate", "1000")
        assert code == ExitCode.OK, err
        summary = json_lines(out)[-1]
        assert summary["online"]["valid"] == 20 and summary["invalid"] == 0
        assert emu.stats()["fcm"]["503"] > 0


def test_emulator_flag_starts_its_own(samples: Path) -> None:
    code, out, err = run(None, "-o", "json", "tokens", "check", str(samples / "audience-check.csv"),
                         "--online", "--apns-probe", "--emulator")
    assert code == ExitCode.PARTIAL, err
    invalid = {f["line"]: f["reason"] for f in json_lines(out)[:-1] if f["invalid"]}
    assert invalid == EXPECTED
