"""Web Push adapter (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID) to any push service.

Subscriptions name their own push service (Chrome: FCM, Firefox: Mozilla autopush, Safari: Apple,
Edge: Windows), so one campaign talks to a few *origins*. Each origin gets its own connection
pool (HTTP/2 when the service negotiates it, as FCM's and Apple's do; HTTP/1.1 otherwise) and its
own VAPID JWT (``aud`` is the origin), signed once and reused until it nears its ``exp``.

Outcomes: 201 delivered; 404/410 invalid_token (prune); 413 rejected; 429/5xx retried (honouring
``Retry-After``); VAPID refusals (401/403, or a 400 about the JWT) auth_failed, naming the profile
keys to fix; a 403 saying the subscription belongs to another application server key is
invalid_token for this key (like FCM's ``SENDER_ID_MISMATCH``).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from pushctl.config import Profile
from pushctl.credentials import VapidKey, check_subject, load_vapid_key
from pushctl.errors import ConfigError, PayloadError
from pushctl.message import PLAINTEXT_LIMIT, Notification, WebPushRequest, build_webpush
from pushctl.model import Device, Platform
from pushctl.providers.base import Attempt, AttemptKind, parse_retry_after
from pushctl.transport import ConnectError, ConnectionLost, H2Pool, NoHttp2, make_ssl_context

JWT_LIFETIME = 12 * 3600
"""VAPID ``exp`` is at most 24 h ahead (RFC 8292 §2); 12 h leaves room for clock skew."""
JWT_REFRESH_BEFORE = 3600
"""Sign a new JWT for an origin once the current one has less than this left."""
_VAPID_WORDS = ("vapid", "jwt", "authorization", "crypto-key", "token")
_MISMATCH_WORDS = ("mismatch", "does not correspond", "not match")


class VapidSigner:
    """One VAPID JWT per push-service origin, reused until it nears its expiry."""

    def __init__(self, key: VapidKey, subject: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._subject = subject
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self.signed = 0
        """How many JWTs were signed (for tests and diagnostics)."""

    def header(self, origin: str) -> str:
        """The ``Authorization`` value for requests to ``origin``: ``vapid t=<JWT>, k=<key>``."""
        return f"vapid t={self.token(origin)}, k={self._key.application_server_key}"

    def token(self, origin: str) -> str:
        now = self._clock()
        cached = self._tokens.get(origin)
        if cached is not None and cached[1] - now > JWT_REFRESH_BEFORE:
            return cached[0]
        return self.resign(origin)

    def resign(self, origin: str) -> str:
        """Sign a new JWT for ``origin`` (after a refusal that may be about an old one)."""
        exp = int(self._clock()) + JWT_LIFETIME
        token = jwt.encode({"aud": origin, "exp": exp, "sub": self._subject}, self._key.private_key,
                           algorithm="ES256", headers={"typ": "JWT"})
        self._tokens[origin] = (token, float(exp))
        self.signed += 1
        return token


class OriginClient:
    """Requests to one push-service origin: HTTP/2 on the shared pool, else HTTP/1.1 (httpx)."""

    def __init__(
        self, origin: str, *, ca_file: Path | None, max_connections: int, timeout: float = 30.0
    ) -> None:
        self.origin = origin
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._timeout = timeout
        self._h2: H2Pool | None = H2Pool(origin, ssl_context=make_ssl_context(ca_file=ca_file),
                                         max_connections=max_connections, request_timeout=timeout)
        self._h1: httpx.AsyncClient | None = None

    @property
    def protocol(self) -> str:
        """``h2`` or ``http/1.1`` (the latter once the service declined HTTP/2)."""
        return "http/1.1" if self._h1 is not None else "h2"

    async def post(
        self, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, lowercase headers, body); raises ConnectionLost / ConnectError like the pool."""
        if self._h2 is not None:
            try:
                response = await self._h2.request("POST", path, headers, body, index_path=False)
            except NoHttp2:
                await self._h2.close()
                self._h2 = None
            else:
                return response.status, response.headers, response.body
        if self._h1 is None:
            ctx = ssl.create_default_context()
            if self._ca_file is not None:
                ctx.load_verify_locations(cafile=str(self._ca_file))
            limits = httpx.Limits(max_connections=max(8, self._max_connections * 8))
            self._h1 = httpx.AsyncClient(http2=False, verify=ctx, timeout=self._timeout, limits=limits)
        try:
            r = await self._h1.post(self.origin + path, headers=headers, content=body)
        except httpx.ConnectError as exc:
            raise ConnectError(f"{self.origin}: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"{self.origin}: {type(exc).__name__}") from None
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    async def close(self) -> None:
        if self._h2 is not None:
            await self._h2.close()
        if self._h1 is not None:
            await self._h1.aclose()


def split_endpoint(endpoint: str, override: str | None = None) -> tuple[str, str]:
    """(origin, path) of a subscription endpoint; ``override`` replaces the origin, keeps the path."""
    parts = urlsplit(endpoint)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if override:
        return override.rstrip("/"), path
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port and parts.port != 443:
        netloc += f":{parts.port}"
    return f"https://{netloc}", path


def answer_reason(body: bytes) -> str:
    """The push service's reason: Apple's ``reason``, autopush's ``message``/``error``, or the text."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:120] if text else ""
    if isinstance(data, dict):
        for key in ("reason", "message", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return ""


def classify_webpush(status: int, reason: str, retry_after: float | None) -> Attempt:
    """Classify a push service's answer (RFC 8030 §5/§8, RFC 8292 §4, and what services send)."""
    text = reason or f"HTTP {status}"
    lowered = reason.lower()
    if 200 <= status < 300:
        return Attempt(AttemptKind.DELIVERED, status, "")
    if status in (404, 410):
        return Attempt(AttemptKind.INVALID_TOKEN, status, text)
    if status == 413:
        return Attempt(AttemptKind.REJECTED, status, text)
    if status == 429 or status >= 500:
        # A burst of these from many subscriptions pauses Web Push sends (pushctl.delivery.lane).
        wide = status in (429, 503)
        return Attempt(AttemptKind.RETRYABLE, status, text, retry_after=retry_after, provider_wide=wide)
    if status in (401, 403) and any(w in lowered for w in _MISMATCH_WORDS):
        # Subscribed with another application server key: this key can never reach it.
        return Attempt(AttemptKind.INVALID_TOKEN, status, text)
    if status in (401, 403) or (status == 400 and any(w in lowered for w in _VAPID_WORDS)):
        return Attempt(AttemptKind.AUTH_FAILED, status, f"VAPID refused: {text}")
    return Attempt(AttemptKind.REJECTED, status, text)


class WebPushProvider:
    """Sends encrypted notifications to each subscription's push service."""

    name = "webpush"
    platforms = frozenset({Platform.WEBPUSH})
    default_concurrency = 200
    payload_limit = PLAINTEXT_LIMIT

    def __init__(
        self,
        signer: VapidSigner,
        *,
        endpoint: str | None = None,
        ca_file: Path | None = None,
        max_connections: int = 4,
        key_file: Path | None = None,
    ) -> None:
        self.signer = signer
        self.endpoint = endpoint
        """Push service that every subscription is sent to instead of its own (the emulator)."""
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._key_file = key_file
        self._origins: dict[str, OriginClient] = {}

    async def start(self) -> None:
        """Nothing to connect up front: the origins are known only from the subscriptions."""

    def prepare(
        self, device: Device, notification: Notification, *, collapse_id: str | None
    ) -> WebPushRequest:
        p256dh, auth = device.attrs.get("p256dh"), device.attrs.get("auth")
        if not p256dh or not auth:
            raise PayloadError("this Web Push subscription has no p256dh/auth keys", file=device.where)
        return build_webpush(notification, device.token, p256dh=p256dh, auth=auth,
                             default_collapse_id=collapse_id, where=device.where)

    def origin(self, endpoint: str) -> OriginClient:
        """The client for ``endpoint``'s push service (made on first use)."""
        origin, _ = split_endpoint(endpoint, self.endpoint)
        client = self._origins.get(origin)
        if client is None:
            client = self._origins[origin] = OriginClient(origin, ca_file=self._ca_file,
                                                          max_connections=self._max_connections)
        return client

    async def send(self, request: WebPushRequest) -> Attempt:
        origin, path = split_endpoint(request.endpoint, self.endpoint)
        client = self.origin(request.endpoint)
        for resign in (True, False):
            headers = [("authorization", self.signer.header(origin)), *request.headers]
            try:
                status, answer_headers, body = await client.post(path, headers, request.body)
            except (ConnectionLost, ConnectError) as exc:
                return Attempt(AttemptKind.RETRYABLE, None, type(exc).__name__)
            reason = answer_reason(body) if status >= 300 else ""
            retry_after = parse_retry_after(answer_headers.get("retry-after"), time.time())
            attempt = classify_webpush(status, reason, retry_after)
            if attempt.kind is AttemptKind.AUTH_FAILED and resign:
                self.signer.resign(origin)  # a refused JWT may just be stale: one fresh one, then stop
                continue
            if attempt.kind is AttemptKind.AUTH_FAILED:
                where = f" (webpush.vapid_private_key {self._key_file})" if self._key_file else ""
                attempt.reason = f"{attempt.reason} from {origin}{where}"
            attempt.provider_id = answer_headers.get("location", "")
            return attempt
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for client in self._origins.values():
            await client.close()
        self._origins.clear()


def create(profile: Profile, *, max_connections: int = 4, **_: Any) -> WebPushProvider:
    """Build the Web Push provider from a profile (loads the VAPID key, checks the subject)."""
    settings = profile.webpush
    if settings.vapid_private_key is None:
        raise ConfigError("the profile has no VAPID key", field="webpush.vapid_private_key",
                          hint="pushctl webpush keygen vapid.pem, then pushctl config set "
                          "webpush.vapid_private_key vapid.pem")
    key = load_vapid_key(settings.vapid_private_key)
    subject = check_subject(settings.subject)
    return WebPushProvider(VapidSigner(key, subject), endpoint=settings.endpoint, ca_file=profile.ca_file,
                           max_connections=max_connections, key_file=settings.vapid_private_key)
