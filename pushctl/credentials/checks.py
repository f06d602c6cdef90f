"""Offline credential checks for a profile: every file is loaded and cross-checked, and each
check becomes one :class:`CredentialCheck` row (the ``pushctl credentials check`` table).

Online checks (a real token request / a dry-run push) belong in another module that
returns the same rows, so the command can simply concatenate both lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pushctl.credentials.keys import (
    ApnsCertificate,
    expiry_warning,
    load_apns_certificate,
    load_apns_key,
    load_service_account,
    permission_warning,
)
from pushctl.credentials.platforms import check_subject, load_hms_credentials, load_vapid_key
from pushctl.errors import CredentialFileError, InputError, PushctlError
from pushctl.inputs import CA_MAX_BYTES, read_bounded

if TYPE_CHECKING:
    from pushctl.config import Profile

PasswordSource = Callable[[], bytes | None]


@dataclass
class CredentialCheck:
    """One checked credential (or a required setting around it) and what to do if it failed."""

    provider: str
    kind: str
    path: Path | None
    ok: bool
    detail: str
    fix: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (no key material is ever held here)."""
        return {"provider": self.provider, "kind": self.kind, "path": str(self.path) if self.path else None,
                "ok": self.ok, "detail": self.detail, "fix": self.fix, "warnings": list(self.warnings)}


def check_offline(profile: Profile, *, password: PasswordSource | None = None) -> list[CredentialCheck]:
    """Load every credential the profile names and report one row per check.

    ``password`` is called at most once, and only when a certificate or its key turns out to
    be encrypted; it may return None (no password available).
    """
    checks: list[CredentialCheck] = []
    if profile.apns.configured:
        checks.extend(_check_apns(profile, password))
    if profile.fcm.configured and profile.fcm.service_account is not None:
        checks.append(_check_fcm(profile.fcm.service_account, profile.fcm.token_uri))
    if profile.webpush.configured:
        checks.append(_check_vapid(profile))
    if profile.hms.configured:
        checks.append(_check_hms(profile))
    if profile.ca_file is not None:
        checks.append(_check_ca(profile.ca_file))
    return checks


def _failed(provider: str, kind: str, path: Path | None, exc: PushctlError) -> CredentialCheck:
    detail = exc.message
    if isinstance(exc, InputError):
        where = [f"line {exc.line}"] if exc.line else []
        where += [f"field '{exc.field}'"] if exc.field else []
        detail = f"{', '.join(where)}: {detail}" if where else detail
    return CredentialCheck(provider, kind, path, False, detail, fix=exc.hint or "")


def _check_apns(profile: Profile, password: PasswordSource | None) -> list[CredentialCheck]:
    apns = profile.apns
    target = f"{apns.environment} → {apns.url}"
    if apns.key_file is not None:
        kind, path = "token key (.p8)", apns.key_file
        try:
            key = load_apns_key(path, apns.key_id, apns.team_id)
        except PushctlError as exc:
            rows = [_failed("apns", kind, path, exc)]
        else:
            row = CredentialCheck("apns", kind, path, True,
                                  f"key id {key.key_id}, team {key.team_id}, EC P-256; {target}")
            if apns.cert_file is not None:
                row.warnings.append("both key_file and cert_file are set; token auth (key_file) is used")
            rows = [row]
        rows[0].warnings.extend(w for w in [permission_warning(path)] if w)
        if apns.topic is None:
            rows.append(CredentialCheck("apns", "topic", None, False, "apns.topic is not set",
                                        fix="pushctl config set apns.topic <your app's bundle id>"))
        return rows
    assert apns.cert_file is not None
    return _check_certificate(profile, apns.cert_file, password, target)


def _check_certificate(
    profile: Profile, path: Path, password: PasswordSource | None, target: str
) -> list[CredentialCheck]:
    apns, kind = profile.apns, "certificate"
    warnings = [w for p in (path, apns.cert_key_file) if p is not None and (w := permission_warning(p))]
    try:
        cert = _load_certificate(path, apns.cert_key_file, password)
    except PushctlError as exc:
        row = _failed("apns", kind, path, exc)
        row.warnings.extend(warnings)
        return [row]
    if (soon := expiry_warning(cert.not_after)) is not None:
        warnings.append(soon)
    if cert.environment_hint and apns.endpoint is None and cert.environment_hint != apns.environment:
        warnings.append(
            f"the certificate is for {cert.environment_hint}, the profile uses {apns.environment}"
        )
    topics = ", ".join(cert.topics) or "none found"
    detail = f"topics: {topics}; expires {cert.not_after:%Y-%m-%d}; {target}"
    rows = [CredentialCheck("apns", kind, path, True, detail, warnings=warnings)]
    if apns.topic is None and not cert.topics:
        rows.append(CredentialCheck("apns", "topic", None, False,
                                    "apns.topic is not set and the certificate names no topic",
                                    fix="pushctl config set apns.topic <your app's bundle id>"))
    elif apns.topic is not None and cert.topics and not any(apns.topic.startswith(t) for t in cert.topics):
        warnings.append(f"apns.topic {apns.topic} is not among the certificate's topics ({topics})")
    return rows


def _load_certificate(path: Path, key_path: Path | None, password: PasswordSource | None) -> ApnsCertificate:
    try:
        return load_apns_certificate(path, key_path=key_path)
    except CredentialFileError as exc:
        # Ask for the password only once we know the file needs one.
        if exc.field != "password" or password is None:
            raise
        secret = password()
        if secret is None:
            raise
    return load_apns_certificate(path, key_path=key_path, password=secret)


def _check_fcm(path: Path, token_uri: str | None) -> CredentialCheck:
    kind = "service account"
    try:
        account = load_service_account(path)
    except PushctlError as exc:
        row = _failed("fcm", kind, path, exc)
    else:
        uri = token_uri or account.token_uri
        row = CredentialCheck("fcm", kind, path, True,
                              f"project {account.project_id}, {account.client_email}; token from {uri}")
    row.warnings.extend(w for w in [permission_warning(path)] if w)
    return row


def _check_vapid(profile: Profile) -> CredentialCheck:
    settings = profile.webpush
    path = settings.vapid_private_key
    assert path is not None
    kind = "VAPID key pair"
    try:
        key = load_vapid_key(path)
        subject = check_subject(settings.subject)
    except PushctlError as exc:
        row = _failed("webpush", kind, path, exc)
    else:
        service = settings.endpoint or "each subscription's own push service"
        row = CredentialCheck("webpush", kind, path, True,
                              f"application server key {key.application_server_key}; subject {subject}; "
                              f"sends to {service}")
    row.warnings.extend(w for w in [permission_warning(path)] if w)
    return row


def _check_hms(profile: Profile) -> CredentialCheck:
    settings = profile.hms
    kind = "app id + client secret"
    try:
        creds = load_hms_credentials(settings)
    except PushctlError as exc:
        return _failed("hms", kind, settings.client_secret_file, exc)
    row = CredentialCheck("hms", kind, settings.client_secret_file, True,
                          f"app {creds.app_id}, secret from {creds.source}; token from {settings.oauth_url}")
    if settings.client_secret_file is not None:
        row.warnings.extend(w for w in [permission_warning(settings.client_secret_file, secret=True)] if w)
    return row


def _check_ca(path: Path) -> CredentialCheck:
    from cryptography import x509

    try:
        data = read_bounded(path, what="CA file", limit=CA_MAX_BYTES)
        certs = x509.load_pem_x509_certificates(data)
    except InputError as exc:
        return CredentialCheck("tls", "CA file", path, False, exc.message,
                               fix="start the emulator once (it writes its CA) or fix ca_file")
    except ValueError:
        return CredentialCheck("tls", "CA file", path, False, "no PEM certificates in the file")
    return CredentialCheck("tls", "CA file", path, True, f"{len(certs)} certificate(s)")
