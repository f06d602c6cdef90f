"""Small value types shared by every layer: platforms and devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Platform(StrEnum):
    """Where a device token belongs."""

    IOS = "ios"
    ANDROID = "android"
    WEB = "web"
    """An FCM *web* registration token (sent through FCM)."""
    WEBPUSH = "webpush"
    """A Web Push subscription (RFC 8030): the token is its endpoint URL, the keys are attributes."""
    HMS = "hms"
    """A Huawei Push Kit token (Huawei devices without Google services)."""

    @property
    def provider(self) -> str:
        """The provider that delivers to this platform (``apns``, ``fcm``, ``webpush`` or ``hms``)."""
        return _PROVIDER[self]


_PROVIDER = {
    Platform.IOS: "apns",
    Platform.ANDROID: "fcm",
    Platform.WEB: "fcm",
    Platform.WEBPUSH: "webpush",
    Platform.HMS: "hms",
}


@dataclass(slots=True, frozen=True)
class Device:
    """One audience row: a token, its platform and the row's other columns as template variables."""

    token: str
    platform: Platform
    attrs: dict[str, str] = field(default_factory=dict)
    source: str = "-"
    """The audience file's name (``<stdin>`` for standard input)."""
    line: int = 0
    """1-based line number in ``source``."""

    @property
    def where(self) -> str:
        """``file:line``, for messages."""
        return f"{self.source}:{self.line}"
