"""Credentials of the newer platforms, offline: the VAPID key pair (Web Push) and the HMS app secret.

VAPID (RFC 8292): an EC P-256 key pair. The private key stays in ``webpush.vapid_private_key``
(PKCS#8 or SEC1 PEM, or the bare base64url scalar ``web-push generate-vapid-keys`` prints); the
public key, base64url of the uncompressed point, is the *application server key* the web app passes
to ``pushManager.subscribe()``. ``pushctl webpush keygen`` writes a new pair (0600).

HMS: an app id and a client secret (AppGallery Connect → Project settings → App information); the
secret comes from a file or an environment variable, never from the config file itself.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushctl.errors import ConfigError, CredentialFileError
from pushctl.inputs import CREDENTIAL_MAX_BYTES, read_bounded

if TYPE_CHECKING:
    from pushctl.config import HmsSettings

VAPID_HINT = "create a key pair with `pushctl webpush keygen PATH` and set webpush.vapid_private_key to it"
_B64URL_SCALAR = re.compile(r"[A-Za-z0-9_\-]{42,44}={0,2}")
_HMS_APP_ID = re.compile(r"[0-9]{5,20}")


@dataclass(frozen=True)
class VapidKey:
    """A VAPID key pair; ``application_server_key`` is what the web app subscribes with."""

    path: Path
    application_server_key: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)


def _public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read(path: Path) -> bytes:
    if not os.path.lexists(path.expanduser()):
        raise CredentialFileError("VAPID key file not found", file=path, hint=VAPID_HINT)
    return read_bounded(path, what="VAPID key file", limit=CREDENTIAL_MAX_BYTES, error=CredentialFileError)


def load_vapid_key(path: Path) -> VapidKey:
    """Load the VAPID private key (PEM, or a bare base64url P-256 scalar) and derive its public half."""
    data = _read(path)
    text = data.strip().decode("ascii", "replace")
    key: object
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" not in data:
            raise CredentialFileError("a PEM file without a private key (a public key or certificate?)",
                                      file=path, hint=VAPID_HINT)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise CredentialFileError("the PEM key is encrypted; VAPID keys are kept unencrypted (mode 0600)",
                                      file=path, hint=VAPID_HINT) from None
        except ValueError:
            raise CredentialFileError("malformed PEM private key (edited, truncated or joined lines?)",
                                      file=path, hint=VAPID_HINT) from None
    elif _B64URL_SCALAR.fullmatch(text):
        try:
            scalar = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise CredentialFileError("not a base64url private key", file=path, hint=VAPID_HINT) from None
        if len(scalar) != 32:
            raise CredentialFileError(f"a raw VAPID private key is 32 bytes, this one is {len(scalar)}",
                                      file=path, hint=VAPID_HINT)
        try:
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        except ValueError:
            raise CredentialFileError("not a valid P-256 private key", file=path, hint=VAPID_HINT) from None
    else:
        raise CredentialFileError("not a VAPID private key (expected a PEM file or a base64url P-256 key)",
                                  file=path, hint=VAPID_HINT)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialFileError("VAPID keys are EC P-256 (ES256); this is another kind of key",
                                  file=path, hint=VAPID_HINT)
    return VapidKey(path=path, application_server_key=_public_b64(key), private_key=key)


def generate_vapid_key(path: Path, *, overwrite: bool = False) -> VapidKey:
    """Write a new P-256 key pair to ``path`` (PKCS#8 PEM, mode 0600); refuse to replace a file."""
    path = path.expanduser()
    if path.exists() and not overwrite:
        raise CredentialFileError("already exists: a new key would orphan every subscription made with it",
                                  file=path, hint="choose another path, or pass --force to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed
    return VapidKey(path=path, application_server_key=_public_b64(key), private_key=key)


def check_subject(subject: str | None) -> str:
    """The VAPID ``sub`` claim; ConfigError when missing or not ``mailto:``/``https:``."""
    hint = "pushctl config set webpush.subject mailto:you@example.com"
    if not subject:
        raise ConfigError("webpush.subject is not set (push services want a contact: mailto: or https:)",
                          field="webpush.subject", hint=hint)
    if not subject.startswith(("mailto:", "https://")):
        raise ConfigError(f"{subject!r} is not a mailto: or https: contact",
                          field="webpush.subject", hint=hint)
    return subject


@dataclass(frozen=True)
class HmsCredentials:
    """A Huawei app id and its client secret (OAuth 2.0 client credentials)."""

    app_id: str
    source: str
    """Where the secret came from: a file path or ``$VARIABLE`` (for messages)."""
    client_secret: str = field(repr=False)


def load_hms_credentials(settings: HmsSettings, env: Mapping[str, str] = os.environ) -> HmsCredentials:
    """The app id and secret of an ``[hms]`` section; ConfigError / CredentialFileError say what to set."""
    if not settings.app_id:
        raise ConfigError("hms.app_id is not set", field="hms.app_id",
                          hint="the App ID from AppGallery Connect → Project settings → App information")
    if not _HMS_APP_ID.fullmatch(settings.app_id):
        raise ConfigError(f"{settings.app_id!r} is not an HMS app id (digits only)", field="hms.app_id",
                          hint="the App ID from AppGallery Connect → Project settings → App information")
    if settings.client_secret_file is not None:
        path = settings.client_secret_file
        try:
            secret = path.expanduser().read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise CredentialFileError("HMS client secret file not found", file=path,
                                      field="hms.client_secret_file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialFileError(f"cannot read the HMS client secret: {exc}", file=path) from None
        if not secret or "\n" in secret:
            raise CredentialFileError("the file must hold the client secret alone, on one line", file=path,
                                      field="hms.client_secret_file")
        return HmsCredentials(settings.app_id, str(path), secret)
    var = settings.secret_env
    secret = env.get(var, "").strip()
    if not secret:
        raise ConfigError(
            f"no HMS client secret: ${var} is empty and hms.client_secret_file is not set",
            field="hms.client_secret_file",
            hint=f"export {var}=... (AppGallery Connect → App information → Client secret), "
            "or set hms.client_secret_file to a 0600 file holding it",
        )
    return HmsCredentials(settings.app_id, f"${var}", secret)
