"""Credentials the emulator refuses stop `pushctl send` at once: exit 3, one clear line, no deliveries."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

CONCURRENCY = 50
AUDIENCE = 2_000


def _audience(path: Path, *, ios: int = 0, android: int = 0) -> list[str]:
    tokens = [f"{i:08x}" + "ab" * 28 for i in range(ios)]
    tokens += [f"fcm{i:06d}:APA91b" + "x" * 60 for i in range(android)]
    lines = ["token,platform,name"]
    lines += [f"{t},{'ios' if i < ios else 'android'},n{i}" for i, t in enumerate(tokens)]
    path.write_text("\n".join(lines) + "\n")
    return tokens


def _edit_profile(config: Path, **sections: dict[str, str]) -> None:
    data = tomllib.loads(config.read_text())
    profile = data["profiles"]["emulator"]
    for section, values in sections.items():
        profile[section].update(values)
    config.write_text(tomli_w.dumps(data))


def _unknown_p8(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _unknown_service_account(path: Path, token_uri: str) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "pushctl-emulator",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "stranger@pushctl-emulator.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(account))
    return path


def _send(config: Path, audience: Path, journal: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        [
            "--config", str(config), "--profile", "emulator", "--output", "json",
            "send", "samples/templates/welcome.yaml", "--audience", str(audience),
            "--journal", str(journal), "--concurrency", str(CONCURRENCY), *extra,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def _results(stdout: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    objs = [json.loads(line) for line in stdout.splitlines()]
    return [o for o in objs if o["type"] == "result"], [o for o in objs if o["type"] == "summary"]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize("case", ["unregistered_key", "wrong_key_id"])
def test_refused_apns_key_stops_the_campaign_with_exit_3(tmp_path: Path, case: str) -> None:
    audience = tmp_path / "audience.csv"
    _audience(audience, ios=AUDIENCE)
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        if case == "unregistered_key":
            _edit_profile(config, apns={"key_file": str(_unknown_p8(tmp_path / "AuthKey_ZZZ0000001.p8")),
                                        "key_id": "ZZZ0000001"})
        else:
            _edit_profile(config, apns={"key_id": "WRONG00001"})
        code, stdout, stderr = _send(config, audience, tmp_path / "journal.sqlite3")
        delivered = emu.inbox.total()
        answered = emu.apns.stats["403 InvalidProviderToken"]
        other = set(emu.apns.stats) - {"403 InvalidProviderToken", "rejected"}

    assert code == 3, stderr
    assert delivered == 0
    # Stopped within the first requests: at most one window of in-flight requests was answered.
    assert 1 <= answered <= CONCURRENCY and not other
    results, summaries = _results(stdout)
    assert len(results) <= CONCURRENCY
    assert {r["outcome"] for r in results} == {"auth_failed"}
    assert {r["reason"] for r in results} == {"InvalidProviderToken"}
    (summary,) = summaries
    assert summary["exit_code"] == 3 and summary["stopped"] == "auth_failed"
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, stderr
    assert "apns refused the credentials (InvalidProviderToken)" in errors[0]


def test_unknown_service_account_stops_before_any_send_with_exit_3(tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    _audience(audience, android=AUDIENCE)
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        account = _unknown_service_account(tmp_path / "stranger.json", emu.token_uri)
        _edit_profile(config, fcm={"service_account": str(account)})
        code, stdout, stderr = _send(config, audience, tmp_path / "journal.sqlite3")
        delivered = emu.inbox.total()
        fcm_requests = sum(emu.fcm.stats.values())

    assert code == 3, stderr
    assert delivered == 0 and fcm_requests == 0  # refused at the token exchange, before any send
    assert stdout == ""  # nothing was sent, so no result lines
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1, stderr
    assert "stranger@pushctl-emulator.iam.gserviceaccount.com" in errors[0]
    assert "BEGIN PRIVATE KEY" not in stderr and "Traceback" not in stderr


def test_mixed_campaign_stops_both_providers_when_apns_refuses(tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    _audience(audience, ios=AUDIENCE // 2, android=AUDIENCE // 2)
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        _edit_profile(config, apns={"key_id": "WRONG00001"})
        code, stdout, stderr = _send(config, audience, tmp_path / "journal.sqlite3")
        apns_answers = emu.apns.stats["403 InvalidProviderToken"]
        delivered = emu.inbox.total()

    assert code == 3, stderr
    results, _ = _results(stdout)
    # FCM may deliver what was already in flight, but the campaign does not run to the end.
    assert len(results) < AUDIENCE // 2
    assert apns_answers <= CONCURRENCY
    assert delivered < AUDIENCE // 2


def test_after_fixing_refused_credentials_the_same_campaign_sends_everyone_once(tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    tokens = _audience(audience, ios=500)
    journal = tmp_path / "journal.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        _edit_profile(config, apns={"key_id": "WRONG00001"})
        code, _, stderr = _send(config, audience, journal, "--campaign", "fix-me")
        assert code == 3, stderr
        _edit_profile(config, apns={"key_id": "EMU0000001"})
        code, stdout, stderr = _send(config, audience, journal, "--campaign", "fix-me")
        counts = {t: emu.inbox.count(t) for t in tokens}

    assert code == 0, stderr
    # auth_failed does not settle a device: the run after the fix sends every device, once.
    assert set(counts.values()) == {1}
    (summary,) = _results(stdout)[1]
    assert summary["outcomes"]["delivered"] == 500 and summary["outcomes"]["auth_failed"] == 0
