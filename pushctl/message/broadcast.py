"""Broadcast requests: one message for everyone subscribed to an FCM topic / condition or an APNs
broadcast channel (iOS 18 Live Activities), instead of one per device.

* FCM: the device message with ``topic`` or ``condition`` in place of ``token``; it carries the
  ``android`` and ``apns`` blocks both, since a topic reaches every platform. FCM allows 2,048
  bytes for topic messages (4,096 for one device).
* APNs: ``POST /4/broadcasts/apps/<bundle id>`` with ``apns-channel-id`` and push type
  ``liveactivity``; the body is a Live Activity update (``aps.event``, ``aps.timestamp``,
  ``aps.content-state``), with the title and body as the activity's alert. ``content-state`` comes
  from the template's ``apns: {payload: {aps: {content-state: ...}}}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pushctl.errors import PayloadError
from pushctl.message.payload import APNS_LIMIT, ApnsRequest, FcmRequest, _fcm_apns, build_fcm
from pushctl.message.template import Notification, deep_merge
from pushctl.model import Platform

FCM_TOPIC_LIMIT = 2048
LIVE_ACTIVITY_EVENTS = ("update", "end")


def build_fcm_broadcast(
    n: Notification,
    *,
    topic: str | None = None,
    condition: str | None = None,
    validate_only: bool = False,
    collapse_key: str | None = None,
) -> FcmRequest:
    """The FCM v1 request for a topic or a condition (exactly one)."""
    if (topic is None) == (condition is None):
        raise ValueError("give exactly one of topic and condition")
    device = build_fcm(n, "-", platform=Platform.ANDROID, default_collapse_key=collapse_key)
    message: dict[str, Any] = {k: v for k, v in device.message.items() if k != "token"}
    message.setdefault("apns", _fcm_apns(n, n.collapse_id or collapse_key))
    if n.fcm:
        message = deep_merge(message, n.fcm)
    if topic is not None:
        message["topic"] = topic.removeprefix("/topics/")
    else:
        message["condition"] = condition
    encoded = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > FCM_TOPIC_LIMIT:
        raise PayloadError(
            f"payload is {len(encoded):,} bytes, over FCM's limit of {FCM_TOPIC_LIMIT:,} for topic messages",
            hint="shorten the text or the data",
        )
    body = b'{"message":' + encoded + (b',"validate_only":true}' if validate_only else b"}")
    return FcmRequest(
        token=topic or str(condition), message=message, body=body, limit=FCM_TOPIC_LIMIT, size=len(encoded)
    )


def build_apns_broadcast(
    n: Notification, channel_id: str, *, topic: str, now: float | None = None
) -> ApnsRequest:
    """The APNs broadcast request of a Live Activity update on ``channel_id`` (bundle id ``topic``)."""
    aps: dict[str, Any] = {"timestamp": int(time.time() if now is None else now), "event": "update"}
    alert = {k: v for k, v in (("title", n.title), ("body", n.body)) if v}
    if alert:
        aps["alert"] = alert
    if n.sound is not None:
        aps["sound"] = n.sound
    if n.relevance_score is not None:
        aps["relevance-score"] = n.relevance_score
    payload: dict[str, Any] = {"aps": aps}
    payload.update(n.data)
    payload = deep_merge(payload, (n.apns or {}).get("payload") or {})
    aps = payload["aps"]
    if aps.get("event") not in LIVE_ACTIVITY_EVENTS:
        raise PayloadError(
            f"aps.event must be {' or '.join(LIVE_ACTIVITY_EVENTS)} for a channel broadcast",
            field="apns.payload.aps.event",
        )
    if "content-state" not in aps:
        raise PayloadError(
            "a Live Activity broadcast needs its content state",
            field="apns.payload.aps.content-state",
            hint="add apns: {payload: {aps: {content-state: {...}}}} to the template",
        )
    headers = [
        ("apns-channel-id", channel_id),
        ("apns-push-type", "liveactivity"),
        ("apns-priority", "5" if n.priority == "normal" else "10"),
    ]
    if n.ttl is not None:
        expiration = 0 if n.ttl == 0 else int((time.time() if now is None else now) + n.ttl)
        headers.append(("apns-expiration", str(expiration)))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > APNS_LIMIT:
        raise PayloadError(
            f"payload is {len(body):,} bytes, over the APNs limit of {APNS_LIMIT:,}",
            hint="shorten the text or the content state",
        )
    return ApnsRequest(
        token=channel_id, path=f"/4/broadcasts/apps/{topic}", headers=headers, body=body, limit=APNS_LIMIT
    )
