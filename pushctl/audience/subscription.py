"""Web Push subscriptions in audiences: what ``PushSubscription.toJSON()`` hands out, checked offline.

A subscription is an ``endpoint`` URL (the push service's address for one browser) and two keys:
``p256dh`` (the browser's P-256 public key, 65 bytes uncompressed, base64url) and ``auth`` (a
16-byte secret, base64url). An audience gives them as ``endpoint``/``p256dh``/``auth`` columns, as
a ``subscription`` JSON column, or as the JSON itself in place of a token. pushctl keeps the
endpoint as the device's token (it is what identifies, journals and prunes a subscription) and the
keys as the device attributes ``p256dh`` and ``auth``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pushctl.inputs import loads_bounded

P256DH = "p256dh"
AUTH = "auth"
SUBSCRIPTION_COLUMNS = ("endpoint", "subscription")
"""Columns that stand for the token column in a Web Push audience."""
MISSING_KEYS = (
    "Web Push subscription without keys: add p256dh and auth columns "
    "(the keys of PushSubscription.toJSON()), or give the whole subscription JSON"
)

_B64URL = re.compile(r"[A-Za-z0-9_\-]+={0,2}")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One parsed (not yet checked) subscription."""

    endpoint: str
    p256dh: str
    auth: str


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError when it is not base64url."""
    text = text.strip()
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def looks_like_subscription(text: str) -> bool:
    """True for a Web Push subscription given as a token: its JSON or its endpoint URL."""
    return text.startswith("{") or text.startswith("https://")


def parse_subscription_json(text: str) -> Subscription | str:
    """A subscription from ``{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}``, or a problem."""
    try:
        data = loads_bounded(text)
    except ValueError as exc:  # JsonTooDeep included: 100,000 nested brackets are a bad row
        return f"subscription is not valid JSON: {getattr(exc, 'msg', exc)}"
    if not isinstance(data, dict):
        return "subscription JSON must be an object with endpoint and keys"
    return subscription_from_mapping(data)


def subscription_from_mapping(data: dict[str, object]) -> Subscription | str:
    """A subscription from a parsed ``PushSubscription.toJSON()`` object (flat keys accepted too)."""
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        return "subscription has no endpoint"
    keys = data.get("keys", data)
    if not isinstance(keys, dict):
        return "subscription 'keys' must be an object with p256dh and auth"
    p256dh, auth = keys.get(P256DH), keys.get(AUTH)
    if not isinstance(p256dh, str) or not isinstance(auth, str) or not p256dh or not auth:
        return MISSING_KEYS
    return Subscription(endpoint.strip(), p256dh.strip(), auth.strip())


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be a push service URL, or None."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https":
        return "Web Push endpoints are https:// URLs"
    if not parts.hostname:
        return "Web Push endpoint has no host"
    if not parts.path or parts.path == "/":
        return "Web Push endpoint has no path (it names one subscription at the push service)"
    return None


def keys_problem(p256dh: str, auth: str) -> str | None:
    """Why the subscription keys cannot be used for RFC 8291 encryption, or None (shape only)."""
    try:
        public = b64url_decode(p256dh)
    except ValueError:
        return "p256dh is not base64url"
    if len(public) != 65 or public[0] != 4:
        return (f"p256dh must be an uncompressed P-256 public key (65 bytes starting 0x04), "
                f"got {len(public)} bytes")
    try:
        secret = b64url_decode(auth)
    except ValueError:
        return "auth is not base64url"
    if len(secret) != 16:
        return f"auth must be a 16-byte secret, got {len(secret)} bytes"
    return None


def subscription_problem(endpoint: str, attrs: dict[str, str]) -> str | None:
    """Everything offline about one Web Push device: its endpoint and its two keys."""
    problem = endpoint_problem(endpoint)
    if problem is not None:
        return problem
    p256dh, auth = attrs.get(P256DH, ""), attrs.get(AUTH, "")
    if not p256dh or not auth:
        return MISSING_KEYS
    return keys_problem(p256dh, auth)
