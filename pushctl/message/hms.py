"""Huawei Push Kit (HMS Core server API v1) messages: one message body for up to 1,000 tokens.

``build_hms`` renders one device's message *without* its token; devices whose messages come out
byte-for-byte identical share one request (:func:`hms_body` puts their tokens in ``message.token``).
The message::

    {"notification": {"title", "body", "image"},
     "android": {"urgency": "HIGH"|"NORMAL", "ttl": "86400s",
                 "notification": {"click_action": {"type": 3}, "tag": <collapse id>, ...}},
     "data": "<the template's data as a JSON string>"}

``click_action`` is mandatory in an Android notification (type 3 opens the app; the ``hms:`` block
can set type 1 with an intent or type 2 with a URL); the collapse id becomes the notification
``tag`` (HMS's ``collapse_key`` is a small integer for offline caching, not a replacement key).
The template's ``hms:`` block is deep-merged last, e.g. ``android: {category: IM}`` for Huawei's
message classification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pushctl.errors import PayloadError
from pushctl.message.template import Notification, deep_merge

HMS_LIMIT = 4096
"""The message body (tokens aside) may be at most 4 KB (80300008 beyond)."""
HMS_MAX_TOKENS = 1000
HMS_MAX_TTL = 15 * 86400
"""Push Kit keeps an offline message at most 15 days."""


@dataclass(slots=True)
class HmsRequest:
    """One device's share of an HMS send: its token and the message JSON it would get."""

    token: str
    message: bytes
    """The ``message`` object without ``token``: equal bytes mean one request can carry both."""
    validate_only: bool = False
    limit: int = HMS_LIMIT

    @property
    def size(self) -> int:
        return len(self.message)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def hms_message(n: Notification, *, collapse_id: str | None) -> dict[str, Any]:
    """The ``message`` object (no token) for one rendered notification."""
    message: dict[str, Any] = {}
    android: dict[str, Any] = {}
    if n.priority:
        android["urgency"] = "HIGH" if n.priority == "high" else "NORMAL"
    if n.ttl is not None:
        android["ttl"] = f"{min(n.ttl, HMS_MAX_TTL)}s"
    if n.push_type != "background":
        notification = {k: v for k, v in (("title", n.title), ("body", n.body)) if v}
        if n.media is not None and n.media.type == "image":
            notification["image"] = n.media.url
        if notification:
            message["notification"] = notification
        note: dict[str, Any] = {"click_action": {"type": 3}}
        if collapse_id:
            note["tag"] = collapse_id
        if n.sound == "default":
            note["default_sound"] = True
        android["notification"] = note
    data = dict(n.data)
    if n.media is not None and n.media.type != "image":
        data["media_url"], data["media_type"] = n.media.url, n.media.type
    if data:
        message["data"] = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    if android:
        message["android"] = android
    if n.hms:
        message = deep_merge(message, n.hms)
    return message


def build_hms(
    n: Notification,
    token: str,
    *,
    validate_only: bool = False,
    default_collapse_id: str | None = None,
    where: str | None = None,
) -> HmsRequest:
    """One device's HMS request; PayloadError over the 4 KB limit."""
    message = _dumps(hms_message(n, collapse_id=n.collapse_id or default_collapse_id))
    if len(message) > HMS_LIMIT:
        raise PayloadError(
            f"payload is {len(message):,} bytes, over the HMS limit of {HMS_LIMIT:,}",
            file=where,
            hint="shorten the text or the data",
        )
    return HmsRequest(token=token, message=message, validate_only=validate_only)


def hms_body(message: bytes, tokens: list[str], *, validate_only: bool) -> bytes:
    """The ``messages:send`` body for ``tokens`` sharing ``message`` (the bytes of :func:`build_hms`)."""
    if len(tokens) > HMS_MAX_TOKENS:
        raise ValueError(f"at most {HMS_MAX_TOKENS} tokens per HMS request, got {len(tokens)}")
    head = b'{"validate_only":' + (b"true" if validate_only else b"false") + b',"message":'
    inner = message[:-1] + (b"," if message != b"{}" else b"")
    return head + inner + b'"token":' + _dumps(tokens) + b"}}"
