"""Huawei Push Kit adapter (HMS Core server API v1): OAuth 2.0 client credentials and batched sends.

The first provider that sends **one request for many devices**: it declares ``batch_limit`` (1,000
tokens per ``messages:send``), and the sender hands it the devices whose rendered messages are
identical as one merged request (see :func:`pushctl.providers.base.take_batch`). The answer is a
``code`` in the body, mapped back per device: ``80000000`` every token delivered; ``80100000``
partial success, the tokens in ``msg``'s ``illegal_tokens`` invalid and the rest delivered;
``80300007`` all tokens invalid. The access token is shared by every request, refreshed a few
minutes before it expires and once when Huawei calls it expired or wrong (then the campaign stops).

Codes, as Huawei documents them for v1 (checked against Huawei's pages; see README, "HMS"):

===========  ===========================================  ==================================
code         meaning                                      outcome
===========  ===========================================  ==================================
80000000     success                                      delivered
80100000     partial success (``msg`` lists the illegal)  per token: invalid_token / delivered
80100003     incorrect message structure                  rejected
80200001     OAuth authentication error                   refresh once, then auth_failed
80200003     OAuth token expired                          refresh once, then auth_failed
80300002     no permission to send (Push Kit not enabled) auth_failed
80300007     all tokens invalid                           invalid_token
80300008     message body too large (4 KB)                rejected
80300010     too many tokens (more than 1,000)            rejected
80600003     request OAuth error                          auth_failed
81000001     internal error                               retry
===========  ===========================================  ==================================
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pushctl.config import Profile
from pushctl.credentials import HmsCredentials, load_hms_credentials
from pushctl.errors import AuthRefused, ProviderUnavailable
from pushctl.message import HMS_LIMIT, HMS_MAX_TOKENS, HmsRequest, Notification, build_hms, hms_body
from pushctl.model import Device, Platform
from pushctl.providers.base import Attempt, AttemptKind, parse_retry_after
from pushctl.providers.fcm import verifying_context
from pushctl.transport import ConnectionLost, H2Pool, make_ssl_context

REFRESH_MARGIN = 300.0
"""Refresh the access token this many seconds before it expires."""

# code -> (what it means, how it ends)
CODES: dict[str, tuple[str, AttemptKind]] = {
    "80000000": ("success", AttemptKind.DELIVERED),
    "80100000": ("partial success", AttemptKind.DELIVERED),
    "80100003": ("incorrect message structure", AttemptKind.REJECTED),
    "80200001": ("OAuth authentication error", AttemptKind.AUTH_FAILED),
    "80200003": ("OAuth token expired", AttemptKind.AUTH_FAILED),
    "80300002": ("no permission to send (is Push Kit enabled for this app?)", AttemptKind.AUTH_FAILED),
    "80300007": ("all tokens invalid", AttemptKind.INVALID_TOKEN),
    "80300008": ("message body too large", AttemptKind.REJECTED),
    "80300010": ("too many tokens", AttemptKind.REJECTED),
    "80600003": ("request OAuth error", AttemptKind.AUTH_FAILED),
    "81000001": ("internal error", AttemptKind.RETRYABLE),
}
ILLEGAL_TOKEN = "80100000 illegal token"
"""The reason of a token listed in a partial success's ``illegal_tokens``."""
_REFRESHABLE = frozenset({"80200001", "80200003"})


@dataclass(slots=True)
class HmsBatch:
    """One ``messages:send`` request for ``tokens`` (all sharing one message)."""

    tokens: list[str]
    body: bytes


class HmsTokens:
    """One OAuth access token for the app, shared by every request; refreshed before expiry."""

    def __init__(
        self,
        credentials: HmsCredentials,
        token_url: str,
        *,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 20.0,
    ) -> None:
        self._credentials = credentials
        self.token_url = token_url
        self._ca_file = ca_file
        self._clock = clock
        self._timeout = timeout
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0

    async def get(self) -> str:
        """A valid access token (fetched when missing or about to expire)."""
        if self._token and self._clock() < self._expires - REFRESH_MARGIN:
            return self._token
        return await self.refresh(self._token)

    async def refresh(self, stale: str) -> str:
        """Fetch a new token unless another request already replaced ``stale``."""
        async with self._lock:
            if self._token and self._token != stale and self._clock() < self._expires - REFRESH_MARGIN:
                return self._token
            await self._fetch()
            return self._token

    async def _fetch(self) -> None:
        creds = self._credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.app_id,
            "client_secret": creds.client_secret,
        }
        try:
            async with httpx.AsyncClient(
                http2=True, verify=verifying_context(self._ca_file), timeout=self._timeout
            ) as client:
                response = await client.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"cannot reach the HMS token endpoint {self.token_url}: {type(exc).__name__}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if response.status_code != 200 or "access_token" not in data:
            if response.status_code >= 500:
                raise ProviderUnavailable(f"HMS token endpoint answered {response.status_code}")
            detail = data.get("error_description") or f"HTTP {response.status_code}"
            codes = "/".join(str(data[k]) for k in ("error", "sub_error") if k in data)
            raise AuthRefused(
                f"Huawei refused app {creds.app_id}: {detail}" + (f" (error {codes})" if codes else ""),
                hint=f"check hms.app_id and the client secret in {creds.source} "
                "(AppGallery Connect → Project settings → App information)",
            )
        self._token = str(data["access_token"])
        self._expires = self._clock() + float(data.get("expires_in", 3600))
        self.fetched += 1


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def classify_hms(status: int, body: bytes, retry_after: float | None) -> Attempt:
    """Classify a ``messages:send`` answer by its ``code`` (the HTTP status is mostly 200)."""
    data = _json(body)
    code = str(data.get("code", ""))
    request_id = str(data.get("requestId", ""))
    if status == 429 or status >= 500 or code == "81000001":
        # 503 is Huawei's traffic control: the whole app is being slowed down, not one message.
        reason = f"{code} internal error" if code == "81000001" else f"HTTP {status}"
        return Attempt(
            AttemptKind.RETRYABLE, status, reason, retry_after=retry_after, provider_wide=status in (429, 503)
        )
    meaning, kind = CODES.get(code, (str(data.get("msg", "")) or f"HTTP {status}", AttemptKind.REJECTED))
    reason = "" if code == "80000000" else f"{code} {meaning}".strip()
    attempt = Attempt(kind, status, reason, provider_id=request_id)
    if code == "80100000":
        attempt.reason = ""
        try:
            detail = json.loads(str(data.get("msg", "")))
            illegal = detail.get("illegal_tokens") or detail.get("illegalTokens") or []
        except (ValueError, AttributeError):
            illegal = []
        if isinstance(illegal, dict):  # newer answers group them by cause
            illegal = [t for group in illegal.values() for t in group]
        attempt.per_device = {
            str(t): Attempt(AttemptKind.INVALID_TOKEN, status, ILLEGAL_TOKEN, provider_id=request_id)
            for t in illegal
        }
    return attempt


class HmsProvider:
    """Sends to ``POST /v1/<appId>/messages:send``, up to 1,000 tokens a request."""

    name = "hms"
    platforms = frozenset({Platform.HMS})
    default_concurrency = 8
    """Requests in flight (each carries up to ``batch_limit`` devices)."""
    payload_limit = HMS_LIMIT
    batch_limit = HMS_MAX_TOKENS

    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        tokens: HmsTokens,
        ca_file: Path | None = None,
        validate_only: bool = False,
        max_connections: int = 4,
    ) -> None:
        self.url = url
        self.app_id = app_id
        self.tokens = tokens
        self.validate_only = validate_only
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._path = f"/v1/{app_id}/messages:send"
        self._pool: H2Pool | None = None

    async def start(self) -> None:
        # The token first: refused credentials stop the campaign before any send.
        await self.tokens.get()
        self._pool = H2Pool(
            self.url,
            ssl_context=make_ssl_context(ca_file=self._ca_file),
            max_connections=self._max_connections,
        )

    def prepare(self, device: Device, notification: Notification, *, collapse_id: str | None) -> HmsRequest:
        return build_hms(
            notification,
            device.token,
            validate_only=self.validate_only,
            default_collapse_id=collapse_id,
            where=device.where,
        )

    @staticmethod
    def batch_key(request: HmsRequest) -> bytes:
        """Devices whose message bytes are equal share a request."""
        return request.message

    def merge(self, requests: list[HmsRequest]) -> HmsBatch:
        tokens = [r.token for r in requests]
        return HmsBatch(
            tokens, hms_body(requests[0].message, tokens, validate_only=requests[0].validate_only)
        )

    async def send(self, request: HmsRequest | HmsBatch) -> Attempt:
        batch = request if isinstance(request, HmsBatch) else self.merge([request])
        pool = self._pool
        if pool is None:
            raise ProviderUnavailable("HMS provider used before start()")
        try:
            token = await self.tokens.get()
        except AuthRefused as exc:
            return Attempt(AttemptKind.AUTH_FAILED, None, exc.message)
        for refresh in (True, False):
            headers = [
                ("authorization", f"Bearer {token}"),
                ("content-type", "application/json; charset=UTF-8"),
            ]
            try:
                response = await pool.request("POST", self._path, headers, batch.body)
            except ConnectionLost as exc:
                return Attempt(AttemptKind.RETRYABLE, None, type(exc).__name__)
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            attempt = classify_hms(response.status, response.body, retry_after)
            code = attempt.reason.split(" ", 1)[0]
            if refresh and (code in _REFRESHABLE or (response.status == 401 and not code)):
                try:
                    token = await self.tokens.refresh(token)
                except AuthRefused as exc:
                    return Attempt(AttemptKind.AUTH_FAILED, response.status, exc.message)
                continue
            return attempt
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def create(
    profile: Profile, *, max_connections: int = 4, validate_only: bool = False, **_: Any
) -> HmsProvider:
    """Build the HMS provider from a profile (app id and client secret; no network yet)."""
    settings = profile.hms
    credentials = load_hms_credentials(settings)
    tokens = HmsTokens(credentials, settings.oauth_url, ca_file=profile.ca_file)
    return HmsProvider(
        settings.url,
        app_id=credentials.app_id,
        tokens=tokens,
        ca_file=profile.ca_file,
        validate_only=validate_only,
        max_connections=max_connections,
    )
