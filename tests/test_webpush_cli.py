"""Web Push from the command line: keygen, credentials check (offline and --online, good and bad),
emulator-issued subscriptions, and the audience forms a subscription can take."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.audience import AudienceReader
from pushctl.cli.app import app
from pushctl.credentials import load_vapid_key
from pushctl.emulator import Emulator, issue_subscription
from pushctl.errors import AudienceError, ExitCode
from pushctl.model import Platform


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_keygen_writes_a_private_key_and_prints_the_application_server_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vapid.pem"
    code, out, err = _invoke("-o", "table", "webpush", "keygen", str(path))
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert out.strip() == load_vapid_key(path).application_server_key  # 65-byte point, base64url
    assert "PRIVATE KEY" not in out + err and "webpush.vapid_private_key" in err
    code, _, err = _invoke("webpush", "keygen", str(path))
    assert code == ExitCode.USAGE and "already exists" in err and "--force" in err


def _rows(out: str) -> dict[tuple[str, str], dict[str, object]]:
    return {(r["provider"], r["kind"]): r for r in map(json.loads, out.splitlines())}


def test_credentials_check_online_proves_vapid_and_names_what_to_fix(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        base = ("--config", str(config), "--profile", "emulator", "-o", "json", "credentials", "check")
        code, out, err = _invoke(*base, "--online")
        assert code == 0, err
        rows = _rows(out)
        assert rows[("webpush", "VAPID key pair")]["ok"]
        online = rows[("webpush", "online: push")]
        assert online["ok"] and "accepted the VAPID JWT" in str(online["detail"])
        # A subscription made (in the web app) with another application server key:
        code, out, _ = _invoke("webpush", "keygen", str(tmp_path / "app.pem"))
        app_key = json.loads(out)["application_server_key"]
        sub = issue_subscription(emu.webpush_url, application_server_key=app_key)
        (tmp_path / "sub.json").write_text(json.dumps(sub))
        code, out, err = _invoke(*base, "--online", "--webpush-subscription", str(tmp_path / "sub.json"))
        assert code == ExitCode.AUTH
        bad = _rows(out)[("webpush", "online: push")]
        assert not bad["ok"] and "another application server key" in str(bad["detail"])
        assert "webpush.vapid_private_key" in str(bad["fix"]) and "pushManager.subscribe" in str(bad["fix"])
        # The right key: one empty push to the subscription proves it.
        config.write_text(config.read_text().replace(str(emu_key_path(config)), str(tmp_path / "app.pem")))
        code, out, err = _invoke(*base, "--online", "--webpush-subscription", str(tmp_path / "sub.json"))
        assert code == 0, err
        assert emu.inbox.received(sub["endpoint"].rsplit("/", 1)[1])


def emu_key_path(config: Path) -> str:
    from pushctl.config import resolve_profile

    return str(resolve_profile(config, "emulator").webpush.vapid_private_key)


def test_offline_check_names_a_bad_subject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
    monkeypatch.setenv("PUSHCTL_WEBPUSH_SUBJECT", "ops@example.com")
    code, _out, err = _invoke("--config", str(config), "--profile", "emulator", "credentials", "check")
    assert code == ExitCode.USAGE and "mailto:" in err  # the environment override is checked as it loads


def test_emulator_subscribe_prints_a_subscription_it_can_decrypt_for(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        code, out, err = _invoke("-o", "json", "emulator", "subscribe", "--state-dir", str(tmp_path / "emu"))
        assert code == 0, err
        sub = json.loads(out)
        assert sub["endpoint"].startswith(emu.webpush_url + "/wp/emu")
        assert set(sub["keys"]) == {"p256dh", "auth"}
    code, _, err = _invoke("emulator", "subscribe", "--state-dir", str(tmp_path / "nothing"))
    assert code == ExitCode.UNAVAILABLE and "pushctl emulator run" in err


def test_audience_forms_of_a_subscription(tmp_path: Path) -> None:
    sub = issue_subscription("https://updates.push.example", "emu-forms")
    keys = sub["keys"]
    (tmp_path / "columns.csv").write_text(
        f"endpoint,p256dh,auth,name\n{sub['endpoint']},{keys['p256dh']},{keys['auth']},Ana\n"
    )
    quoted = json.dumps(sub).replace('"', '""')
    (tmp_path / "json-column.csv").write_text(f'subscription,name\n"{quoted}",Ana\n')
    (tmp_path / "tojson.jsonl").write_text(json.dumps({**sub, "name": "Ana"}) + "\n")
    (tmp_path / "nested.jsonl").write_text(json.dumps({"subscription": sub, "name": "Ana"}) + "\n")
    for name in ("columns.csv", "json-column.csv", "tojson.jsonl", "nested.jsonl"):
        [device] = list(AudienceReader(tmp_path / name))
        assert device.platform is Platform.WEBPUSH and device.token == sub["endpoint"], name
        assert device.attrs == {"name": "Ana", "p256dh": keys["p256dh"], "auth": keys["auth"]}, name
    (tmp_path / "no-keys.csv").write_text(f"endpoint,name\n{sub['endpoint']},Ana\n")
    with pytest.raises(AudienceError, match="add p256dh and auth columns"):
        list(AudienceReader(tmp_path / "no-keys.csv"))
    (tmp_path / "short-key.csv").write_text(
        f"endpoint,p256dh,auth\n{sub['endpoint']},{keys['p256dh'][:20]},{keys['auth']}\n"
    )
    with pytest.raises(AudienceError, match="65 bytes"):
        list(AudienceReader(tmp_path / "short-key.csv"))
