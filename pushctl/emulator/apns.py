"""The APNs provider API, emulated: ``POST /3/device/<token>`` with Apple's checks and answers.

Checks run in the order a client would hit them: path and method, injected faults,
duplicate headers, credentials (JWT or client certificate), topic, headers, payload,
then the device token's state. Verified JWTs are cached by their exact string, so a client
that reuses its token (as it must) costs one dict lookup per request, not an ECDSA verify.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt

from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.registry import TOPIC_SUFFIXES, Registry
from pushctl.emulator.scenario import FaultInjector, Options, RateWindows
from pushctl.emulator.server import JSON_HEADERS, Request, Response
from pushctl.emulator.tls import describe_peer_certificate

PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
    }
)
PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")
_SINGLE = frozenset(
    {
        "authorization",
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "apns-id",
    }
)
_DEFAULT_REASONS = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
_JWT_CACHE_LIMIT = 10_000


@dataclass(slots=True, frozen=True)
class _VerifiedJwt:
    kid: str
    iat: int


class _Reject(Exception):
    def __init__(
        self, status: int, reason: str, timestamp: int | None = None, retry_after: int | None = None
    ) -> None:
        self.status, self.reason, self.timestamp, self.retry_after = status, reason, timestamp, retry_after


class ApnsService:
    """Handles APNs requests for one emulator (shared by all its connections)."""

    def __init__(self, registry: Registry, inbox: Inbox, options: Options, faults: FaultInjector) -> None:
        self.registry = registry
        self.inbox = inbox
        self.options = options
        self.faults = faults
        self.stats: Counter[str] = Counter()
        self._jwt_cache: dict[str, _VerifiedJwt | _Reject] = {}
        self._last_iat: dict[str, int] = {}
        self._windows = RateWindows()
        self._error_bodies: dict[str, bytes] = {}
        self.shutting_down = False
        """Set by :meth:`Emulator.begin_shutdown`: every push is answered 503 ``Shutdown``."""

    # -- entry point --------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Answer one request (synchronously; latency faults become ``Response.delay``)."""
        faults = self.faults
        delay = faults.latency() if faults.active else 0.0
        apns_id = ""
        try:
            if not req.path.startswith("/3/device/"):
                raise _Reject(404, "BadPath")
            if req.method != "POST":
                raise _Reject(405, "MethodNotAllowed")
            if faults.active:
                if faults.drop():
                    return Response(0, drop=True)
                injected = faults.error("apns")
                if injected is not None:
                    return self._injected(injected.status, injected.reason, injected.retry_after, delay)
            if self.shutting_down:
                raise _Reject(503, "Shutdown")
            headers = self._headers(req)
            apns_id = headers.get("apns-id", "")
            if apns_id and not _UUID.fullmatch(apns_id):
                apns_id = ""
                raise _Reject(400, "BadMessageId")
            token = req.path[10:]
            if not token:
                raise _Reject(400, "MissingDeviceToken")
            allowed_topics = self._authenticate(req, headers)
            topic = self._check_headers(headers, allowed_topics)
            payload = self._check_payload(req.body, headers.get("apns-push-type"))
            verdict = self.registry.apns_token_verdict(token)
            if verdict is not None:
                raise _Reject(verdict.status, verdict.reason, verdict.timestamp_ms)
            self._rate_limit(token)
        except _Reject as rej:
            self._after_reject(req)
            return self._error(rej, apns_id or str(uuid.uuid4()), delay)
        apns_id = (apns_id or str(uuid.uuid4())).lower()
        collapse = headers.get("apns-collapse-id")
        self.inbox.record(
            Delivery(
                token,
                "ios",
                "apns",
                payload,
                {**headers, "apns-topic": topic},
                collapse,
                apns_id,
                time.time(),
            )
        )
        self._after_success(req)
        self.stats["200"] += 1
        resp_headers = [("apns-id", apns_id)]
        if self.options.environment == "sandbox":
            resp_headers.append(("apns-unique-id", str(uuid.uuid4())))
        return Response(200, b"", resp_headers, delay)

    def authorize(self, req: Request) -> tuple[dict[str, str], frozenset[str]] | Response:
        """For the other APIs on this port (broadcast, channels): the request's headers and the
        topics its credentials may use, or the error response APNs would give instead."""
        try:
            headers = self._headers(req)
            return headers, self._authenticate(req, headers)
        except _Reject as rej:
            self._after_reject(req)
            return self._error(rej, str(uuid.uuid4()), 0.0)

    # -- responses ----------------------------------------------------------------------

    def _error(self, rej: _Reject, apns_id: str, delay: float) -> Response:
        self.stats[f"{rej.status} {rej.reason}"] += 1
        if rej.timestamp is not None:
            body = json.dumps(
                {"reason": rej.reason, "timestamp": rej.timestamp}, separators=(",", ":")
            ).encode()
        else:
            body = self._error_bodies.get(rej.reason) or b""
            if not body:
                body = self._error_bodies[rej.reason] = json.dumps(
                    {"reason": rej.reason}, separators=(",", ":")
                ).encode()
        headers = [*JSON_HEADERS, ("apns-id", apns_id)]
        if rej.retry_after is not None:
            headers.append(("retry-after", str(rej.retry_after)))
        return Response(rej.status, body, headers, delay)

    def _injected(self, status: int, reason: str | None, retry_after: int | None, delay: float) -> Response:
        resp = self._error(
            _Reject(status, reason or _DEFAULT_REASONS.get(status, "InternalServerError")),
            str(uuid.uuid4()),
            delay,
        )
        if retry_after is not None:
            resp.headers.append(("retry-after", str(retry_after)))
        return resp

    # -- checks -------------------------------------------------------------------------

    @staticmethod
    def _headers(req: Request) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in req.headers:
            if name in headers and name in _SINGLE:
                raise _Reject(400, "DuplicateHeaders")
            headers[name] = value
        return headers

    def _authenticate(self, req: Request, headers: dict[str, str]) -> frozenset[str]:
        """Verify the JWT or the client certificate; return the topics it may push to."""
        auth = headers.get("authorization")
        if auth is None:
            if req.conn.peer_cert:
                return self._certificate(req)
            raise _Reject(403, "MissingProviderToken")
        token = auth[7:] if auth[:7].lower() == "bearer " else ""
        cached = self._jwt_cache.get(token)
        if cached is None:
            cached = self._verify_jwt(token)
            if len(self._jwt_cache) >= _JWT_CACHE_LIMIT:
                self._jwt_cache.clear()
            self._jwt_cache[token] = cached
        if isinstance(cached, _Reject):
            raise cached
        kid, iat = cached.kid, cached.iat
        key = self.registry.apns_keys.get(kid)
        if key is None or kid in self.registry.revoked_keys:
            # Revoked (or unregistered) after the token was cached.
            raise _Reject(403, "InvalidProviderToken")
        if time.time() - iat > self.options.jwt_max_age:
            raise _Reject(403, "ExpiredProviderToken")
        first = req.conn.data.setdefault("kid", kid)
        if first != kid:
            raise _Reject(403, "UnrelatedKeyIdInToken")
        # TooManyProviderTokenUpdates: a newer token (by iat) too soon after the one before it, on
        # this connection (the default), or anywhere for this key (the strict rule). An older token
        # is accepted as it is: switching back is no update. See "The emulator" in the README.
        seen: dict[str, int] = self._last_iat
        if self.options.token_update_rule == "connection":
            seen = req.conn.data.get("token_iat") or req.conn.data.setdefault("token_iat", {})
        last = seen.get(kid)
        if last is None or iat > last:
            if last is not None and iat - last < self.options.token_update_interval:
                raise _Reject(429, "TooManyProviderTokenUpdates")
            seen[kid] = iat
        return key.topics

    def _verify_jwt(self, token: str) -> _VerifiedJwt | _Reject:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return _Reject(403, "InvalidProviderToken")
        kid = header.get("kid")
        key = self.registry.apns_keys.get(kid) if isinstance(kid, str) else None
        if header.get("alg") != "ES256" or key is None or key.key_id in self.registry.revoked_keys:
            return _Reject(403, "InvalidProviderToken")
        if self.options.environment not in key.environments:
            return _Reject(403, "BadEnvironmentKeyIdInToken")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["ES256"],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "require": ["iss", "iat"],
                },
            )
        except jwt.PyJWTError:
            return _Reject(403, "InvalidProviderToken")
        iat = claims.get("iat")
        if claims.get("iss") != key.team_id or not isinstance(iat, int):
            return _Reject(403, "InvalidProviderToken")
        return _VerifiedJwt(key.key_id, iat)

    def _certificate(self, req: Request) -> frozenset[str]:
        info = req.conn.data.get("cert")
        if info is None:
            assert req.conn.peer_cert is not None
            info = req.conn.data["cert"] = describe_peer_certificate(req.conn.peer_cert)
        topic, environments, serial = info
        if serial in self.registry.revoked_certificates:
            raise _Reject(403, "Forbidden")
        if not topic:
            raise _Reject(403, "BadCertificate")
        if self.options.environment not in environments:
            raise _Reject(403, "BadCertificateEnvironment")
        return frozenset({topic})

    def _check_headers(self, headers: dict[str, str], allowed: frozenset[str]) -> str:
        topic = headers.get("apns-topic")
        if topic is None:
            if "authorization" in headers or len(allowed) != 1:
                raise _Reject(400, "MissingTopic")
            topic = next(iter(allowed))
        if not _TOPIC.fullmatch(topic):
            raise _Reject(400, "BadTopic")
        base = topic
        for suffix in TOPIC_SUFFIXES:
            if topic.endswith(suffix):
                base = topic[: -len(suffix)]
                break
        if base not in allowed:
            raise _Reject(400, "TopicDisallowed")
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            raise _Reject(400, "InvalidPushType")
        priority = headers.get("apns-priority")
        if priority is not None and (
            priority not in ("1", "5", "10") or (push_type == "background" and priority != "5")
        ):
            raise _Reject(400, "BadPriority")
        expiration = headers.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise _Reject(400, "BadExpirationDate")
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode()) > 64:
            raise _Reject(400, "BadCollapseId")
        return topic

    @staticmethod
    def _check_payload(body: bytes, push_type: str | None) -> dict[str, Any]:
        if not body:
            raise _Reject(400, "PayloadEmpty")
        if len(body) > (VOIP_PAYLOAD_LIMIT if push_type == "voip" else PAYLOAD_LIMIT):
            raise _Reject(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        # Apple documents no reason for malformed JSON; PayloadEmpty is the closest one it lists.
        # A missing "aps" is accepted: Wallet passes and MDM pushes legitimately send "{}".
        if not isinstance(payload, dict):
            raise _Reject(400, "PayloadEmpty")
        return payload

    def _rate_limit(self, token: str) -> None:
        opts = self.options
        # Apple throttling the provider as a whole (every token), then one token sent to too often.
        wait = self._windows.refuse("", opts.apns_quota_per_second, 1.0)
        if wait is not None:
            raise _Reject(429, "TooManyRequests", retry_after=wait)
        if self._windows.refuse(token, opts.device_rate_limit, opts.device_rate_window) is not None:
            raise _Reject(429, "TooManyRequests")

    # -- stream-limit behaviour ------------------------------------------------------------

    def _after_success(self, req: Request) -> None:
        conn = req.conn
        maximum = self.options.max_concurrent_streams
        current = conn.max_concurrent_streams
        if current < maximum:
            # Climb back (or open up after the first authenticated request) by doubling.
            grow = maximum if "rejected" not in conn.data else min(maximum, current * 2)
            conn.set_max_concurrent_streams(grow)

    def _after_reject(self, req: Request) -> None:
        self.stats["rejected"] += 1
        if self.faults.faults.stream_drop_after_reject:
            req.conn.data["rejected"] = True
            req.conn.set_max_concurrent_streams(1)
