"""The tables of a profile: one dataclass per ``[profiles.<name>.<section>]``.

Each provider section says whether it is ``configured`` (pushctl then sends to that provider)
and where its service lives (the real host unless an ``endpoint`` override names the emulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

APNS_HOSTS = {"production": "https://api.push.apple.com", "sandbox": "https://api.sandbox.push.apple.com"}
APNS_CHANNEL_HOSTS = {
    "production": "https://api-manage-broadcast.push.apple.com:2196",
    "sandbox": "https://api-manage-broadcast.sandbox.push.apple.com:2195",
}
"""APNs' channel management API for broadcast push (iOS 18): its own host and port."""
FCM_ENDPOINT = "https://fcm.googleapis.com"
HMS_ENDPOINT = "https://push-api.cloud.huawei.com"
HMS_TOKEN_URL = "https://oauth-login.cloud.huawei.com/oauth2/v3/token"
DEFAULT_PASSWORD_ENV = "PUSHCTL_APNS_CERT_PASSWORD"
DEFAULT_HMS_SECRET_ENV = "PUSHCTL_HMS_CLIENT_SECRET"
ENVIRONMENTS = ("sandbox", "production")


@dataclass
class ApnsSettings:
    """The ``[profiles.<name>.apns]`` table (token auth or certificate auth)."""

    key_file: Path | None = None
    key_id: str | None = None
    team_id: str | None = None
    topic: str | None = None
    cert_file: Path | None = None
    cert_key_file: Path | None = None
    cert_password_env: str | None = None
    environment: Literal["sandbox", "production"] = "production"
    endpoint: str | None = None
    channels_endpoint: str | None = None

    @property
    def url(self) -> str:
        """Base URL to send to: the explicit endpoint, else the environment's Apple host."""
        return self.endpoint or APNS_HOSTS[self.environment]

    @property
    def channels_url(self) -> str:
        """Base URL of the broadcast channel management API."""
        return self.channels_endpoint or APNS_CHANNEL_HOSTS[self.environment]

    @property
    def configured(self) -> bool:
        return self.key_file is not None or self.cert_file is not None

    @property
    def auth(self) -> Literal["token", "certificate"] | None:
        """``token`` when a .p8 key is set (it wins over a certificate), ``certificate``, or None."""
        if self.key_file is not None:
            return "token"
        if self.cert_file is not None:
            return "certificate"
        return None

    @property
    def password_env(self) -> str:
        """Name of the environment variable holding the certificate password."""
        return self.cert_password_env or DEFAULT_PASSWORD_ENV


@dataclass
class FcmSettings:
    """The ``[profiles.<name>.fcm]`` table."""

    service_account: Path | None = None
    endpoint: str | None = None
    token_uri: str | None = None

    @property
    def url(self) -> str:
        return self.endpoint or FCM_ENDPOINT

    @property
    def configured(self) -> bool:
        return self.service_account is not None


@dataclass
class WebPushSettings:
    """The ``[profiles.<name>.webpush]`` table: the VAPID key pair that signs every push (RFC 8292).

    ``endpoint`` sends every subscription to one push service instead of its own origin (the path
    is kept): that is how a profile points Web Push at the emulator.
    """

    vapid_private_key: Path | None = None
    subject: str | None = None
    """``mailto:`` or ``https:`` contact the push service can reach the sender at (VAPID ``sub``)."""
    endpoint: str | None = None

    @property
    def configured(self) -> bool:
        return self.vapid_private_key is not None


@dataclass
class HmsSettings:
    """The ``[profiles.<name>.hms]`` table: Huawei Push Kit app id and client secret.

    The secret itself is never in the file: it is read from ``client_secret_file`` or from the
    environment variable named by ``client_secret_env`` (default ``PUSHCTL_HMS_CLIENT_SECRET``).
    """

    app_id: str | None = None
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    endpoint: str | None = None
    token_url: str | None = None

    @property
    def url(self) -> str:
        return self.endpoint or HMS_ENDPOINT

    @property
    def oauth_url(self) -> str:
        return self.token_url or HMS_TOKEN_URL

    @property
    def secret_env(self) -> str:
        return self.client_secret_env or DEFAULT_HMS_SECRET_ENV

    @property
    def configured(self) -> bool:
        return self.app_id is not None


@dataclass
class SenderSettings:
    """The ``[profiles.<name>.sender]`` table: defaults for ``pushctl send``."""

    concurrency: int | None = None
    rate: float | None = None
    max_attempts: int = 8
    quiet_hours: str | None = None
    cap: str | None = None
    default_timezone: str | None = None
    journal: Path | None = None


@dataclass
class PreferencesSettings:
    """The ``[profiles.<name>.preferences]`` table: categories users cannot opt out of."""

    mandatory_categories: str | None = None
    """Comma-separated (or a TOML list), e.g. ``"security, account"``: service messages sent whatever
    a user's preferences say (campaigns and trigger rules alike)."""

    @property
    def mandatory(self) -> frozenset[str]:
        """The mandatory categories, lower case."""
        text = self.mandatory_categories or ""
        return frozenset(c.strip().lower() for c in text.split(",") if c.strip())
