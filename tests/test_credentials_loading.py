from __future__ import annotations

import datetime as dt
import json
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pushctl.credentials import (
    APPLE_TOPICS_OID,
    GOOGLE_SERVICES_MESSAGE,
    load_apns_certificate,
    load_apns_key,
    load_service_account,
    permission_warning,
)
from pushctl.errors import CredentialError, CredentialFileError, ExitCode

PKCS8 = serialization.PrivateFormat.PKCS8
PEM = serialization.Encoding.PEM
NOENC = serialization.NoEncryption()


def pem_key(key: Any, fmt: serialization.PrivateFormat = PKCS8) -> bytes:
    return bytes(key.private_bytes(PEM, fmt, NOENC))


def key_file(tmp_path: Path, key: Any, name: str = "AuthKey_ABC123DEFG.p8", **kw: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(pem_key(key, **kw))
    path.chmod(0o600)
    return path


def make_cert(key: Any, *, uid: str | None = "com.example.app", days: int = 365,
              topics_ext: bytes | None = None, cn: str = "Apple Push Services: x") -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if uid:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, uid))
    name = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now + dt.timedelta(days=days))
    )
    if topics_ext is not None:
        extension = x509.UnrecognizedExtension(APPLE_TOPICS_OID, topics_ext)
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- .p8 token keys ------------------------------------------------------------


def test_loads_valid_p8_and_infers_key_id_from_name(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    loaded = load_apns_key(key_file(tmp_path, key), None, "DEF123GHIJ")
    assert (loaded.key_id, loaded.team_id) == ("ABC123DEFG", "DEF123GHIJ")
    secret = pem_key(key).decode()
    body = "".join(secret.splitlines()[1:-1])
    assert body[:40] not in repr(loaded)
    assert "private_key" not in repr(loaded)


def test_sample_credentials_load(samples: Path) -> None:
    key = load_apns_key(samples / "credentials/AuthKey_EMU0000001.p8", "EMU0000001", "EMUTEAM001")
    assert key.key_id == "EMU0000001"
    account = load_service_account(samples / "credentials/service-account.json")
    assert account.project_id == "pushctl-emulator"
    assert "BEGIN" not in repr(account) and "private_key=" not in repr(account)
    assert permission_warning(samples / "credentials/AuthKey_EMU0000001.p8") is None


def test_p8_not_pkcs8_sec1(tmp_path: Path) -> None:
    path = key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()),
                    fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    with pytest.raises(CredentialFileError, match="not a PKCS#8 PEM private key: it is a SEC1") as info:
        load_apns_key(path, None, "DEF123GHIJ")
    assert info.value.file == str(path)
    assert info.value.exit_code == ExitCode.USAGE


def test_p8_garbage(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    path.write_text("hello")
    with pytest.raises(CredentialFileError, match="not a PKCS#8 PEM"):
        load_apns_key(path, None, "DEF123GHIJ")


def test_p8_rsa_key_says_so(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(CredentialFileError, match=r"an RSA key \(2048 bit\); APNs token keys are EC P-256"):
        load_apns_key(key_file(tmp_path, rsa_key), None, "DEF123GHIJ")


def test_p8_wrong_curve_says_which(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match="EC key on curve secp384r1"):
        load_apns_key(key_file(tmp_path, ec.generate_private_key(ec.SECP384R1())), None, "DEF123GHIJ")


@pytest.mark.parametrize(
    ("key_id", "team_id", "field"),
    [("abc", "DEF123GHIJ", "key_id"), ("ABC123DEFG", "def123ghij", "team_id"),
     ("ABC123DEFG", None, "team_id"), ("ABC123DEFGH", "DEF123GHIJ", "key_id")],
)
def test_p8_bad_ids(tmp_path: Path, key_id: str, team_id: str | None, field: str) -> None:
    path = key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()), name="key.p8")
    with pytest.raises(CredentialFileError) as info:
        load_apns_key(path, key_id, team_id)
    assert info.value.field == field
    assert "10 characters" in str(info.value) or "missing" in str(info.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match="not found") as info:
        load_apns_key(tmp_path / "none.p8", "ABC123DEFG", "DEF123GHIJ")
    assert info.value.file == str(tmp_path / "none.p8")
    with pytest.raises(CredentialFileError, match="directory"):
        load_service_account(tmp_path)


# -- certificates --------------------------------------------------------------


def test_p12_with_password_topics_and_pem_files(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    # Apple's extension: SEQUENCE { UTF8String topic, SEQUENCE { UTF8String "app" }, ... }
    inner = b"\x0c\x0fcom.example.app" + b"\x30\x05\x0c\x03app" + b"\x0c\x08x.y.voip"
    ext = bytes([0x30, len(inner)]) + inner
    cert = make_cert(rsa_key, topics_ext=ext, cn="Apple Development IOS Push Services: com.example.app")
    path = tmp_path / "push.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"push", rsa_key, cert, None, serialization.BestAvailableEncryption(b"s3cret")))
    loaded = load_apns_certificate(path, password=b"s3cret")
    assert loaded.topics == ("com.example.app", "x.y.voip")
    assert loaded.environment_hint == "sandbox"  # a development certificate, by its name
    assert "s3cret" not in repr(loaded) and "BEGIN" not in repr(loaded)
    cert_pem, key_pem = loaded.pem_files(tmp_path)
    assert (cert_pem.stat().st_mode & 0o777, key_pem.stat().st_mode & 0o777) == (0o600, 0o600)
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_pem, key_pem)


@pytest.mark.parametrize("password", [b"wrong", None])
def test_p12_wrong_password(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, password: bytes | None) -> None:
    path = tmp_path / "push.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"push", rsa_key, make_cert(rsa_key), None, serialization.BestAvailableEncryption(b"s3cret")))
    with pytest.raises(CredentialFileError, match="wrong password or not a PKCS#12 file") as info:
        load_apns_certificate(path, password=password)
    assert info.value.field == "password"


def test_pem_cert_with_and_without_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(make_cert(rsa_key, uid="com.example.pem").public_bytes(PEM))
    with pytest.raises(CredentialFileError, match="PEM certificate without a private key") as info:
        load_apns_certificate(cert_path)
    assert info.value.field == "cert_key_file"
    key_path = key_file(tmp_path, rsa_key, name="key.pem")
    loaded = load_apns_certificate(cert_path, key_path=key_path)
    assert (loaded.topics, loaded.environment_hint) == (("com.example.pem",), None)
    combined = tmp_path / "both.pem"
    combined.write_bytes(cert_path.read_bytes() + pem_key(rsa_key))
    assert load_apns_certificate(combined).topics == ("com.example.pem",)
    other = key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()), name="other.pem")
    with pytest.raises(CredentialFileError, match="does not belong"):
        load_apns_certificate(cert_path, key_path=other)


def test_expired_certificate_is_auth_error(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    cert = make_cert(rsa_key, days=-3)
    path = tmp_path / "old.pem"
    path.write_bytes(cert.public_bytes(PEM) + pem_key(rsa_key))
    with pytest.raises(CredentialError, match=r"certificate expired on \d{4}-\d\d-\d\d") as info:
        load_apns_certificate(path)
    assert info.value.exit_code == ExitCode.AUTH
    assert f"{cert.not_valid_after_utc:%Y-%m-%d}" in str(info.value)


# -- service accounts ------------------------------------------------------------


def service_account(tmp_path: Path, key: Any, **changes: Any) -> Path:
    doc = {"type": "service_account", "project_id": "p", "private_key_id": "abc",
           "private_key": pem_key(key).decode(), "client_email": "sa@p.iam.gserviceaccount.com",
           "token_uri": "https://oauth2.googleapis.com/token"}
    doc.update(changes)
    doc = {k: v for k, v in doc.items() if v is not None}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o600)
    return path


def test_google_services_json_is_named(samples: Path) -> None:
    with pytest.raises(CredentialFileError) as info:
        load_service_account(samples / "credentials/google-services.json")
    assert info.value.message == GOOGLE_SERVICES_MESSAGE
    assert "this is a google-services.json (an app's client config), not a service-account key" in (
        str(info.value))


def test_not_json_has_line(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text('{\n  "type": "service_account",\n  oops\n}')
    with pytest.raises(CredentialFileError, match="not JSON") as info:
        load_service_account(path)
    assert info.value.line == 3


def test_wrong_type_and_missing_fields(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(CredentialFileError, match="'authorized_user'") as info:
        load_service_account(service_account(tmp_path, rsa_key, type="authorized_user"))
    assert info.value.field == "type"
    with pytest.raises(CredentialFileError, match="missing fields: project_id, client_email"):
        load_service_account(service_account(tmp_path, rsa_key, project_id=None, client_email=""))


def test_service_account_key_checks(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    ok = load_service_account(service_account(tmp_path, rsa_key, token_uri=None))
    assert ok.token_uri == "https://oauth2.googleapis.com/token"
    with pytest.raises(CredentialFileError, match="not a PKCS#8") as info:
        sec1 = pem_key(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL).decode()
        load_service_account(service_account(tmp_path, rsa_key, private_key=sec1))
    assert info.value.field == "private_key"
    with pytest.raises(CredentialFileError, match="expected RSA"):
        load_service_account(service_account(tmp_path, ec.generate_private_key(ec.SECP256R1())))


# -- permissions -----------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_permission_warning(tmp_path: Path) -> None:
    path = key_file(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    assert permission_warning(path) is None
    path.chmod(0o644)
    warning = permission_warning(path)
    assert warning == f"key file {path} is readable by group/others; run chmod 600 {path}"


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_permission_warning_only_for_files_with_private_key_material(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, samples: Path
) -> None:
    cert = make_cert(rsa_key)
    cert_pem = cert.public_bytes(PEM)
    files = {
        "cert.pem": (cert_pem, False),  # a certificate alone is public
        "chain.pem": (cert_pem + make_cert(ec.generate_private_key(ec.SECP256R1())).public_bytes(PEM), False),
        "google-services.json": ((samples / "credentials/google-services.json").read_bytes(), False),
        "cert-and-key.pem": (cert_pem + pem_key(rsa_key), True),
        "key.pem": (pem_key(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL), True),
        "AuthKey_ABC123DEFG.p8": (pem_key(ec.generate_private_key(ec.SECP256R1())), True),
        "push.p12": (pkcs12.serialize_key_and_certificates(b"p", rsa_key, cert, None, NOENC), True),
        "sa.json": ((samples / "credentials/service-account.json").read_bytes(), True),
    }
    for name, (data, secret) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        path.chmod(0o644)
        warning = permission_warning(path)
        if secret:
            assert warning == f"key file {path} is readable by group/others; run chmod 600 {path}", name
        else:
            assert warning is None, name


# -- messages say what the file is, never a library's internals ---------------------------------


LIBRARY_INTERNALS = ("Unable to load PEM", "InvalidData", "Invalid symbol", "OpenSSL", "ASN.1", "error:")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("service-account.json", "this is a service-account JSON (the FCM key, for fcm.service_account), "
                                 "not a .p8 key"),
        ("google-services.json", "this is a google-services.json (an app's client config), not a .p8 key"),
    ],
)
def test_p8_given_a_json_file_says_what_it_is(samples: Path, name: str, expected: str) -> None:
    with pytest.raises(CredentialFileError) as info:
        load_apns_key(samples / "credentials" / name, "ABC123DEFG", "DEF123GHIJ")
    assert info.value.message == expected
    assert "AuthKey_<key id>.p8" in (info.value.hint or "")
    assert not any(s in str(info.value) for s in LIBRARY_INTERNALS)


def test_p8_other_json_and_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    path.write_text('{"hello": "-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----\\n"}')
    with pytest.raises(CredentialFileError) as info:
        load_apns_key(path, None, "DEF123GHIJ")
    assert info.value.message == "this is a JSON file, not a .p8 key"
    path.write_text("hello")
    with pytest.raises(CredentialFileError, match="not a PEM file"):
        load_apns_key(path, None, "DEF123GHIJ")


def test_p8_damaged_pem_block_hides_decoder_internals(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey_ABC123DEFG.p8"
    path.write_text("-----BEGIN PRIVATE KEY-----\n\\n!!not base64!!\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CredentialFileError) as info:
        load_apns_key(path, None, "DEF123GHIJ")
    assert info.value.message.startswith("malformed PKCS#8 key: the PEM block does not decode")
    assert not any(s in str(info.value) for s in LIBRARY_INTERNALS)


def test_service_account_given_a_p8_says_what_it_is(samples: Path) -> None:
    with pytest.raises(CredentialFileError) as info:
        load_service_account(samples / "credentials/AuthKey_EMU0000001.p8")
    assert info.value.message == "this is a PEM file (an APNs .p8 key?), not a service-account JSON"


@pytest.mark.parametrize(("value", "kind"), [(123, "a number"), (["k"], "an array"), (True, "a boolean")])
def test_service_account_field_of_the_wrong_type_says_so(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, value: Any, kind: str
) -> None:
    with pytest.raises(CredentialFileError) as info:
        load_service_account(service_account(tmp_path, rsa_key, private_key=value))
    assert info.value.message == f"wrong type: private_key is {kind}, expected a string"
    assert info.value.field == "private_key"
    assert "missing" not in str(info.value)
