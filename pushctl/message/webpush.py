"""Web Push requests (RFC 8030) with RFC 8291 message encryption (``aes128gcm``, RFC 8188).

The plaintext is the notification JSON the sample service worker (``samples/web/sw.js``) hands to
``showNotification``::

    {"title": "...", "options": {"body": "...", "icon": "...", "image": "...", "badge": "...",
     "tag": "...", "requireInteraction": false, "actions": [...], "data": {"url": "...", ...}}}

It is encrypted for one subscription: a fresh P-256 key pair per message, ECDH with the browser's
``p256dh`` key, HKDF with its ``auth`` secret, one AES-128-GCM record. The VAPID authorization
header is the provider's job (it depends on the push service's origin, not on the message).

Why ``cryptography`` directly rather than ``http_ece``/``pywebpush``: pushctl already depends on
it, the whole of RFC 8291 is ~40 lines on top of it, and measured on the dev VM it costs the same
per message as ``http_ece`` (which wraps the same library) without a second key type to convert
(see README, "Web Push"). The tests decrypt pushctl's output with ``http_ece`` as an independent
implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushctl.errors import PayloadError
from pushctl.message.template import Notification

BODY_LIMIT = 4096
"""Push services must accept bodies of this size (RFC 8030 §7.2); larger ones get 413."""
HEADER_SIZE = 16 + 4 + 1 + 65
"""aes128gcm header: salt, record size, key id length, the sender's public key."""
PLAINTEXT_LIMIT = BODY_LIMIT - HEADER_SIZE - 1 - 16
"""3,993 bytes: what fits in one record after the header, the padding delimiter and the GCM tag."""
DEFAULT_TTL = 28 * 86400
"""Seconds a push service keeps an undelivered message when the template sets no ttl (FCM's maximum)."""
MAX_TOPIC = 32
_TOPIC_RE = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_URGENCY = {"high": "high", "normal": "normal"}


@dataclass(slots=True)
class WebPushRequest:
    """One Web Push request: ``POST endpoint`` with ``headers`` and the encrypted ``body``."""

    endpoint: str
    headers: list[tuple[str, str]]
    plaintext: bytes
    body: bytes
    limit: int = PLAINTEXT_LIMIT
    """Largest plaintext that fits one record (what the size check applies to)."""

    @property
    def size(self) -> int:
        """Bytes of the plaintext JSON."""
        return len(self.plaintext)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push keys and VAPID use it."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def topic_for(collapse_id: str) -> str:
    """The ``Topic`` header for a collapse id: itself when it is ≤ 32 URL-safe characters, else a
    stable hash of it (so one campaign's resends still replace each other at the push service)."""
    if _TOPIC_RE.fullmatch(collapse_id):
        return collapse_id
    return b64url(hashlib.sha256(collapse_id.encode()).digest())[:MAX_TOPIC]


def notification_json(n: Notification, *, tag: str | None) -> dict[str, Any]:
    """The plaintext object for a service worker: ``{"title", "options"}``."""
    block = n.webpush
    options: dict[str, Any] = {}
    body = block.get("body", n.body)
    if body:
        options["body"] = body
    for key in ("icon", "badge", "lang", "dir"):
        if block.get(key):
            options[key] = block[key]
    image = block.get("image") or (n.media.url if n.media is not None and n.media.type == "image" else None)
    if image:
        options["image"] = image
    tag = block.get("tag") or tag
    if tag:
        options["tag"] = tag
    for key in ("requireInteraction", "silent", "renotify"):
        if key in block:
            options[key] = bool(block[key])
    data: dict[str, Any] = dict(n.data)
    if n.media is not None and n.media.type != "image":
        data["media_url"], data["media_type"] = n.media.url, n.media.type
    data.update(block.get("data") or {})
    if block.get("url"):
        data["url"] = block["url"]
    actions = block.get("actions") or []
    if actions:
        options["actions"] = [{k: v for k, v in a.items() if k != "url"} for a in actions]
        urls = {a["action"]: a["url"] for a in actions if a.get("url")}
        if urls:
            data["action_urls"] = urls
    if data:
        options["data"] = data
    message: dict[str, Any] = {}
    title = block.get("title", n.title)
    if title:
        message["title"] = title
    message["options"] = options
    return message


def headers_for(n: Notification, *, topic: str | None) -> list[tuple[str, str]]:
    """``TTL`` (always: it is mandatory), ``Urgency`` and ``Topic`` for one notification."""
    ttl = n.ttl if n.ttl is not None else DEFAULT_TTL
    headers = [("ttl", str(ttl))]
    urgency = n.webpush.get("urgency") or _URGENCY.get(n.priority or "")
    if n.push_type == "background" and not urgency:
        urgency = "low"
    if urgency:
        headers.append(("urgency", urgency))
    if topic:
        headers.append(("topic", topic))
    headers += [("content-encoding", "aes128gcm"), ("content-type", "application/octet-stream")]
    return headers


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    # One block of HKDF-Expand (RFC 5869) is enough for every length used here (≤ 32).
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def encrypt(
    plaintext: bytes,
    p256dh: str,
    auth: str,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Encrypt ``plaintext`` for one subscription as an RFC 8291 ``aes128gcm`` body.

    ``salt`` and ``sender_key`` are fresh per message unless given (tests pin them to check the
    RFC 8291 appendix A example). Raises ValueError for keys that are not a P-256 point / 16 bytes.
    """
    ua_public = _b64url_decode(p256dh)
    auth_secret = _b64url_decode(auth)
    if len(auth_secret) != 16:
        raise ValueError("auth must be 16 bytes")
    receiver = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    sender = sender_key or ec.generate_private_key(ec.SECP256R1())
    as_public = sender.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    shared = sender.exchange(ec.ECDH(), receiver)
    # RFC 8291 §3.3-3.4: IKM from the ECDH secret and the auth secret, then RFC 8188's CEK and nonce.
    prk_key = hmac.new(auth_secret, shared, hashlib.sha256).digest()
    ikm = _hkdf_expand(prk_key, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = salt if salt is not None else os.urandom(16)
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    cek = _hkdf_expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf_expand(prk, b"Content-Encoding: nonce\x00", 12)
    record = plaintext + b"\x02"  # the last (only) record's padding delimiter, no padding
    ciphertext = AESGCM(cek).encrypt(nonce, record, None)
    header = salt + struct.pack("!IB", BODY_LIMIT, len(as_public)) + as_public
    return header + ciphertext


def build_webpush(
    n: Notification,
    endpoint: str,
    *,
    p256dh: str,
    auth: str,
    default_collapse_id: str | None = None,
    where: str | None = None,
) -> WebPushRequest:
    """The encrypted request for one subscription; PayloadError when the JSON does not fit one
    record (checked before encrypting: a push service would answer 413) or the keys are unusable."""
    collapse_id = n.collapse_id or default_collapse_id
    message = notification_json(n, tag=collapse_id)
    plaintext = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(plaintext) > PLAINTEXT_LIMIT:
        raise PayloadError(
            f"payload is {len(plaintext):,} bytes, over the Web Push limit of {PLAINTEXT_LIMIT:,} "
            f"(a {BODY_LIMIT:,}-byte body less the aes128gcm header and tag)",
            file=where,
            hint="shorten the text or the data",
        )
    try:
        body = encrypt(plaintext, p256dh, auth)
    except ValueError as exc:
        raise PayloadError(f"cannot encrypt for this subscription: {exc}", file=where,
                           field="p256dh") from None
    headers = headers_for(n, topic=topic_for(collapse_id) if collapse_id else None)
    return WebPushRequest(endpoint=endpoint, headers=headers, plaintext=plaintext, body=body)
