"""`pushctl credentials check --online` against the real emulator: what passes, and one precise
line for each way APNs / Google refuse the credentials."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator
from pushctl.errors import ExitCode
from pushctl.paths import data_dir

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[Emulator, Path]]:
    with Emulator(tmp_path / "emu") as emu:
        yield emu, emu.write_profile(tmp_path / "config.toml")


def run(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(cfg), "--profile", "emulator", *args],
                                terminal_width=250, env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def online_rows(cfg: Path) -> tuple[int, dict[str, dict[str, Any]], str]:
    code, out, err = run(cfg, "-o", "json", "credentials", "check", "--online")
    rows = [json.loads(line) for line in out.splitlines()]
    return code, {r["provider"]: r for r in rows if r["kind"].startswith("online")}, err


def with_apns(cfg: Path, **apns: str) -> Path:
    data = tomllib.loads(cfg.read_text())
    data["profiles"]["emulator"]["apns"].update(apns)
    cfg.write_text(tomli_w.dumps(data))
    return cfg


def test_sample_credentials_pass(emulator: tuple[Emulator, Path]) -> None:
    emu, cfg = emulator
    code, rows, err = online_rows(cfg)
    assert code == ExitCode.OK, err
    apns, fcm = rows["apns"], rows["fcm"]
    assert apns["ok"] and fcm["ok"]
    assert "APNs accepted key EMU0000001 (team EMUTEAM001), topic com.example.pushctl" in apns["detail"]
    assert "BadDeviceToken" in apns["detail"] and "sandbox" in apns["detail"]
    assert "pushctl-emulator@pushctl-emulator.iam.gserviceaccount.com" in fcm["detail"]
    assert "project pushctl-emulator" in fcm["detail"]
    webpush, hms = rows["webpush"], rows["hms"]
    assert webpush["ok"] and "accepted the VAPID JWT" in webpush["detail"]
    assert hms["ok"] and "got an access token for app 102030405" in hms["detail"]
    assert "9 checks, all ok" in err  # the emulator profile has all four providers + its CA
    assert emu.inbox.total() == 0  # the probe token belongs to no device: nothing was delivered


def test_table_output_one_line_per_credential(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    code, out, _ = run(cfg, "-o", "table", "credentials", "check", "--online")
    assert code == ExitCode.OK
    assert "online: push" in out and "online: access token" in out and "✗" not in out


def test_wrong_team_id(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    code, rows, err = online_rows(with_apns(cfg, team_id="EMUTEAM002"))
    assert code == ExitCode.AUTH
    apns = rows["apns"]
    assert not apns["ok"] and rows["fcm"]["ok"]
    assert "team id EMUTEAM002 does not own key EMU0000001" in apns["detail"]
    assert "InvalidProviderToken" in apns["detail"]
    assert "check apns.team_id (EMUTEAM002)" in apns["fix"]
    assert "1 failed" in err


def test_wrong_team_id_after_an_accepted_check_names_the_owning_team(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    assert online_rows(cfg)[0] == ExitCode.OK  # remembers: key EMU0000001 belongs to EMUTEAM001
    code, rows, _ = online_rows(with_apns(cfg, team_id="EMUTEAM002"))
    assert code == ExitCode.AUTH
    detail = rows["apns"]["detail"]
    assert "team id EMUTEAM002 does not own key EMU0000001" in detail
    assert "accepted with team id EMUTEAM001" in detail and "revoked" not in detail
    assert rows["apns"]["fix"] == "set apns.team_id to EMUTEAM001, the team that owns key EMU0000001"


def test_revoked_key_after_an_accepted_check_says_revoked(emulator: tuple[Emulator, Path]) -> None:
    emu, cfg = emulator
    assert online_rows(cfg)[0] == ExitCode.OK
    emu.registry.revoked_keys.add("EMU0000001")
    code, rows, _ = online_rows(cfg)
    assert code == ExitCode.AUTH
    detail = rows["apns"]["detail"]
    assert "no longer accepts key EMU0000001" in detail and "has been revoked" in detail
    assert "does not own" not in detail
    assert "create a new key" in rows["apns"]["fix"]


def test_wrong_topic(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    code, rows, _ = online_rows(with_apns(cfg, topic="com.example.other"))
    assert code == ExitCode.AUTH
    apns = rows["apns"]
    assert apns["detail"] == (
        "key EMU0000001 (team EMUTEAM001) is accepted, but may not push to topic com.example.other "
        "(TopicDisallowed)"
    )
    assert apns["fix"].startswith("check apns.topic")


def test_revoked_key(emulator: tuple[Emulator, Path]) -> None:
    emu, cfg = emulator
    emu.registry.revoked_keys.add("EMU0000001")
    code, rows, _ = online_rows(cfg)
    assert code == ExitCode.AUTH
    assert "key EMU0000001 was revoked" in rows["apns"]["detail"]
    assert "create a new key" in rows["apns"]["fix"]


def test_key_unknown_to_the_emulator(emulator: tuple[Emulator, Path], tmp_path: Path) -> None:
    _emu, cfg = emulator
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "AuthKey_EMU0000009.p8"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    code, rows, _ = online_rows(with_apns(cfg, key_file=str(path), key_id="EMU0000009"))
    assert code == ExitCode.AUTH
    assert "key EMU0000009 was revoked" in rows["apns"]["detail"]
    assert "-----BEGIN" not in json.dumps(rows)


def test_key_not_enabled_for_the_environment(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", environment="production") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        emu.registry.apns_keys["EMU0000001"].environments = frozenset({"sandbox"})
        code, rows, _ = online_rows(cfg)
    assert code == ExitCode.AUTH
    assert "not enabled for the sandbox environment (BadEnvironmentKeyIdInToken)" in rows["apns"]["detail"]


def test_refused_service_account(emulator: tuple[Emulator, Path]) -> None:
    emu, cfg = emulator
    emu.registry.service_accounts.clear()
    code, rows, _ = online_rows(cfg)
    assert code == ExitCode.AUTH
    fcm = rows["fcm"]
    assert not fcm["ok"] and rows["apns"]["ok"]
    assert "Google refused the service account" in fcm["detail"] and "Invalid JWT Signature" in fcm["detail"]
    assert "create a new key" in fcm["fix"]


def test_unreachable_service_exits_4(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    code, rows, _ = online_rows(with_apns(cfg, endpoint="https://127.0.0.1:9"))
    assert code == ExitCode.UNAVAILABLE
    assert rows["apns"]["detail"].startswith("no answer from APNs at https://127.0.0.1:9")


def test_certificate_auth(emulator: tuple[Emulator, Path], tmp_path: Path) -> None:
    emu, cfg = emulator
    cert, key = emu.issue_client_certificate("com.example.pushctl", tmp_path)
    data = tomllib.loads(cfg.read_text())
    data["profiles"]["emulator"]["apns"] = {
        "environment": "sandbox", "endpoint": emu.apns_url, "cert_file": str(cert), "cert_key_file": str(key),
        "topic": "com.example.pushctl",
    }
    cfg.write_text(tomli_w.dumps(data))
    code, rows, err = online_rows(cfg)
    assert code == ExitCode.OK, err
    assert "APNs accepted the certificate, topic com.example.pushctl" in rows["apns"]["detail"]


# -- the provider token: reused from `pushctl send`'s cache, never a second one within 20 minutes --------


def _next_second() -> None:
    """Let the clock pass a whole second, so a newly signed JWT has a later ``iat`` than the last one."""
    time.sleep(1.1)


def test_wrong_topic_twice_in_a_row_fails_both_times(emulator: tuple[Emulator, Path]) -> None:
    _emu, cfg = emulator
    with_apns(cfg, topic="com.example.other")
    for _ in range(2):
        code, rows, err = online_rows(cfg)
        assert code == ExitCode.AUTH, err
        assert not rows["apns"]["ok"]
        assert "TopicDisallowed" in rows["apns"]["detail"]
        _next_second()


def test_check_after_send_still_verifies_the_topic(emulator: tuple[Emulator, Path], tmp_path: Path) -> None:
    emu, cfg = emulator
    audience = tmp_path / "audience.csv"
    audience.write_text("token,platform\n" + "ab" * 32 + ",ios\n")
    result = CliRunner().invoke(app, [
        "--config", str(cfg), "--profile", "emulator", "-o", "json", "send",
        str(SAMPLES / "templates" / "welcome.yaml"), "--audience", str(audience),
        "--journal", str(tmp_path / "journal.sqlite3"),
    ])
    assert result.exit_code == 0, result.stderr
    assert emu.inbox.total() == 1
    _next_second()
    code, rows, err = online_rows(cfg)
    assert code == ExitCode.OK, err
    detail = rows["apns"]["detail"]
    assert "topic com.example.pushctl" in detail and "BadDeviceToken" in detail
    _next_second()
    code, rows, _ = online_rows(with_apns(cfg, topic="com.example.other"))
    assert code == ExitCode.AUTH
    assert "TopicDisallowed" in rows["apns"]["detail"]


def test_too_many_token_updates_is_not_a_pass(tmp_path: Path) -> None:
    # The strict, key-wide rule (samples/scenarios/strict-apns.toml): a new token from a new
    # connection is refused too, as some APNs servers have been reported to do.
    with Emulator(tmp_path / "emu", token_update_rule="key") as emu:
        _check_refused_token_update(emu.write_profile(tmp_path / "config.toml"))


def _check_refused_token_update(cfg: Path) -> None:
    with_apns(cfg, topic="com.example.other")
    assert online_rows(cfg)[0] == ExitCode.AUTH
    for cached in (data_dir() / "apns-jwt").iterdir():  # the token is lost: the next check signs a new one
        cached.unlink()
    _next_second()
    code, rows, err = online_rows(cfg)
    assert code == ExitCode.UNAVAILABLE, err
    apns = rows["apns"]
    assert not apns["ok"]
    assert "TooManyProviderTokenUpdates" in apns["detail"] and "topic com.example.other" in apns["detail"]
    assert "not checked" in apns["detail"]
    assert "run again in 20 minutes" in apns["fix"]
    assert "1 failed" in err
