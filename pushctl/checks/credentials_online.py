"""Online credential checks: prove each credential against the service itself.

* FCM: exchange the service account's signed assertion for an OAuth2 access token. Success
  proves the key is current and belongs to the account; the row names account and project.
* APNs: one push to :data:`PROBE_TOKEN`, a well-formed token no device has. APNs checks the
  credentials, the topic and the environment before it looks at the token, so the answer
  ``BadDeviceToken`` proves all three are accepted; any other refusal says which one is wrong.

Each check is one :class:`~pushctl.credentials.checks.CredentialCheck` row, like the offline
ones, so ``pushctl credentials check --online`` prints both lists as one table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pushctl.checks.tokens_online import silent_notification
from pushctl.config import Profile
from pushctl.credentials import (
    ApnsCertificate,
    ApnsTokenKey,
    CredentialCheck,
    expiry_warning,
    load_apns_certificate,
    load_apns_key,
    load_service_account,
)
from pushctl.errors import AuthRefused, PushctlError
from pushctl.message import build_apns
from pushctl.model import Device, Platform
from pushctl.paths import data_dir, write_private
from pushctl.providers import Attempt, AttemptKind
from pushctl.providers.apns import ApnsProvider, jwt_cache_path
from pushctl.providers.fcm import AccessTokens

PROBE_TOKEN = "0" * 64
"""Well-formed (64 hex characters) and issued to no device: APNs answers ``BadDeviceToken``."""

_TOKEN_ACCEPTED = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "ExpiredToken"})
"""Answers about the token itself: the credentials, topic and environment got past APNs' checks."""


@dataclass
class OnlineCheck(CredentialCheck):
    """A row of an online check; ``unreachable`` when the service did not answer at all."""

    unreachable: bool = False


def _key_line(key: ApnsTokenKey) -> str:
    return f"key {key.key_id} (team {key.team_id})"


def apns_refusal(reason: str, profile: Profile, key: ApnsTokenKey | None) -> tuple[str, str]:
    """(what is wrong, what to fix) for an APNs refusal of the probe, per reason."""
    apns = profile.apns
    env, topic = apns.environment, apns.topic
    who = _key_line(key) if key is not None else "the certificate"
    if key is not None and reason == "InvalidProviderToken":
        seen = accepted_before(key.key_id)
        if seen is not None and seen[0] != key.team_id:
            return (
                f"APNs does not accept {who}: team id {key.team_id} does not own key {key.key_id} "
                f"(it was accepted with team id {seen[0]} on {seen[1]}) (InvalidProviderToken)",
                f"set apns.team_id to {seen[0]}, the team that owns key {key.key_id}",
            )
        if seen is not None:
            return (
                f"APNs no longer accepts {who}: it was accepted on {seen[1]}, so the key has been "
                "revoked (InvalidProviderToken)",
                "create a new key on developer.apple.com → Certificates, Identifiers & Profiles → Keys "
                "and set apns.key_file and apns.key_id",
            )
        # APNs gives this one answer for a team id that does not own the key, a revoked key and
        # a key id it never issued: name the values so the user can compare them with the portal.
        return (
            f"APNs does not accept {who}: either team id {key.team_id} does not own key {key.key_id}, "
            f"or key {key.key_id} was revoked (InvalidProviderToken)",
            f"check apns.team_id ({key.team_id}) and apns.key_id ({key.key_id}) against "
            "developer.apple.com → Certificates, Identifiers & Profiles → Keys; if the key is revoked "
            "or missing there, create a new key and set apns.key_file and apns.key_id",
        )
    table = {
        "TopicDisallowed": (
            f"{who} is accepted, but may not push to topic {topic} (TopicDisallowed)",
            f"check apns.topic: set it to the bundle id of an app of team "
            f"{key.team_id if key else 'the certificate'}",
        ),
        "BadTopic": (f"apns.topic {topic!r} is not a valid bundle id (BadTopic)",
                     "set apns.topic to your app's bundle id, e.g. com.example.app"),
        "MissingTopic": ("no topic was sent (MissingTopic)", "set apns.topic to your app's bundle id"),
        "BadEnvironmentKeyIdInToken": (
            f"{who} is not enabled for the {env} environment (BadEnvironmentKeyIdInToken)",
            f"check apns.environment ({env}); or enable the key for {env} on developer.apple.com",
        ),
        "ExpiredProviderToken": (
            "APNs says a freshly signed token is expired (ExpiredProviderToken): "
            "this machine's clock is wrong",
            "synchronise the system clock (NTP) and check again",
        ),
        "UnrelatedKeyIdInToken": (
            f"APNs ties this connection to another key than {who} (UnrelatedKeyIdInToken)",
            "use one key per profile",
        ),
        "MissingProviderToken": ("APNs saw neither a token nor a client certificate (MissingProviderToken)",
                                 "set apns.key_file/key_id/team_id or apns.cert_file"),
        "BadCertificate": ("APNs does not accept the client certificate (BadCertificate)",
                           "use an Apple Push Notification service SSL certificate for this app "
                           "(apns.cert_file)"),
        "BadCertificateEnvironment": (
            f"the certificate is not valid for the {env} environment (BadCertificateEnvironment)",
            f"check apns.environment ({env}) or use the certificate made for {env}",
        ),
        "Forbidden": (f"APNs refuses {who} (Forbidden): it was revoked",
                      "create a new certificate or key on developer.apple.com and update the profile"),
        "InvalidProviderToken": ("APNs refuses the credentials (InvalidProviderToken)",
                                 "check apns.key_file, apns.key_id and apns.team_id"),
    }
    if reason in table:
        return table[reason]
    return (f"APNs refused the probe ({reason})", "see the reason in Apple's APNs error table")


def _accepted_file() -> Path:
    return data_dir() / "apns-accepted-keys.json"


def remember_accepted(key: ApnsTokenKey) -> None:
    """Note that APNs accepted ``key`` with its team id (ids and a date only, nothing secret).

    APNs answers ``InvalidProviderToken`` alike for a wrong team id and a revoked key; what
    was accepted before tells the two apart on a later check.
    """
    path = _accepted_file()
    seen = _load_accepted(path)
    seen[key.key_id] = {"team_id": key.team_id, "date": datetime.now(UTC).date().isoformat()}
    with contextlib.suppress(OSError):
        write_private(path, json.dumps(seen, indent=1, sort_keys=True))


def accepted_before(key_id: str) -> tuple[str, str] | None:
    """(team id, date) APNs last accepted ``key_id`` with, if this machine has seen it."""
    entry = _load_accepted(_accepted_file()).get(key_id)
    if isinstance(entry, dict) and isinstance(entry.get("team_id"), str):
        return entry["team_id"], str(entry.get("date", "an earlier check"))
    return None


def _load_accepted(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def check_apns_online(
    profile: Profile, *, password: Callable[[], bytes | None] | None = None
) -> OnlineCheck:
    """Send one push to :data:`PROBE_TOKEN` and turn the answer into one row."""
    apns = profile.apns
    key: ApnsTokenKey | None = None
    cert: ApnsCertificate | None = None
    try:
        if apns.key_file is not None:
            key = load_apns_key(apns.key_file, apns.key_id, apns.team_id)
        else:
            assert apns.cert_file is not None
            cert = load_apns_certificate(apns.cert_file, key_path=apns.cert_key_file,
                                         password=password() if password is not None else None)
    except PushctlError as exc:
        return OnlineCheck("apns", "online: push", None, False, f"cannot load the credentials: {exc.message}",
                           fix=exc.hint or "see the offline check above")
    path = apns.key_file or apns.cert_file
    # Certificate auth without apns.topic: the certificate's own topic, as APNs would use it.
    topic = apns.topic or (cert.topics[0] if cert is not None and cert.topics else "")
    warnings = [w for w in [expiry_warning(cert.not_after)] if w] if cert is not None else []
    # The JWT cache `pushctl send` uses: a check signs no new token while that one is current, since
    # APNs refuses a new token for the same key within 20 minutes (TooManyProviderTokenUpdates).
    provider = ApnsProvider(apns.url, topic=topic, key=key, certificate=cert, ca_file=profile.ca_file,
                            max_connections=1, jwt_cache=jwt_cache_path(key) if key is not None else None)
    device = Device(PROBE_TOKEN, Platform.IOS, source="credentials check")
    request = build_apns(silent_notification(probe=True), device.token, topic=topic)
    try:
        await provider.start()
        attempt = await provider.send(request)
    except (OSError, PushctlError) as exc:
        attempt = Attempt(AttemptKind.RETRYABLE, None, getattr(exc, "message", type(exc).__name__))
    finally:
        await provider.close()
    who = _key_line(key) if key is not None else "the certificate"
    where = f"{apns.environment} environment at {apns.url}"
    if attempt.status is None:
        return OnlineCheck("apns", "online: push", path, False,
                           f"no answer from APNs at {apns.url} ({attempt.reason})",
                           fix="check the network, apns.endpoint and ca_file", warnings=warnings,
                           unreachable=True)
    if attempt.reason in _TOKEN_ACCEPTED or attempt.status == 200:
        if key is not None:
            remember_accepted(key)
        detail = (f"APNs accepted {who}, topic {topic} and the {apns.environment} environment at "
                  f"{apns.url} (probe answered {attempt.reason or attempt.status})")
        if attempt.status == 200:
            warnings.append("the probe token was delivered: is apns.endpoint a real APNs server?")
        return OnlineCheck("apns", "online: push", path, True, detail, warnings=warnings)
    if attempt.reason == "TooManyProviderTokenUpdates":
        # APNs refused a new token this soon after the last one (signed elsewhere, or the cache was
        # lost): the request never reached the topic check, so the topic is not proven. Not a wrong
        # credential either: a temporary refusal, reported like an unreachable service (exit 4).
        return OnlineCheck("apns", "online: push", path, False,
                           f"APNs refused a new provider token for {who} this soon after the last one "
                           f"(TooManyProviderTokenUpdates): topic {topic} and the {where} not checked",
                           fix="run again in 20 minutes (APNs accepts a new token per key every 20 minutes)",
                           warnings=warnings, unreachable=True)
    if attempt.status == 429 or attempt.status >= 500:
        return OnlineCheck("apns", "online: push", path, False,
                           f"APNs answered {attempt.status} {attempt.reason}: nothing proven",
                           fix="try again later", warnings=warnings, unreachable=True)
    problem, fix = apns_refusal(attempt.reason, profile, key)
    return OnlineCheck("apns", "online: push", path, False, problem, fix=fix, warnings=warnings)


async def check_fcm_online(profile: Profile) -> OnlineCheck:
    """Obtain an OAuth2 access token for the service account and turn the answer into one row."""
    fcm = profile.fcm
    assert fcm.service_account is not None
    path = fcm.service_account
    try:
        account = load_service_account(path)
    except PushctlError as exc:
        return OnlineCheck("fcm", "online: access token", path, False,
                           f"cannot load the service account: {exc.message}", fix=exc.hint or "")
    token_uri = fcm.token_uri or account.token_uri
    tokens = AccessTokens(account, token_uri, ca_file=profile.ca_file)
    try:
        await tokens.get()
    except AuthRefused as exc:
        return OnlineCheck("fcm", "online: access token", path, False, exc.message,
                           fix=_fcm_fix(exc.message, account.client_email, token_uri))
    except PushctlError as exc:
        return OnlineCheck("fcm", "online: access token", path, False, exc.message,
                           fix="check the network, fcm.token_uri and ca_file", unreachable=True)
    return OnlineCheck(
        "fcm", "online: access token", path, True,
        f"got an access token for {account.client_email}, project {account.project_id} from {token_uri}",
    )


def _fcm_fix(message: str, email: str, token_uri: str) -> str:
    if "audience" in message:
        return f"fcm.token_uri ({token_uri}) is not the token endpoint Google expects"
    if "Signature" in message or "invalid_grant" in message:
        return (f"the key was deleted or the account {email} does not exist: create a new key in "
                "Google Cloud console → IAM → Service accounts and set fcm.service_account")
    if "timeframe" in message:
        return "synchronise the system clock (NTP) and check again"
    return f"check that {email} is a current key of that account"
