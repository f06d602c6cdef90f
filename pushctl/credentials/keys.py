"""Loading APNs keys and certificates and FCM service accounts, offline.

Every problem with a file is a :class:`~pushctl.errors.CredentialFileError` naming the file
and the field; an expired certificate is a :class:`~pushctl.errors.CredentialError`. Key
material lives only in ``repr=False`` fields and never reaches a message.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, ObjectIdentifier

from pushctl.errors import CredentialError, CredentialFileError, InputError, clip
from pushctl.inputs import CREDENTIAL_MAX_BYTES, loads_bounded, read_bounded

APPLE_TOPICS_OID = ObjectIdentifier("1.2.840.113635.100.6.3.6")
_APPLE_SANDBOX_OID = ObjectIdentifier("1.2.840.113635.100.6.3.1")
_APPLE_PRODUCTION_OID = ObjectIdentifier("1.2.840.113635.100.6.3.2")
EXPIRY_WARNING_DAYS = 30
GOOGLE_SERVICES_MESSAGE = (
    "this is a google-services.json (an app's client config), not a service-account key; "
    "download a key from Firebase console → Project settings → Service accounts"
)
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")
_SA_FIELDS = ("project_id", "private_key_id", "private_key", "client_email")
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class ApnsTokenKey:
    """An APNs auth key (``AuthKey_<key id>.p8``: PKCS#8, EC P-256) with its ids."""

    path: Path
    key_id: str
    team_id: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)


@dataclass(frozen=True)
class ApnsCertificate:
    """An APNs TLS client certificate and its key, with the topics it is good for."""

    path: Path
    certificate: x509.Certificate = field(repr=False)
    private_key: Any = field(repr=False)
    topics: tuple[str, ...]
    not_after: datetime
    environment_hint: str | None

    def pem_files(self, directory: Path) -> tuple[Path, Path]:
        """Write cert and key as PEM files (mode 0600) for ``ssl.SSLContext.load_cert_chain``.

        The caller deletes them; a temporary directory of its own is the right place.
        """
        cert_path, key_path = directory / "apns-cert.pem", directory / "apns-key.pem"
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for target, data in ((cert_path, self.certificate.public_bytes(serialization.Encoding.PEM)),
                             (key_path, key_pem)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return cert_path, key_path


@dataclass(frozen=True)
class ServiceAccount:
    """A Google service-account key (the JSON downloaded from the Firebase console)."""

    path: Path
    project_id: str
    client_email: str
    private_key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)


def _read(path: Path, what: str) -> bytes:
    return read_bounded(path, what=what, limit=CREDENTIAL_MAX_BYTES, error=CredentialFileError)


def _key_kind(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA key ({key.key_size} bit)"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on curve {key.curve.name}"
    return f"a {type(key).__name__.lstrip('_')}"


def load_apns_key(path: Path, key_id: str | None, team_id: str | None) -> ApnsTokenKey:
    """Load a ``.p8`` key; ``key_id`` defaults to the one in an ``AuthKey_<id>.p8`` file name."""
    data = _read(path, "APNs key file")
    p8_hint = "use the AuthKey_<key id>.p8 file downloaded from developer.apple.com, unchanged"
    if (json_kind := _json_kind(data)) is not None:
        raise CredentialFileError(f"{json_kind}, not a .p8 key", file=path, hint=p8_hint)
    if b"-----BEGIN PRIVATE KEY-----" not in data:
        if b"BEGIN EC PRIVATE KEY" in data:
            detail = "it is a SEC1 'EC PRIVATE KEY'"
        elif b"BEGIN ENCRYPTED PRIVATE KEY" in data:
            detail = "it is encrypted"
        elif b"BEGIN CERTIFICATE" in data:
            detail = "it is a certificate (use apns.cert_file for certificate auth)"
        elif b"-----BEGIN" not in data:
            detail = "not a PEM file (no '-----BEGIN PRIVATE KEY-----' line)"
        else:
            detail = "no '-----BEGIN PRIVATE KEY-----' block"
        raise CredentialFileError(f"not a PKCS#8 PEM private key: {detail}", file=path, hint=p8_hint)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's own message (OpenSSL / PEM decoder internals) helps nobody: say what is wrong.
        raise CredentialFileError(
            "malformed PKCS#8 key: the PEM block does not decode (edited, truncated or joined lines?)",
            file=path, hint=p8_hint,
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialFileError(
            f"{_key_kind(key)}; APNs token keys are EC P-256 (secp256r1)", file=path,
            hint="download the .p8 key from developer.apple.com → Certificates, IDs & Profiles → Keys",
        )
    if key_id is None and (m := re.fullmatch(r"AuthKey_([A-Z0-9]{10})\.p8", path.name)):
        key_id = m.group(1)
    for name, value, hint in (
        ("key_id", key_id, "the 10-character Key ID shown next to the key on developer.apple.com"),
        ("team_id", team_id, "the 10-character Team ID shown under Membership on developer.apple.com"),
    ):
        if not value:
            raise CredentialFileError("missing (needed with key_file)", file=path, field=name, hint=hint)
        if not _APPLE_ID.match(value):
            raise CredentialFileError(
                f"{clip(value, quote=True)} is not 10 characters A-Z/0-9", file=path, field=name, hint=hint
            )
    assert key_id is not None and team_id is not None
    return ApnsTokenKey(path=path, key_id=key_id, team_id=team_id, private_key=key)


def _json_kind(data: bytes) -> str | None:
    """What a JSON file given as a key is ("this is a service-account JSON", ...); None if not JSON."""
    if not data.lstrip().startswith((b"{", b"[")):
        return None
    try:
        doc = loads_bounded(data)
    except ValueError:  # UnicodeDecodeError, JSONDecodeError and JsonTooDeep alike
        return None
    if isinstance(doc, dict) and doc.get("type") == "service_account":
        return "this is a service-account JSON (the FCM key, for fcm.service_account)"
    if isinstance(doc, dict) and ("project_info" in doc or "client" in doc):
        return "this is a google-services.json (an app's client config)"
    return "this is a JSON file"


def load_apns_certificate(
    path: Path, *, key_path: Path | None = None, password: bytes | None = None
) -> ApnsCertificate:
    """Load a ``.p12`` (with ``password``) or a PEM certificate (key in the file or ``key_path``).

    Raises :class:`CredentialError` when the certificate has expired.
    """
    data = _read(path, "certificate file")
    if b"-----BEGIN" not in data:
        try:
            key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
        except (ValueError, TypeError):
            raise CredentialFileError(
                "wrong password or not a PKCS#12 file", file=path, field="password",
                hint="the password comes from $PUSHCTL_APNS_CERT_PASSWORD (or apns.cert_password_env)",
            ) from None
        if cert is None:
            raise CredentialFileError("the PKCS#12 file holds no certificate", file=path)
        if key is None:
            raise CredentialFileError("the PKCS#12 file holds no private key", file=path)
    else:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise CredentialFileError("no PEM certificate in the file", file=path) from None
        key_source = path
        if key_path is not None:
            key_source, data = key_path, _read(key_path, "certificate key file")
        elif b"PRIVATE KEY-----" not in data:
            raise CredentialFileError(
                "PEM certificate without a private key", file=path, field="cert_key_file",
                hint="set apns.cert_key_file to the key's PEM file, or export a .p12 instead",
            )
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except TypeError:
            raise CredentialFileError("the private key is encrypted and no password was given",
                                      file=key_source, field="password") from None
        except ValueError:
            raise CredentialFileError("wrong password or malformed PEM private key",
                                      file=key_source, field="password") from None
    _check_key_matches(path, cert, key)
    not_after = cert.not_valid_after_utc
    if not_after <= datetime.now(UTC):
        raise CredentialError(
            f"{path}: certificate expired on {not_after:%Y-%m-%d}",
            hint="create a new APNs certificate on developer.apple.com, or switch to a .p8 token key",
        )
    return ApnsCertificate(path=path, certificate=cert, private_key=key, topics=certificate_topics(cert),
                           not_after=not_after, environment_hint=_environment_hint(cert))


def _check_key_matches(path: Path, cert: x509.Certificate, key: Any) -> None:
    def public(k: Any) -> bytes:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return bytes(k.public_bytes(serialization.Encoding.DER, spki))

    if public(cert.public_key()) != public(key.public_key()):
        raise CredentialFileError("the private key does not belong to the certificate", file=path)


def certificate_topics(cert: x509.Certificate) -> tuple[str, ...]:
    """Topics the certificate may push to: the subject UID, then Apple's topics extension."""
    topics: list[str] = []
    for attr in cert.subject.get_attributes_for_oid(NameOID.USER_ID):
        topics.append(str(attr.value))
    try:
        ext = cert.extensions.get_extension_for_oid(APPLE_TOPICS_OID).value
    except x509.ExtensionNotFound:
        ext = None
    if isinstance(ext, x509.UnrecognizedExtension):
        topics.extend(t for t in _der_top_strings(ext.value) if t not in topics)
    return tuple(topics)


def _der_top_strings(der: bytes) -> list[str]:
    """UTF8Strings directly inside the outer SEQUENCE: Apple's ``topic, SEQUENCE{kind}, ...``.

    Best effort: a malformed extension gives what could be read so far.
    """
    def header(pos: int) -> tuple[int, int, int]:
        tag, length = der[pos], der[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(der[pos:pos + n], "big")
            pos += n
        return tag, pos, length

    out: list[str] = []
    try:
        tag, pos, length = header(0)
        if tag != 0x30:
            return out
        end = pos + length
        while pos < end:
            tag, start, length = header(pos)
            if tag == 0x0C:
                out.append(der[start:start + length].decode("utf-8"))
            pos = start + length
    except (IndexError, UnicodeDecodeError):
        pass
    return out


def _environment_hint(cert: x509.Certificate) -> str | None:
    oids = {ext.oid for ext in cert.extensions}
    sandbox, production = _APPLE_SANDBOX_OID in oids, _APPLE_PRODUCTION_OID in oids
    if sandbox != production:
        return "sandbox" if sandbox else "production"
    if sandbox:
        return None  # a universal certificate works with both
    common = " ".join(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    if "Development" in common:
        return "sandbox"
    return "production" if "Production" in common else None


def expiry_warning(not_after: datetime, now: datetime | None = None) -> str | None:
    """A warning when a certificate expires within :data:`EXPIRY_WARNING_DAYS`."""
    left = not_after - (now or datetime.now(UTC))
    if left.days < EXPIRY_WARNING_DAYS:
        return f"certificate expires on {not_after:%Y-%m-%d} (in {max(left.days, 0)} days)"
    return None


def load_service_account(path: Path) -> ServiceAccount:
    """Load and check a service-account JSON key (not a google-services.json)."""
    raw = _read(path, "service account file")
    if raw.lstrip().startswith(b"-----BEGIN"):
        what = "an APNs .p8 key?" if b"BEGIN PRIVATE KEY" in raw else "a key or certificate"
        raise CredentialFileError(
            f"this is a PEM file ({what}), not a service-account JSON", file=path,
            hint="download a key from Firebase console → Project settings → Service accounts",
        )
    try:
        doc = loads_bounded(raw)
    except UnicodeDecodeError:
        raise CredentialFileError("not JSON: the file is not UTF-8 text", file=path) from None
    except json.JSONDecodeError as exc:
        raise CredentialFileError(f"not JSON: {exc.msg}", file=path, line=exc.lineno) from None
    except ValueError as exc:  # too deep, or a number of more than 4,300 digits
        raise CredentialFileError(f"not a service-account JSON: {clip(str(exc).split(';')[0], 100)}",
                                  file=path) from None
    if not isinstance(doc, dict):
        raise CredentialFileError("expected a JSON object (a service-account key)", file=path)
    if "project_info" in doc or "client" in doc:
        raise CredentialFileError(GOOGLE_SERVICES_MESSAGE, file=path)
    if doc.get("type") != "service_account":
        hint = None
        if doc.get("type") == "authorized_user":
            hint = "that is a user credential from `gcloud auth application-default login`"
        raise CredentialFileError(f"type is {clip(doc.get('type'), quote=True)}, expected 'service_account'",
                                  file=path, field="type", hint=hint)
    wrong = [name for name in _SA_FIELDS if doc.get(name) is not None and not isinstance(doc[name], str)]
    if wrong:
        kinds = ", ".join(f"{name} is {_json_type(doc[name])}" for name in wrong)
        raise CredentialFileError(f"wrong type: {kinds}, expected a string", file=path, field=wrong[0],
                                  hint="download a new key: the file was edited")
    missing = [name for name in _SA_FIELDS if not doc.get(name)]
    if missing:
        raise CredentialFileError(f"missing fields: {', '.join(missing)}", file=path, field=missing[0])
    pem = doc["private_key"].encode()
    if b"-----BEGIN PRIVATE KEY-----" not in pem:
        raise CredentialFileError("private key is not a PKCS#8 PEM key", file=path, field="private_key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise CredentialFileError("malformed private key", file=path, field="private_key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialFileError(f"private key is {_key_kind(key)}, expected RSA",
                                  file=path, field="private_key")
    token_uri = doc.get("token_uri") or DEFAULT_TOKEN_URI
    return ServiceAccount(path=path, project_id=doc["project_id"], client_email=doc["client_email"],
                          private_key_id=doc["private_key_id"], token_uri=str(token_uri), private_key=key)


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, with an article ("a number")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else f"a {type(value).__name__}"


_PACKAGE_DIR = Path(__file__).resolve().parent.parent
PUBLIC_SAMPLE_DIRS = (_PACKAGE_DIR / "emulator" / "data", _PACKAGE_DIR.parent / "samples" / "credentials")
"""Where the throwaway sample keys live (git cannot keep them 0600, and they are public anyway)."""


def permission_warning(path: Path, *, secret: bool = False) -> str | None:
    """A warning when group or others can read a file holding a private key (or, with ``secret``,
    any file: e.g. one holding a client secret).

    None for files without key material (a PEM certificate alone is public) and for the
    public sample keys.
    """
    if os.name == "nt":
        return None
    try:
        resolved = path.expanduser().resolve()
        mode = resolved.stat().st_mode
    except OSError:
        return None
    # git cannot keep 0600 and these throwaway keys are public anyway.
    if any(resolved.is_relative_to(d) for d in PUBLIC_SAMPLE_DIRS):
        return None
    if not stat.S_ISREG(mode):  # a directory or a device: the check itself fails, chmod is no fix
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH) and (secret or _holds_private_key(resolved)):
        what = "secret file" if secret else "key file"
        return f"{what} {path} is readable by group/others; run chmod 600 {path}"
    return None


def _holds_private_key(path: Path) -> bool:
    """Whether the file may hold a private key: a PEM key block (also inside a service-account
    JSON), a JSON with a ``private_key`` field, or binary data (a .p12); not a PEM file of
    certificates only, nor a JSON without a key. Unreadable counts as holding one."""
    try:
        data = read_bounded(path, what="key file", limit=CREDENTIAL_MAX_BYTES)
    except InputError:
        return True
    if b"PRIVATE KEY-----" in data or b'"private_key"' in data:
        return True
    # PEM certificates only, or JSON without a key: nothing secret; else binary (a .p12)
    return not (b"-----BEGIN" in data or data.lstrip().startswith((b"{", b"[")))

__all__ = [
    "ApnsCertificate",
    "ApnsTokenKey",
    "ServiceAccount",
    "certificate_topics",
    "expiry_warning",
    "load_apns_certificate",
    "load_apns_key",
    "load_service_account",
    "permission_warning",
]
