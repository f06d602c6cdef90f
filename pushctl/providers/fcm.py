"""FCM HTTP v1 adapter: service-account OAuth2 (httpx, one request at a time) and
``messages:send`` on the HTTP/2 pool (the hot path)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from pushctl.config import Profile
from pushctl.credentials import ServiceAccount, load_service_account
from pushctl.errors import AuthRefused, ConfigError, ProviderUnavailable
from pushctl.message import FCM_LIMIT, FcmRequest, Notification, build_fcm
from pushctl.model import Device, Platform
from pushctl.providers.base import Attempt, AttemptKind, classify_fcm, parse_retry_after
from pushctl.transport import ConnectionLost, H2Pool, make_ssl_context

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
REFRESH_MARGIN = 300.0
"""Refresh the access token this many seconds before it expires."""


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying context for httpx (which negotiates ALPN itself)."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


class AccessTokens:
    """One OAuth2 access token shared by every request; refreshed before expiry or on a 401."""

    def __init__(
        self,
        account: ServiceAccount,
        token_uri: str,
        *,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 20.0,
    ) -> None:
        self._account = account
        self._token_uri = token_uri
        self._ca_file = ca_file
        self._clock = clock
        self._timeout = timeout
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0

    def _assertion(self) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._token_uri,
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(
            claims,
            self._account.private_key,
            algorithm="RS256",
            headers={"kid": self._account.private_key_id},
        )

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
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self._assertion()}
        try:
            async with httpx.AsyncClient(
                http2=True, verify=verifying_context(self._ca_file), timeout=self._timeout
            ) as client:
                response = await client.post(self._token_uri, data=form)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"cannot reach the OAuth token endpoint {self._token_uri}: {type(exc).__name__}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or "access_token" not in data:
            error = data.get("error", f"HTTP {response.status_code}") if isinstance(data, dict) else ""
            detail = data.get("error_description", "") if isinstance(data, dict) else ""
            if response.status_code >= 500:
                raise ProviderUnavailable(f"OAuth token endpoint answered {response.status_code}")
            raise AuthRefused(
                f"Google refused the service account {self._account.client_email}: {error}"
                + (f" ({detail})" if detail else ""),
                hint=f"check {self._account.path} is a current key of that account",
            )
        self._token = str(data["access_token"])
        self._expires = self._clock() + float(data.get("expires_in", 3600))
        self.fetched += 1


class FcmProvider:
    """Sends to ``POST /v1/projects/<id>/messages:send`` over the HTTP/2 pool."""

    name = "fcm"
    platforms = frozenset({Platform.ANDROID, Platform.WEB})
    default_concurrency = 500
    payload_limit = FCM_LIMIT

    def __init__(
        self,
        url: str,
        *,
        project_id: str,
        tokens: AccessTokens,
        ca_file: Path | None = None,
        validate_only: bool = False,
        max_connections: int = 4,
    ) -> None:
        self.url = url
        self.project_id = project_id
        self.tokens = tokens
        self.validate_only = validate_only
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._path = f"/v1/projects/{project_id}/messages:send"
        self._pool: H2Pool | None = None

    async def start(self) -> None:
        # The token first: a refused service account stops the campaign before any send.
        await self.tokens.get()
        self._pool = H2Pool(
            self.url,
            ssl_context=make_ssl_context(ca_file=self._ca_file),
            max_connections=self._max_connections,
        )

    def prepare(self, device: Device, notification: Notification, *, collapse_id: str | None) -> FcmRequest:
        return build_fcm(
            notification,
            device.token,
            platform=device.platform,
            validate_only=self.validate_only,
            default_collapse_key=collapse_id,
            where=device.where,
        )

    async def send(self, request: FcmRequest) -> Attempt:
        pool = self._pool
        if pool is None:
            raise ProviderUnavailable("FCM provider used before start()")
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
                response = await pool.request("POST", self._path, headers, request.body)
            except ConnectionLost as exc:
                return Attempt(AttemptKind.RETRYABLE, None, type(exc).__name__)
            if response.status == 401 and refresh:
                try:
                    token = await self.tokens.refresh(token)
                except AuthRefused as exc:
                    return Attempt(AttemptKind.AUTH_FAILED, 401, exc.message)
                continue
            if response.status == 200:
                return Attempt(AttemptKind.DELIVERED, 200, "", provider_id=_name(response.body))
            code, status_text, message = _error(response.body)
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            return classify_fcm(response.status, code, status_text, message, retry_after)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _name(body: bytes) -> str:
    return str(_json(body).get("name", ""))


def _error(body: bytes) -> tuple[str | None, str, str]:
    """(details[].errorCode, error.status, error.message) of a google.rpc error body."""
    error = _json(body).get("error")
    if not isinstance(error, dict):
        return None, "", ""
    code = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
            break
    return code, str(error.get("status", "")), str(error.get("message", ""))


def create(
    profile: Profile, *, max_connections: int = 4, validate_only: bool = False, **_: Any
) -> FcmProvider:
    """Build the FCM provider from a profile (loads and checks the service account)."""
    settings = profile.fcm
    if settings.service_account is None:
        raise ConfigError(
            "the profile has no FCM service account",
            field="fcm.service_account",
            hint="pushctl config set fcm.service_account /path/to/service-account.json",
        )
    account = load_service_account(settings.service_account)
    token_uri = settings.token_uri or account.token_uri
    tokens = AccessTokens(account, token_uri, ca_file=profile.ca_file)
    return FcmProvider(
        settings.url,
        project_id=account.project_id,
        tokens=tokens,
        ca_file=profile.ca_file,
        validate_only=validate_only,
        max_connections=max_connections,
    )
