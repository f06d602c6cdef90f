"""APNs and FCM HTTP v1 request builders, with the protocols' size limits.

A :class:`~pushctl.message.template.Notification` is platform-neutral; these functions turn it
into exactly the bytes a provider sends (no authorization header: the provider adds it).
The template's ``apns`` / ``fcm`` blocks are deep-merged last, so anything the
protocols support can be expressed even when pushctl has no field for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pushctl.errors import PayloadError
from pushctl.message.schema import MAX_COLLAPSE_ID_BYTES
from pushctl.message.source import is_reserved_data_key
from pushctl.message.template import Notification, deep_merge
from pushctl.model import Platform
from pushctl.runtime import dumps_compact

__all__ = [
    "APNS_LIMIT",
    "APNS_VOIP_LIMIT",
    "FCM_LIMIT",
    "ApnsRequest",
    "FcmRequest",
    "aps_dict",
    "build_apns",
    "build_fcm",
]

APNS_LIMIT = 4096
APNS_VOIP_LIMIT = 5120
FCM_LIMIT = 4096
FCM_MAX_TTL = 28 * 86400  # FCM keeps messages at most 4 weeks

# apns-topic suffix per push type (the bundle id alone for the others).
TOPIC_SUFFIX = {
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "location": ".location-query",
    "widgets": ".push-type.widgets",
}


@dataclass(slots=True)
class ApnsRequest:
    """One APNs request: ``POST path`` with ``headers`` and ``body``."""

    token: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    limit: int


@dataclass(slots=True)
class FcmRequest:
    """One FCM v1 ``messages:send`` request; ``body`` is what is POSTed."""

    token: str
    message: dict[str, Any]
    body: bytes
    limit: int
    size: int = 0
    """Bytes of the message JSON: what the limit applies to."""


_dumps = dumps_compact


def _check_size(size: int, limit: int, provider: str, where: str | None) -> None:
    if size > limit:
        raise PayloadError(
            f"payload is {size:,} bytes, over the {provider} limit of {limit:,}",
            file=where,
            hint="shorten the text or the data",
        )


def is_background(n: Notification) -> bool:
    """A silent push: wakes the app, shows nothing."""
    return n.push_type == "background"


def aps_dict(n: Notification) -> dict[str, Any]:
    """The ``aps`` dictionary of an APNs payload (shared by APNs and FCM's apns block)."""
    aps: dict[str, Any] = {}
    if not is_background(n):
        alert = {k: v for k, v in (("title", n.title), ("subtitle", n.subtitle), ("body", n.body)) if v}
        if alert:
            aps["alert"] = alert
    if n.badge is not None:
        aps["badge"] = n.badge
    if n.sound is not None:
        aps["sound"] = n.sound
    if n.thread_id:
        aps["thread-id"] = n.thread_id
    if n.category:
        aps["category"] = n.category
    if n.content_available or is_background(n):
        aps["content-available"] = 1
    if n.media is not None:
        # The app's notification service extension downloads the media.
        aps["mutable-content"] = 1
    if n.interruption_level:
        aps["interruption-level"] = n.interruption_level
    if n.relevance_score is not None:
        aps["relevance-score"] = n.relevance_score
    return aps


def _apns_payload(n: Notification) -> dict[str, Any]:
    payload: dict[str, Any] = {"aps": aps_dict(n)}
    payload.update(n.data)
    if n.media is not None:
        payload["media"] = {"url": n.media.url, "type": n.media.type}
    return payload


def _apns_headers(
    n: Notification, *, topic: str | None, collapse_id: str | None, now: float | None
) -> list[tuple[str, str]]:
    headers = [("apns-push-type", n.push_type)]
    headers.append(("apns-priority", "5" if is_background(n) or n.priority == "normal" else "10"))
    if topic:
        suffix = TOPIC_SUFFIX.get(n.push_type, "")
        headers.append(("apns-topic", topic if topic.endswith(suffix) else topic + suffix))
    if n.ttl is not None:
        expiration = 0 if n.ttl == 0 else int((time.time() if now is None else now) + n.ttl)
        headers.append(("apns-expiration", str(expiration)))
    if collapse_id:
        headers.append(("apns-collapse-id", collapse_id))
    return headers


def _override_headers(headers: list[tuple[str, str]], extra: dict[str, Any]) -> list[tuple[str, str]]:
    if not extra:
        return headers
    lowered = {name.lower(): str(value) for name, value in extra.items()}
    out = [(name, lowered.pop(name, value)) for name, value in headers]
    return out + list(lowered.items())


def build_apns(
    n: Notification,
    token: str,
    *,
    topic: str,
    default_collapse_id: str | None = None,
    now: float | None = None,
    where: str | None = None,
) -> ApnsRequest:
    """The APNs request for one device; raises :class:`PayloadError` over the size limit.

    ``where`` (``file:line`` of the audience row) goes into error messages.
    """
    collapse_id = n.collapse_id or default_collapse_id
    if collapse_id and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
        raise PayloadError(
            f"collapse id is {len(collapse_id.encode())} bytes; APNs allows at most {MAX_COLLAPSE_ID_BYTES}",
            file=where,
            field="apns-collapse-id",
        )
    headers = _apns_headers(n, topic=topic, collapse_id=collapse_id, now=now)
    payload = _apns_payload(n)
    if n.apns:
        headers = _override_headers(headers, n.apns.get("headers") or {})
        payload = deep_merge(payload, n.apns.get("payload") or {})
    body = _dumps(payload)
    limit = APNS_VOIP_LIMIT if n.push_type == "voip" else APNS_LIMIT
    _check_size(len(body), limit, "APNs VoIP" if limit == APNS_VOIP_LIMIT else "APNs", where)
    return ApnsRequest(token=token, path=f"/3/device/{token}", headers=headers, body=body, limit=limit)


def _android(n: Notification, collapse_key: str | None) -> dict[str, Any]:
    android: dict[str, Any] = {}
    if n.priority:
        android["priority"] = n.priority
    if n.ttl is not None:
        android["ttl"] = f"{min(n.ttl, FCM_MAX_TTL)}s"
    if collapse_key:
        android["collapse_key"] = collapse_key
    note: dict[str, Any] = {}
    if n.sound is not None and not is_background(n):
        note["sound"] = n.sound if isinstance(n.sound, str) else n.sound["name"]
    if n.badge is not None and not is_background(n):
        note["notification_count"] = n.badge
    if note:
        android["notification"] = note
    return android


def _webpush(n: Notification) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if n.ttl is not None:
        headers["TTL"] = str(n.ttl)
    if n.priority:
        headers["Urgency"] = n.priority
    return {"headers": headers} if headers else {}


def _fcm_apns(n: Notification, collapse_id: str | None) -> dict[str, Any]:
    # An iOS token registered with FCM: FCM forwards this block to APNs.
    headers = dict(_apns_headers(n, topic=None, collapse_id=collapse_id, now=None))
    return {"headers": headers, "payload": {"aps": aps_dict(n)}}


def build_fcm(
    n: Notification,
    token: str,
    *,
    platform: Platform,
    validate_only: bool = False,
    default_collapse_key: str | None = None,
    where: str | None = None,
) -> FcmRequest:
    """The FCM v1 request for one device; raises :class:`PayloadError` over the size limit
    or for a reserved data key."""
    message: dict[str, Any] = {"token": token}
    if not is_background(n):
        notification = {k: v for k, v in (("title", n.title), ("body", n.body)) if v}
        if n.media is not None and n.media.type == "image":
            notification["image"] = n.media.url
        if notification:
            message["notification"] = notification
    data = dict(n.data)
    if n.media is not None and n.media.type != "image":
        data["media_url"] = n.media.url
        data["media_type"] = n.media.type
    if data:
        message["data"] = data
    collapse = n.collapse_id or default_collapse_key
    if platform is Platform.ANDROID:
        android = _android(n, collapse)
        if android:
            message["android"] = android
    elif platform is Platform.WEB:
        webpush = _webpush(n)
        if webpush:
            message["webpush"] = webpush
    else:
        message["apns"] = _fcm_apns(n, collapse)
    if n.fcm:
        message = deep_merge(message, n.fcm)
    for key, value in (message.get("data") or {}).items():
        if is_reserved_data_key(key) and key not in n.data and key not in ("media_url", "media_type"):
            raise PayloadError(f"data key '{key}' is reserved by FCM", file=where, field=f"data.{key}")
        if not isinstance(value, str):
            raise PayloadError("FCM data values must be strings", file=where, field=f"data.{key}")
    encoded = _dumps(message)
    _check_size(len(encoded), FCM_LIMIT, "FCM", where)
    body = b'{"message":' + encoded + (b',"validate_only":true}' if validate_only else b"}")
    return FcmRequest(token=token, message=message, body=body, limit=FCM_LIMIT, size=len(encoded))
