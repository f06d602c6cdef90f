"""Online credential checks for Web Push (VAPID) and Huawei Push Kit (HMS).

* HMS: Huawei's OAuth endpoint issues an access token for the app id and secret, then one
  ``validate_only`` message to a probe token (nothing is delivered) proves the app may send: the
  answer ``80300007`` (all tokens invalid) is the expected one; ``80300002`` says Push Kit is not
  enabled for the app.
* Web Push has no credential endpoint and no dry run. VAPID keys are not registered anywhere:
  a push service checks the JWT on each push, and the key a subscription was made with. So the
  check pushes to a *probe* subscription id at the profile's ``webpush.endpoint`` (the emulator,
  or a push service you name): a 404 means the JWT was accepted and the id is unknown, as
  expected. With ``subscription`` (a ``PushSubscription.toJSON()`` from your own browser) it sends
  that subscription an empty push (TTL 0), which also proves the subscription was made with this
  key pair. Without either, Web Push is reported as not checked online.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pushctl.checks.credentials_online import OnlineCheck, check_apns_online, check_fcm_online
from pushctl.config import Profile
from pushctl.credentials import check_subject, load_hms_credentials, load_vapid_key
from pushctl.errors import AuthRefused, PushctlError
from pushctl.message import HMS_LIMIT, HmsRequest
from pushctl.providers import AttemptKind
from pushctl.providers.hms import HmsProvider, HmsTokens
from pushctl.providers.webpush import (
    OriginClient,
    VapidSigner,
    answer_reason,
    classify_webpush,
    split_endpoint,
)
from pushctl.transport import ConnectError, ConnectionLost

PROBE_SUBSCRIPTION = "/unknown-pushctl-credentials-probe"
"""Path of the probe push: an id no push service issued."""
HMS_PROBE_TOKEN = "pushctl-credentials-probe"
"""Not an HMS token: a ``validate_only`` message to it alone is answered 80300007."""

_VAPID_FIXES = {
    "ExpiredJwtToken": "synchronise the system clock (NTP): the push service says the fresh JWT is expired",
    "BadJwtAudience": "the push service does not accept the JWT's aud (its origin): check webpush.endpoint",
    "BadJwtSubject": "set webpush.subject to a mailto: or https: contact",
    "MissingAuthorization": "the request lost its Authorization header: is a proxy stripping it?",
}


async def check_webpush_online(
    profile: Profile, *, subscription: dict[str, Any] | None = None
) -> OnlineCheck:
    """One push (to a probe id, or to ``subscription``) and its answer as one row."""
    settings = profile.webpush
    path = settings.vapid_private_key
    kind = "online: push"
    try:
        assert path is not None
        key = load_vapid_key(path)
        subject = check_subject(settings.subject)
    except PushctlError as exc:
        return OnlineCheck(
            "webpush",
            kind,
            path,
            False,
            f"cannot load the credentials: {exc.message}",
            fix=exc.hint or "see the offline check above",
        )
    if subscription is not None:
        endpoint = str(subscription.get("endpoint", ""))
    elif settings.endpoint:
        endpoint = settings.endpoint + PROBE_SUBSCRIPTION
    else:
        return OnlineCheck(
            "webpush",
            kind,
            path,
            True,
            "not checked online: Web Push has no credential endpoint and no dry run",
            warnings=[
                "give --webpush-subscription FILE (a PushSubscription.toJSON() of your own browser) "
                "to prove the key pair with one empty push"
            ],
        )
    origin, target = split_endpoint(endpoint, settings.endpoint)
    client = OriginClient(origin, ca_file=profile.ca_file, max_connections=1)
    signer = VapidSigner(key, subject)
    headers = [("authorization", signer.header(origin)), ("ttl", "0"), ("urgency", "very-low")]
    try:
        status, _headers, body = await client.post(target, headers, b"")
    except (ConnectionLost, ConnectError) as exc:
        return OnlineCheck(
            "webpush",
            kind,
            path,
            False,
            f"no answer from {origin} ({type(exc).__name__})",
            fix="check the network, webpush.endpoint and ca_file",
            unreachable=True,
        )
    finally:
        await client.close()
    reason = answer_reason(body) if status >= 300 else ""
    attempt = classify_webpush(status, reason, None)
    who = f"key {key.application_server_key[:16]}… (subject {subject})"
    if subscription is None and attempt.kind is AttemptKind.INVALID_TOKEN and status in (404, 410):
        return OnlineCheck(
            "webpush",
            kind,
            path,
            True,
            f"{origin} accepted the VAPID JWT of {who} (probe answered {status}: no such "
            "subscription, as expected)",
        )
    if attempt.kind is AttemptKind.DELIVERED:
        detail = f"{origin} accepted a push signed by {who}"
        warnings = (
            []
            if subscription is not None
            else ["the probe id was accepted as a push: is webpush.endpoint a real push service?"]
        )
        return OnlineCheck("webpush", kind, path, True, detail + f" ({status})", warnings=warnings)
    if attempt.kind is AttemptKind.RETRYABLE:
        return OnlineCheck(
            "webpush",
            kind,
            path,
            False,
            f"{origin} answered {status} {reason}: nothing proven",
            fix="try again later",
            unreachable=True,
        )
    if attempt.kind is AttemptKind.INVALID_TOKEN and status in (401, 403):
        return OnlineCheck(
            "webpush",
            kind,
            path,
            False,
            f"the subscription was made with another application server key than {who} ({reason})",
            fix="set webpush.vapid_private_key to the key pair whose public key the web app passes to "
            f"pushManager.subscribe() (this profile's is {key.application_server_key})",
        )
    if attempt.kind is AttemptKind.INVALID_TOKEN:
        return OnlineCheck(
            "webpush",
            kind,
            path,
            False,
            f"the subscription is gone ({status} {reason})",
            fix="subscribe again in the browser and pass the new subscription",
        )
    code = reason.split(":", 1)[0].strip()
    fix = _VAPID_FIXES.get(
        code,
        "check webpush.vapid_private_key and webpush.subject (`pushctl webpush keygen` makes a new key pair)",
    )
    return OnlineCheck(
        "webpush", kind, path, False, f"{origin} refused the VAPID JWT of {who}: {status} {reason}", fix=fix
    )


async def check_hms_online(profile: Profile) -> OnlineCheck:
    """An access token from Huawei's OAuth endpoint, then one validate_only message."""
    settings = profile.hms
    kind = "online: token + validate_only"
    path = settings.client_secret_file
    try:
        credentials = load_hms_credentials(settings)
    except PushctlError as exc:
        return OnlineCheck(
            "hms",
            kind,
            path,
            False,
            f"cannot load the credentials: {exc.message}",
            fix=exc.hint or "see the offline check above",
        )
    tokens = HmsTokens(credentials, settings.oauth_url, ca_file=profile.ca_file)
    try:
        await tokens.get()
    except AuthRefused as exc:
        if "client_id" in exc.message or "app id" in exc.message:
            fix = (
                f"hms.app_id ({credentials.app_id}) is not an app Huawei knows: copy the App ID from "
                "AppGallery Connect → Project settings → App information"
            )
        else:
            fix = (
                f"the client secret in {credentials.source} is not app {credentials.app_id}'s: copy it from "
                "AppGallery Connect → Project settings → App information"
            )
        return OnlineCheck("hms", kind, path, False, exc.message, fix=fix)
    except PushctlError as exc:
        return OnlineCheck(
            "hms",
            kind,
            path,
            False,
            exc.message,
            fix="check the network, hms.token_url and ca_file",
            unreachable=True,
        )
    provider = HmsProvider(
        settings.url,
        app_id=credentials.app_id,
        tokens=tokens,
        ca_file=profile.ca_file,
        validate_only=True,
        max_connections=1,
    )
    probe = HmsRequest(HMS_PROBE_TOKEN, b'{"data":"{}"}', validate_only=True, limit=HMS_LIMIT)
    try:
        await provider.start()
        attempt = await provider.send(probe)
    except PushctlError as exc:
        return OnlineCheck(
            "hms",
            kind,
            path,
            False,
            exc.message,
            fix="check the network, hms.endpoint and ca_file",
            unreachable=True,
        )
    finally:
        await provider.close()
    got = f"got an access token for app {credentials.app_id} from {settings.oauth_url}"
    if attempt.kind in (AttemptKind.INVALID_TOKEN, AttemptKind.DELIVERED):
        return OnlineCheck(
            "hms",
            kind,
            path,
            True,
            f"{got}; a validate_only message was accepted (probe answered {attempt.reason or 'ok'})",
        )
    if attempt.kind is AttemptKind.AUTH_FAILED:
        fix = (
            "enable Push Kit for the app in AppGallery Connect → Grow → Push Kit"
            if attempt.reason.startswith("80300002")
            else "check hms.app_id and the client secret"
        )
        return OnlineCheck(
            "hms", kind, path, False, f"{got}, but Huawei refused to send: {attempt.reason}", fix=fix
        )
    return OnlineCheck(
        "hms",
        kind,
        path,
        False,
        f"{got}; the probe answered {attempt.status} {attempt.reason}",
        fix="try again later" if attempt.kind is AttemptKind.RETRYABLE else "check hms.endpoint",
        unreachable=attempt.kind is AttemptKind.RETRYABLE,
    )


async def check_online(
    profile: Profile,
    *,
    password: Callable[[], bytes | None] | None = None,
    skip: frozenset[str] = frozenset(),
    webpush_subscription: dict[str, Any] | None = None,
) -> list[OnlineCheck]:
    """One online row per configured provider not in ``skip`` (in the offline rows' order)."""
    rows: list[OnlineCheck] = []
    if profile.apns.configured and "apns" not in skip:
        rows.append(await check_apns_online(profile, password=password))
    if profile.fcm.configured and profile.fcm.service_account is not None and "fcm" not in skip:
        rows.append(await check_fcm_online(profile))
    if profile.webpush.configured and "webpush" not in skip:
        rows.append(await check_webpush_online(profile, subscription=webpush_subscription))
    if profile.hms.configured and "hms" not in skip:
        rows.append(await check_hms_online(profile))
    return rows
