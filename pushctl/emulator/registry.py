"""The emulator's device registry and registered credentials.

It answers two questions for every request: does this credential belong to a registered
app (APNs signing keys, FCM service accounts), and what is the state of this device token
(unregistered, another app / project, expired). The test-token prefixes documented in
DEVELOPERS.md are built in, like a payment provider's test card numbers.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_APNS_KEY = DATA_DIR / "AuthKey_EMU0000001.p8"
SAMPLE_KEY_ID = "EMU0000001"
SAMPLE_TEAM_ID = "EMUTEAM001"
SAMPLE_TOPIC = "com.example.pushctl"
SAMPLE_SERVICE_ACCOUNT = DATA_DIR / "service-account.json"
SAMPLE_PROJECT = "pushctl-emulator"
SAMPLE_VAPID_KEY = DATA_DIR / "vapid-emulator.pem"
SAMPLE_VAPID_SUBJECT = "mailto:push@example.com"
SAMPLE_HMS_APP_ID = "102030405"
SAMPLE_HMS_SECRET_FILE = DATA_DIR / "hms-client-secret.txt"
SAMPLE_BROADCASTS = DATA_DIR / "broadcast-samples.toml"
SAMPLE_APNS_CHANNEL = "cHVzaGN0bC1zYW1wbGUtc2NvcmVz"
"""The sample Live Activity channel (in ``broadcast-samples.toml``): two sample iOS devices follow it."""
"""Topic and channel subscriptions of the sample devices (``samples/audience.csv``)."""

_HEX = re.compile(r"[0-9a-fA-F]+")
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:\-]+")

# Suffixes APNs accepts after the bundle id for particular push types.
TOPIC_SUFFIXES = (
    ".voip",
    ".complication",
    ".pushkit.fileprovider",
    ".push-type.liveactivity",
    ".voip-ptt",
    ".location-query",
    ".push-type.widgets",
)

TOKEN_LISTS = (
    "unregistered", "not_for_topic", "expired", "fcm_unregistered", "fcm_other_project",
    "webpush_gone", "hms_illegal",
)  # fmt: skip


@dataclass(slots=True)
class ApnsKey:
    """A registered APNs signing key (its public half)."""

    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    topics: frozenset[str]
    environments: frozenset[str] = frozenset({"sandbox", "production"})


@dataclass(slots=True)
class ServiceAccount:
    """A registered FCM service account (its public half)."""

    client_email: str
    project_id: str
    key_id: str
    public_key: rsa.RSAPublicKey


@dataclass(slots=True)
class ApnsChannel:
    """An APNs broadcast channel (iOS 18 Live Activities) and the devices subscribed to it."""

    channel_id: str
    topic: str
    """The bundle id the channel was created for."""
    storage_policy: int = 0
    """``message-storage-policy``: 0 = no message stored, 1 = the most recent one kept for late joiners."""
    subscribers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Verdict:
    """A registry answer for a token: HTTP status, reason / error code, optional 410 timestamp."""

    status: int
    reason: str
    timestamp_ms: int | None = None


@dataclass
class Registry:
    """Registered credentials plus token lists; mutable at run time (tests add to it)."""

    apns_keys: dict[str, ApnsKey] = field(default_factory=dict)
    revoked_keys: set[str] = field(default_factory=set)
    revoked_certificates: set[int] = field(default_factory=set)
    """Serial numbers of client certificates that are refused with 403 ``Forbidden``."""
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    bad_apns_credentials_projects: set[str] = field(default_factory=set)
    """FCM projects whose (emulated) APNs credentials are wrong: ``apns`` messages get
    ``THIRD_PARTY_AUTH_ERROR``."""
    unregistered: dict[str, int] = field(default_factory=dict)
    """APNs token -> unregistration time (ms), answered 410 ``Unregistered``."""
    not_for_topic: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    fcm_unregistered: set[str] = field(default_factory=set)
    fcm_other_project: set[str] = field(default_factory=set)
    webpush_gone: set[str] = field(default_factory=set)
    """Web Push subscription ids answered 410 (besides the ``gone…`` test ids)."""
    hms_apps: dict[str, str] = field(default_factory=dict)
    """HMS app id -> client secret."""
    hms_illegal: set[str] = field(default_factory=set)
    fcm_topics: dict[str, set[str]] = field(default_factory=dict)
    """FCM topic -> the registration tokens subscribed to it."""
    apns_channels: dict[str, ApnsChannel] = field(default_factory=dict)

    @classmethod
    def with_samples(cls) -> Registry:
        """A registry with the sample credentials registered and the sample devices' broadcasts."""
        reg = cls()
        reg.register_apns_key(SAMPLE_APNS_KEY, SAMPLE_KEY_ID, SAMPLE_TEAM_ID, [SAMPLE_TOPIC])
        reg.register_service_account(SAMPLE_SERVICE_ACCOUNT)
        reg.hms_apps[SAMPLE_HMS_APP_ID] = SAMPLE_HMS_SECRET_FILE.read_text().strip()
        reg.add_broadcasts(tomllib.loads(SAMPLE_BROADCASTS.read_text()))
        return reg

    def add_broadcasts(self, spec: dict[str, Any]) -> None:
        """Topic and channel subscriptions: ``{"fcm_topics": {topic: [tokens]},
        "apns_channels": [{"id", "topic", "storage_policy", "subscribers"}]}`` (a scenario's too)."""
        for topic, tokens in spec.get("fcm_topics", {}).items():
            self.fcm_topics.setdefault(topic, set()).update(tokens)
        for entry in spec.get("apns_channels", []):
            channel = self.apns_channels.get(entry["id"])
            if channel is None:
                channel = self.apns_channels[entry["id"]] = ApnsChannel(
                    entry["id"], entry.get("topic", SAMPLE_TOPIC), int(entry.get("storage_policy", 0))
                )
            channel.subscribers.update(entry.get("subscribers", []))

    def topics_of(self, token: str) -> set[str]:
        """The FCM topics ``token`` is subscribed to."""
        return {topic for topic, tokens in self.fcm_topics.items() if token in tokens}

    # -- credentials --------------------------------------------------------

    def register_apns_key(
        self,
        path: Path | str,
        key_id: str,
        team_id: str,
        topics: list[str] | tuple[str, ...] | set[str],
        *,
        environments: tuple[str, ...] = ("sandbox", "production"),
    ) -> None:
        """Register a ``.p8`` key (or any PEM holding an EC P-256 private or public key)."""
        data = Path(path).read_bytes()
        public: Any
        try:
            private = serialization.load_pem_private_key(data, None)
            public = private.public_key()
        except ValueError:
            public = serialization.load_pem_public_key(data)
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise ValueError(f"{path}: not an EC key")
        self.apns_keys[key_id] = ApnsKey(key_id, team_id, public, frozenset(topics), frozenset(environments))

    def register_service_account(self, path: Path | str) -> ServiceAccount:
        """Register a service-account JSON file (its private key is used only to derive the public key)."""
        info = json.loads(Path(path).read_text())
        private = serialization.load_pem_private_key(info["private_key"].encode(), None)
        public = private.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError(f"{path}: not an RSA key")
        account = ServiceAccount(
            info["client_email"], info["project_id"], info.get("private_key_id", ""), public
        )
        self.service_accounts[account.client_email] = account
        return account

    def topics(self) -> set[str]:
        """Every topic some registered key may push to."""
        return {t for k in self.apns_keys.values() for t in k.topics}

    # -- token lists --------------------------------------------------------

    def add_tokens(self, list_name: str, tokens: list[str] | set[str]) -> None:
        """Add tokens to one of :data:`TOKEN_LISTS`."""
        if list_name == "unregistered":
            now = int(time.time() * 1000)
            for t in tokens:
                self.unregistered.setdefault(t, now)
        elif list_name in TOKEN_LISTS:
            getattr(self, list_name).update(tokens)
        else:
            raise ValueError(f"unknown token list {list_name!r} (expected one of {', '.join(TOKEN_LISTS)})")

    def load_token_file(self, list_name: str, path: Path | str) -> int:
        """Add the tokens of a file (one per line, ``#`` comments) to a list; returns how many."""
        tokens = [
            line.strip()
            for line in Path(path).read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        self.add_tokens(list_name, tokens)
        return len(tokens)

    def apns_token_verdict(self, token: str) -> Verdict | None:
        """The error APNs answers for ``token``, or None if it is deliverable."""
        n = len(token)
        if n < 64 or n > 200 or n % 2 or not _HEX.fullmatch(token):
            return Verdict(400, "BadDeviceToken")
        if token.startswith("0000000000000000"):
            # Issued to no device (`credentials check --online` probes with one): unknown to APNs.
            return Verdict(400, "BadDeviceToken")
        lowered = token.lower()
        ts = self.unregistered.get(token)
        if ts is not None:
            return Verdict(410, "Unregistered", ts)
        if lowered.startswith("dead"):
            # A stable timestamp per token keeps answers reproducible across requests.
            return Verdict(410, "Unregistered", 1_700_000_000_000)
        if lowered.startswith("0bad") or token in self.not_for_topic:
            return Verdict(400, "DeviceTokenNotForTopic")
        if token in self.expired:
            return Verdict(410, "ExpiredToken")
        return None

    def fcm_token_verdict(self, token: str) -> Verdict | None:
        """The FCM error (status, errorCode) for ``token``, or None if it is deliverable."""
        if len(token) < 32 or not _FCM_TOKEN.fullmatch(token):
            return Verdict(400, "INVALID_ARGUMENT")
        if token.startswith("unregistered") or token in self.fcm_unregistered:
            return Verdict(404, "UNREGISTERED")
        if token.startswith("otherproject") or token in self.fcm_other_project:
            return Verdict(403, "SENDER_ID_MISMATCH")
        return None
