"""APNs adapter: HTTP/2 provider API with token (ES256 JWT) or certificate auth."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from pushctl.config import Profile
from pushctl.credentials import ApnsCertificate, ApnsTokenKey, load_apns_certificate, load_apns_key
from pushctl.errors import ConfigError, InputError, ProviderUnavailable
from pushctl.inputs import loads_bounded, read_bounded
from pushctl.message import APNS_LIMIT, ApnsRequest, Notification, build_apns
from pushctl.model import Device, Platform
from pushctl.paths import data_dir, write_private
from pushctl.providers.base import Attempt, AttemptKind, classify_apns, parse_retry_after
from pushctl.transport import ConnectionLost, H2Pool, H2Response, make_ssl_context

JWT_REFRESH_AFTER = 50 * 60
"""Re-sign before APNs' 60-minute limit (50 is what most libraries use)."""
JWT_MIN_INTERVAL = 20 * 60
"""APNs answers TooManyProviderTokenUpdates to a new token sooner than this."""


class JwtSigner:
    """Signs the provider JWT once and reuses it: refreshed after ``refresh_after`` seconds,
    never sooner than ``min_interval`` unless APNs said it expired.

    With ``cache`` (a file), the token outlives the process: a resume or the next cron run
    within ``refresh_after`` reuses it, since APNs refuses a new token for the same key sooner
    than 20 minutes (429 TooManyProviderTokenUpdates). The file is private (0600) and holds
    only the short-lived JWT, never the key.
    """

    def __init__(
        self,
        key: ApnsTokenKey,
        *,
        refresh_after: float = JWT_REFRESH_AFTER,
        min_interval: float = JWT_MIN_INTERVAL,
        clock: Callable[[], float] = time.time,
        cache: Path | None = None,
    ) -> None:
        self._key = key
        self._cache = cache
        self._refresh_after = refresh_after
        self._min_interval = min_interval
        self._clock = clock
        self._token = ""
        self._issued = 0.0
        self.signed = 0
        """How many tokens were signed (for tests and diagnostics)."""

    def _sign(self) -> str:
        now = self._clock()
        self._token = jwt.encode(
            {"iss": self._key.team_id, "iat": int(now)},
            self._key.private_key,
            algorithm="ES256",
            headers={"kid": self._key.key_id},
        )
        self._issued = now
        self.signed += 1
        self._save()
        return self._token

    def _load(self) -> None:
        if self._cache is None:
            return
        try:
            data = loads_bounded(read_bounded(self._cache, what="JWT cache", limit=64 * 1024))
            if data["kid"] == self._key.key_id and data["iss"] == self._key.team_id:
                self._token, self._issued = str(data["token"]), float(data["iat"])
        except (InputError, ValueError, KeyError, TypeError):
            pass  # no cache yet, or unreadable: sign a new token

    def _save(self) -> None:
        if self._cache is None:
            return
        key = self._key
        record = {"kid": key.key_id, "iss": key.team_id, "iat": self._issued, "token": self._token}
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs a new token
            tmp = self._cache.with_name(f"{self._cache.name}.{os.getpid()}.tmp")
            write_private(tmp, json.dumps(record))
            os.replace(tmp, self._cache)

    def token(self) -> str:
        """The current JWT, re-signed when it is old enough."""
        if not self._token:
            self._load()
        if not self._token or self._clock() - self._issued >= self._refresh_after:
            return self._sign()
        return self._token

    def expired(self, used: str) -> str:
        """APNs said ``used`` expired: sign a new one unless another request already did."""
        if used != self._token:
            return self._token
        return self._sign()


class ApnsProvider:
    """Sends to ``POST /3/device/<token>`` over the HTTP/2 pool."""

    name = "apns"
    platforms = frozenset({Platform.IOS})
    default_concurrency = 500
    payload_limit = APNS_LIMIT

    def __init__(
        self,
        url: str,
        *,
        topic: str,
        key: ApnsTokenKey | None = None,
        certificate: ApnsCertificate | None = None,
        ca_file: Path | None = None,
        max_connections: int = 4,
        signer: JwtSigner | None = None,
        jwt_cache: Path | None = None,
        channels_url: str | None = None,
    ) -> None:
        if key is None and certificate is None:
            raise ConfigError("APNs needs a .p8 key or a certificate", field="apns")
        self.url = url
        self.topic = topic
        self._signer = signer or (JwtSigner(key, cache=jwt_cache) if key is not None else None)
        self._certificate = certificate
        self._ca_file = ca_file
        self._max_connections = max_connections
        self._pool: H2Pool | None = None
        self.channels_url = channels_url
        """The broadcast channel management API (its own host in production)."""
        self._channels_pool: H2Pool | None = None

    def _ssl(self) -> Any:
        if self._certificate is None:
            return make_ssl_context(ca_file=self._ca_file)
        # load_cert_chain wants files: write them to a private directory, load, delete at once.
        with tempfile.TemporaryDirectory(prefix="pushctl-") as tmp:
            pair = self._certificate.pem_files(Path(tmp))
            return make_ssl_context(ca_file=self._ca_file, client_cert=pair)

    async def start(self) -> None:
        self._pool = H2Pool(self.url, ssl_context=self._ssl(), max_connections=self._max_connections)

    def prepare(self, device: Device, notification: Notification, *, collapse_id: str | None) -> ApnsRequest:
        return build_apns(
            notification, device.token, topic=self.topic, default_collapse_id=collapse_id, where=device.where
        )

    async def send(self, request: ApnsRequest) -> Attempt:
        pool = self._pool
        if pool is None:
            raise ProviderUnavailable("APNs provider used before start()")
        jwt_token = self._signer.token() if self._signer is not None else ""
        for resign in (True, False):
            headers = request.headers
            if jwt_token:
                headers = [*headers, ("authorization", f"bearer {jwt_token}")]
            try:
                response = await pool.request("POST", request.path, headers, request.body, index_path=False)
            except ConnectionLost as exc:
                return Attempt(AttemptKind.RETRYABLE, None, type(exc).__name__)
            reason = ""
            if response.status != 200:
                reason = _reason(response.body)
                if reason == "ExpiredProviderToken" and resign and self._signer is not None:
                    jwt_token = self._signer.expired(jwt_token)
                    continue
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            attempt = classify_apns(response.status, reason, retry_after)
            if reason == "ExpiredProviderToken":
                # Re-signed once and refused again: the clock or the key is wrong, stop.
                attempt.kind = AttemptKind.AUTH_FAILED
            # A broadcast is answered with the request's id, not a notification id.
            answer = response.headers
            attempt.provider_id = answer.get("apns-id") or answer.get("apns-request-id", "")
            return attempt
        raise AssertionError("unreachable")

    async def manage(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> H2Response:
        """One request to the channel management API (``/1/apps/...``) with this provider's credentials.

        Raises ConnectionLost / ConnectError like the pool; the caller reads the answer.
        """
        if self.channels_url is None:
            raise ConfigError("no APNs channel management endpoint", field="apns.channels_endpoint")
        if self._channels_pool is None:
            self._channels_pool = H2Pool(self.channels_url, ssl_context=self._ssl(), max_connections=1)
        jwt_token = self._signer.token() if self._signer is not None else ""
        if jwt_token:
            headers = [*headers, ("authorization", f"bearer {jwt_token}")]
        return await self._channels_pool.request(method, path, headers, body, index_path=False)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._channels_pool is not None:
            await self._channels_pool.close()


def _reason(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("reason", "")) if isinstance(data, dict) else ""


def jwt_cache_path(key: ApnsTokenKey) -> Path:
    """Where the provider JWT of ``key`` is kept between runs (mode 0600)."""
    return data_dir() / "apns-jwt" / f"{key.team_id}.{key.key_id}.json"


def create(
    profile: Profile,
    *,
    max_connections: int = 4,
    password: Callable[[], bytes | None] | None = None,
    **_: Any,
) -> ApnsProvider:
    """Build the APNs provider from a profile (loads and checks its credentials)."""
    settings = profile.apns
    if not settings.topic:
        raise ConfigError(
            "no APNs topic (bundle id) in the profile",
            field="apns.topic",
            hint="pushctl config set apns.topic com.example.app",
        )
    key = cert = None
    if settings.key_file is not None:
        key = load_apns_key(settings.key_file, settings.key_id, settings.team_id)
    elif settings.cert_file is not None:
        secret = password() if password is not None else None
        cert = load_apns_certificate(settings.cert_file, key_path=settings.cert_key_file, password=secret)
    else:
        raise ConfigError(
            "the profile has no APNs credentials",
            field="apns.key_file",
            hint="set apns.key_file/key_id/team_id (token auth) or apns.cert_file",
        )
    return ApnsProvider(
        settings.url,
        topic=settings.topic,
        key=key,
        certificate=cert,
        ca_file=profile.ca_file,
        max_connections=max_connections,
        jwt_cache=jwt_cache_path(key) if key is not None else None,
        channels_url=settings.channels_url,
    )
