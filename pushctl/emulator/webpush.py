"""A Web Push service, emulated (RFC 8030 + RFC 8292 VAPID), that decrypts what it receives (RFC 8291).

Subscriptions are issued with *test keys*: a subscription's private key and auth secret are derived
from its id (the endpoint's last path segment) and a fixed public seed, so any emulator on any
machine can decrypt a message for any subscription it ever issued, with no state to share between
runs or workers — like the sample APNs key, they are throwaway keys for rehearsals only.

Per request, in order: method and faults; the VAPID ``Authorization`` header (ES256 JWT verified
with ``k``, ``aud`` = this service's origin, ``exp`` in the future and ≤ 24 h away, ``sub``
``mailto:``/``https:``); ``TTL``, ``Urgency``, ``Topic`` and ``Content-Encoding: aes128gcm``;
body size (4,096 bytes); the subscription's state; then decryption. Ids starting ``emu`` (what
:func:`issue_subscription` hands out) must decrypt with their test keys (400 ``BadEncryption``
otherwise: the emulator's proof that pushctl encrypts correctly); other ids (real browsers'
subscriptions in a rehearsal) are accepted and recorded still encrypted, as a real service would.

Test ids: ``gone…`` → 410, ``unknown…`` → 404; an id ending ``-k<8 chars>`` was subscribed with
the application server key whose SHA-256 starts so, and pushes signed with another key get
403 ``VapidKeyMismatch``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import struct
import time
from collections import Counter
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.registry import Registry
from pushctl.emulator.scenario import FaultInjector, Options
from pushctl.emulator.server import Request, Response, json_response

TEST_KEY_SEED = b"pushctl emulator web push test keys, v1 (public: for rehearsals only)"
BODY_LIMIT = 4096
MAX_JWT_LIFETIME = 24 * 3600
CLOCK_SKEW = 60
SUBSCRIPTION_PATH = "/wp/"
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_ID = re.compile(r"[A-Za-z0-9_\-.~]{1,200}")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def subscription_keys(sub_id: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """The (private key, auth secret) the emulator holds for subscription ``sub_id``."""
    digest = hmac.new(TEST_KEY_SEED, b"key:" + sub_id.encode(), hashlib.sha512).digest()
    scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
    auth = hmac.new(TEST_KEY_SEED, b"auth:" + sub_id.encode(), hashlib.sha256).digest()[:16]
    return ec.derive_private_key(scalar, ec.SECP256R1()), auth


def key_tag(application_server_key: str) -> str:
    """The 8 characters a bound subscription id ends with (``-k`` + this)."""
    return _b64(hashlib.sha256(application_server_key.encode()).digest())[:8]


def issue_subscription(
    base_url: str, sub_id: str | None = None, *, application_server_key: str | None = None
) -> dict[str, Any]:
    """A ``PushSubscription.toJSON()`` for a new (or the named) subscription at ``base_url``."""
    sub_id = sub_id or "emu" + secrets.token_hex(12)
    if application_server_key:
        sub_id += "-k" + key_tag(application_server_key)
    private, auth = subscription_keys(sub_id)
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "endpoint": base_url.rstrip("/") + SUBSCRIPTION_PATH + sub_id,
        "expirationTime": None,
        "keys": {"p256dh": _b64(public), "auth": _b64(auth)},
    }


def decrypt(body: bytes, private: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8291 / RFC 8188 ``aes128gcm`` decryption (every record); ValueError when it fails."""
    if len(body) < 21:
        raise ValueError("body shorter than the aes128gcm header")
    salt, (rs, idlen) = body[:16], struct.unpack("!IB", body[16:21])
    if rs < 18 or idlen != 65 or len(body) < 21 + idlen:
        raise ValueError(f"bad aes128gcm header (rs={rs}, idlen={idlen})")
    sender = body[21 : 21 + idlen]
    receiver = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    try:
        shared = private.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
    except ValueError:
        raise ValueError("the key id is not a P-256 public key") from None

    def expand(prk: bytes, info: bytes, length: int) -> bytes:
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]

    ikm = expand(
        hmac.new(auth, shared, hashlib.sha256).digest(), b"WebPush: info\x00" + receiver + sender, 32
    )
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    cek = expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
    base_nonce = expand(prk, b"Content-Encoding: nonce\x00", 12)
    records = body[21 + idlen :]
    out = bytearray()
    for seq, start in enumerate(range(0, len(records), rs)):
        nonce = (int.from_bytes(base_nonce, "big") ^ seq).to_bytes(12, "big")
        try:
            plain = AESGCM(cek).decrypt(nonce, records[start : start + rs], None)
        except InvalidTag:
            raise ValueError("authentication tag mismatch (wrong keys, or corrupted)") from None
        last = start + rs >= len(records)
        stripped = plain.rstrip(b"\x00")
        if not stripped or stripped[-1] != (2 if last else 1):
            raise ValueError("bad padding delimiter")
        out += stripped[:-1]
    return bytes(out)


class _Reject(Exception):
    def __init__(self, status: int, reason: str, message: str = "") -> None:
        self.status, self.reason, self.message = status, reason, message


class WebPushService:
    """Handles ``POST <any path>/<subscription id>`` on the Web Push port."""

    def __init__(self, registry: Registry, inbox: Inbox, options: Options, faults: FaultInjector) -> None:
        self.registry = registry
        self.inbox = inbox
        self.options = options
        self.faults = faults
        self.origins: frozenset[str] = frozenset()
        """Set by the emulator once its port is known: the ``aud`` values VAPID JWTs may carry."""
        self.stats: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._verified: dict[str, tuple[str, int, str]] = {}

    def handle(self, req: Request) -> Response:
        """Verify, decrypt and record one push message; answer like a push service."""
        delay = self.faults.latency() if self.faults.active else 0.0
        try:
            if self.faults.active:
                if self.faults.drop():
                    return Response(0, drop=True)
                injected = self.faults.error("webpush")
                if injected is not None:
                    raise _Reject(injected.status, injected.reason or "ServiceUnavailable")
            response = self._push(req)
        except _Reject as rej:
            self.stats[f"{rej.status} {rej.reason}"] += 1
            body = {"code": rej.status, "reason": rej.reason, "message": rej.message or rej.reason}
            response = json_response(rej.status, body)
            if rej.status in (429, 503):
                response.headers.append(("retry-after", "1"))
        else:
            self.stats[str(response.status)] += 1
        response.delay = delay
        return response

    def _push(self, req: Request) -> Response:
        if req.method != "POST":
            raise _Reject(405, "MethodNotAllowed")
        sub_id = req.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if not _ID.fullmatch(sub_id):
            raise _Reject(404, "NotFound", "no subscription at this path")
        headers = {name: value for name, value in req.headers}
        key = self._vapid(headers.get("authorization"))
        if sub_id.rfind("-k") == len(sub_id) - 10 and sub_id[-8:] != key_tag(key):
            raise _Reject(
                403,
                "VapidKeyMismatch",
                "the VAPID key does not match the application server key this subscription used",
            )
        ttl = headers.get("ttl")
        if ttl is None:
            raise _Reject(400, "MissingTTL", "the TTL header is mandatory (RFC 8030 §5.2)")
        if not ttl.isdigit():
            raise _Reject(400, "BadTTL", f"TTL must be whole seconds, got {ttl!r}")
        urgency = headers.get("urgency")
        if urgency is not None and urgency not in _URGENCIES:
            raise _Reject(
                400, "BadUrgency", f"Urgency must be very-low, low, normal or high, got {urgency!r}"
            )
        topic = headers.get("topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            raise _Reject(
                400, "BadTopic", "Topic must be at most 32 characters of the URL-safe base64 alphabet"
            )
        if len(req.body) > BODY_LIMIT:
            raise _Reject(413, "PayloadTooLarge", f"{len(req.body)} bytes; at most {BODY_LIMIT}")
        if req.body and headers.get("content-encoding") != "aes128gcm":
            raise _Reject(400, "BadContentEncoding", "Content-Encoding must be aes128gcm (RFC 8291)")
        if sub_id.startswith("gone") or sub_id in self.registry.webpush_gone:
            raise _Reject(410, "Gone", "the subscription expired or the user unsubscribed")
        if sub_id.startswith("unknown"):
            raise _Reject(404, "NotFound", "no such subscription")
        payload: dict[str, Any] | None = None
        if req.body and sub_id.startswith("emu"):
            private, auth = subscription_keys(sub_id)
            try:
                plaintext = decrypt(req.body, private, auth)
            except ValueError as exc:
                raise _Reject(
                    400, "BadEncryption", f"the body does not decrypt with this subscription's keys: {exc}"
                ) from None
            try:
                decoded = json.loads(plaintext)
            except ValueError:
                decoded = None
            payload = decoded if isinstance(decoded, dict) else {"text": plaintext.decode("utf-8", "replace")}
        elif req.body:
            payload = {"encrypted_bytes": len(req.body)}
        msg_id = f"m{next(self._ids):08x}{secrets.token_hex(4)}"
        recorded = {
            "ttl": ttl,
            **({"urgency": urgency} if urgency else {}),
            **({"topic": topic} if topic else {}),
        }
        self.inbox.record(
            Delivery(sub_id, "web", "webpush", payload or {}, recorded, topic, msg_id, time.time())
        )
        origin = next(iter(sorted(self.origins)), "")
        return Response(201, b"", [("location", f"{origin}/m/{msg_id}"), ("ttl", ttl)])

    def _vapid(self, authorization: str | None) -> str:
        """Check the VAPID header; return its ``k`` (the application server key)."""
        if not authorization:
            raise _Reject(401, "MissingAuthorization", "VAPID authorization is required")
        scheme, _, rest = authorization.partition(" ")
        params = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip()] = value.strip()
        token, key = params.get("t", ""), params.get("k", "")
        if scheme.lower() != "vapid" or not token or not key:
            raise _Reject(
                401, "BadAuthorizationHeader", "expected 'vapid t=<JWT>, k=<public key>' (RFC 8292)"
            )
        cached = self._verified.get(token)
        if cached is None:
            cached = self._verify(token, key)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = cached
        cached_key, exp, aud = cached
        if cached_key != key:
            raise _Reject(403, "BadJwtToken", "the JWT was not signed with the key in k=")
        now = time.time()
        if exp <= now:
            raise _Reject(403, "ExpiredJwtToken", "the VAPID JWT has expired")
        if exp > now + MAX_JWT_LIFETIME + CLOCK_SKEW:
            raise _Reject(403, "BadJwtToken", "exp is more than 24 hours ahead (RFC 8292 §2)")
        if aud not in self.origins:
            raise _Reject(403, "BadJwtAudience", f"aud {aud!r} is not this push service's origin")
        return key

    @staticmethod
    def _verify(token: str, key: str) -> tuple[str, int, str]:
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(key))
        except ValueError:
            raise _Reject(401, "BadAuthorizationHeader", "k= is not a P-256 public key") from None
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token, public, algorithms=["ES256"], options={"verify_exp": False, "verify_aud": False}
            )
        except jwt.PyJWTError:
            raise _Reject(403, "BadJwtToken", "the VAPID JWT does not verify with k= (ES256)") from None
        if header.get("alg") != "ES256":
            raise _Reject(403, "BadJwtToken", "VAPID JWTs are ES256")
        exp, aud, sub = claims.get("exp"), claims.get("aud"), claims.get("sub")
        if not isinstance(exp, int) or not isinstance(aud, str):
            raise _Reject(403, "BadJwtToken", "the JWT needs aud and exp claims")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https://")):
            raise _Reject(403, "BadJwtSubject", "sub must be a mailto: or https: contact")
        return key, exp, aud
