from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.config import Profile
from pushctl.credentials import check_offline
from pushctl.errors import ExitCode

EMU_KEY = "credentials/AuthKey_EMU0000001.p8"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env, terminal_width=200)
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def write_pem_key(path: Path, key: Any) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def cert_for(key: Any, days: int, uid: str = "com.example.app") -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test"),
                      x509.NameAttribute(NameOID.USER_ID, uid)])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    cert = cert_for(ec.generate_private_key(ec.SECP256R1()), 30)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_sample_profile_all_ok(samples: Path, ca_file: Path) -> None:
    code, out, err = run("--config", str(samples / "config.toml"), "-o", "json", "credentials", "check",
                         env={"PUSHCTL_CA_FILE": str(ca_file)})
    assert code == ExitCode.OK, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["provider"], r["kind"], r["ok"]) for r in rows] == [
        ("apns", "token key (.p8)", True), ("fcm", "service account", True), ("tls", "CA file", True)]
    assert rows[0]["warnings"] == []  # sample keys are public: no chmod nagging
    assert "EMU0000001" in rows[0]["detail"]
    assert "all ok" in err
    assert "BEGIN" not in out + err


def test_table_output(samples: Path, ca_file: Path) -> None:
    code, out, _ = run("--config", str(samples / "config.toml"), "-o", "table", "credentials", "check",
                       env={"PUSHCTL_CA_FILE": str(ca_file)})
    assert code == ExitCode.OK
    assert out.count("✓") == 3 and "✗" not in out
    assert "provider" in out and "profile emulator" in out


def test_no_credentials_is_usage_error_with_hint(tmp_path: Path) -> None:
    code, out, err = run("credentials", "check")
    assert code == ExitCode.USAGE
    assert out == ""
    assert "pushctl config init" in err
    assert "no APNs, FCM, Web Push or HMS credentials" in err


def test_failed_checks_exit_3_and_say_why(tmp_path: Path, samples: Path) -> None:
    key = write_pem_key(tmp_path / "AuthKey_ABC123DEFG.p8", ec.generate_private_key(ec.SECP384R1()))
    config = tmp_path / "c.toml"
    config.write_text(
        f'[profiles.default.apns]\nkey_file = "{key}"\nteam_id = "DEF123GHIJ"\n'
        f'[profiles.default.fcm]\nservice_account = "{samples / "credentials/google-services.json"}"\n'
    )
    code, out, err = run("--config", str(config), "-o", "json", "credentials", "check")
    assert code == ExitCode.AUTH
    rows = {r["kind"]: r for r in map(json.loads, out.splitlines())}
    assert not rows["token key (.p8)"]["ok"]
    assert "secp384r1" in rows["token key (.p8)"]["detail"]
    assert rows["token key (.p8)"]["fix"]
    assert "google-services.json" in rows["service account"]["detail"]
    assert rows["topic"]["detail"] == "apns.topic is not set"
    assert "3 checks, 3 failed" in err


def test_permission_warning_reported(tmp_path: Path) -> None:
    key = write_pem_key(tmp_path / "AuthKey_ABC123DEFG.p8", ec.generate_private_key(ec.SECP256R1()))
    key.chmod(0o644)
    profile = Profile(name="t")
    profile.apns.key_file, profile.apns.team_id, profile.apns.topic = key, "DEF123GHIJ", "com.x"
    (row,) = check_offline(profile)
    assert row.ok
    assert row.warnings == [f"key file {key} is readable by group/others; run chmod 600 {key}"]


def test_p12_password_asked_once_only_when_needed(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    p12 = tmp_path / "push.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"p", rsa_key, cert_for(rsa_key, 10), None, serialization.BestAvailableEncryption(b"pw")))
    p12.chmod(0o600)
    profile = Profile(name="t")
    profile.apns.cert_file = p12
    calls: list[int] = []

    def password() -> bytes:
        calls.append(1)
        return b"pw"

    (row,) = check_offline(profile, password=password)
    assert row.ok, row.detail
    assert calls == [1]
    assert "com.example.app" in row.detail
    assert any("expires on" in w for w in row.warnings)  # within 30 days
    (row,) = check_offline(profile, password=lambda: b"nope")
    assert not row.ok and "wrong password or not a PKCS#12 file" in row.detail


def test_p12_password_from_env_via_cli(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    p12 = tmp_path / "push.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"p", rsa_key, cert_for(rsa_key, 365), None, serialization.BestAvailableEncryption(b"pw-secret")))
    config = tmp_path / "c.toml"
    config.write_text(f'[profiles.default.apns]\ncert_file = "{p12}"\ncert_password_env = "MY_P12_PW"\n')
    code, out, err = run("--config", str(config), "-o", "json", "credentials", "check",
                         env={"MY_P12_PW": "pw-secret"})
    assert code == ExitCode.OK, out + err
    assert "pw-secret" not in out + err
    code, out, _ = run("--config", str(config), "-o", "json", "credentials", "check")
    assert code == ExitCode.AUTH
    assert "wrong password" in json.loads(out)["detail"]


def test_expired_certificate_fails_check(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = tmp_path / "old.pem"
    pem.write_bytes(cert_for(rsa_key, -1).public_bytes(serialization.Encoding.PEM))
    key = write_pem_key(tmp_path / "old-key.pem", rsa_key)
    profile = Profile(name="t")
    profile.apns.cert_file, profile.apns.cert_key_file = pem, key
    (row,) = check_offline(profile)
    assert not row.ok
    assert "certificate expired on" in row.detail


def _check_rows(config: Path) -> tuple[int, dict[str, dict[str, Any]], str]:
    code, out, err = run("--config", str(config), "-o", "json", "credentials", "check")
    return code, {r["kind"]: r for r in map(json.loads, out.splitlines())}, err


def test_emulator_certificate_world_readable_is_not_a_key_file(tmp_path: Path) -> None:
    from pushctl.emulator import Emulator

    with Emulator(tmp_path / "emu") as emu:
        cert, key = emu.issue_client_certificate("com.example.pushctl", tmp_path)
        config = emu.write_profile(tmp_path / "config.toml")
    cert.chmod(0o644)  # a public certificate: nothing secret in it
    key.chmod(0o600)
    data = tomllib.loads(config.read_text())
    data["profiles"]["emulator"]["apns"] = {"environment": "sandbox", "endpoint": emu.apns_url,
                                            "cert_file": str(cert), "cert_key_file": str(key)}
    config.write_text(tomli_w.dumps(data))
    code, rows, err = _check_rows(config)
    assert code == ExitCode.OK, err
    assert rows["certificate"]["warnings"] == []
    key.chmod(0o644)  # the key file is what must stay private
    code, rows, err = _check_rows(config)
    assert code == ExitCode.OK, err
    assert rows["certificate"]["warnings"] == [
        f"key file {key} is readable by group/others; run chmod 600 {key}"]


def test_service_account_as_p8_says_what_the_file_is(tmp_path: Path, samples: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[profiles.default.apns]\nkey_file = "{samples / "credentials/service-account.json"}"\n'
        'key_id = "ABC123DEFG"\nteam_id = "DEF123GHIJ"\ntopic = "com.example.app"\n'
    )
    code, rows, err = _check_rows(config)
    assert code == ExitCode.AUTH
    row = rows["token key (.p8)"]
    assert row["detail"] == (
        "this is a service-account JSON (the FCM key, for fcm.service_account), not a .p8 key")
    assert "AuthKey_<key id>.p8" in row["fix"]
    text = json.dumps(row) + err
    assert "Unable to load PEM" not in text and "InvalidData" not in text and "Invalid symbol" not in text


def test_service_account_private_key_of_the_wrong_type(tmp_path: Path, samples: Path) -> None:
    account = json.loads((samples / "credentials/service-account.json").read_text())
    account["private_key"] = 123
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))
    path.chmod(0o600)
    config = tmp_path / "c.toml"
    config.write_text(f'[profiles.default.fcm]\nservice_account = "{path}"\n')
    code, rows, _ = _check_rows(config)
    assert code == ExitCode.AUTH
    row = rows["service account"]
    assert row["detail"] == "field 'private_key': wrong type: private_key is a number, expected a string"
    assert "missing" not in row["detail"]
