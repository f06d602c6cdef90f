"""What each emulated device "received": an append-only record of accepted notifications.

Recording is on the server's hot path, so a delivery costs one list append and one dict
append under a lock; queries copy what they return so callers on other threads never
see a list that is still growing.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Delivery:
    """One accepted notification as the device would have received it."""

    token: str
    platform: str
    """``ios`` for APNs; for FCM ``android`` (the emulator cannot tell an FCM token's platform)."""
    provider: str
    """``apns`` or ``fcm``."""
    payload: dict[str, Any]
    """The APNs JSON body, or the FCM ``message`` object."""
    headers: dict[str, str] = field(default_factory=dict)
    collapse_id: str | None = None
    message_id: str = ""
    """The ``apns-id`` or the FCM message name."""
    received_at: float = 0.0
    """UNIX time (seconds) the emulator accepted it."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (used by the admin endpoint), the provider token redacted."""
        data = asdict(self)
        if "authorization" in data["headers"]:
            scheme = data["headers"]["authorization"].split(" ", 1)[0]
            data["headers"]["authorization"] = f"{scheme} <redacted>"
        return data


class Inbox:
    """Thread-safe, append-only store of :class:`Delivery` records, indexed by token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all: list[Delivery] = []
        self._by_token: dict[str, list[Delivery]] = {}

    def record(self, delivery: Delivery) -> None:
        """Append one delivery (O(1))."""
        with self._lock:
            self._all.append(delivery)
            bucket = self._by_token.get(delivery.token)
            if bucket is None:
                self._by_token[delivery.token] = [delivery]
            else:
                bucket.append(delivery)

    def received(self, token: str) -> list[Delivery]:
        """Every delivery to ``token``, oldest first."""
        with self._lock:
            return list(self._by_token.get(token, ()))

    def count(self, token: str) -> int:
        """How many notifications ``token`` received."""
        with self._lock:
            return len(self._by_token.get(token, ()))

    def total(self) -> int:
        """How many notifications were recorded in all."""
        with self._lock:
            return len(self._all)

    def tokens(self) -> set[str]:
        """Every token that received at least one notification."""
        with self._lock:
            return set(self._by_token)

    def all(self) -> list[Delivery]:
        """Every delivery, in the order they were accepted."""
        with self._lock:
            return list(self._all)

    def duplicates(self) -> dict[str, int]:
        """Tokens that received more than one notification, with their counts."""
        with self._lock:
            return {t: len(d) for t, d in self._by_token.items() if len(d) > 1}

    def by_collapse_id(self) -> dict[str, list[Delivery]]:
        """Deliveries grouped by collapse id, oldest first (deliveries without one are left out).

        A device shows only the newest of a group, so a resend with the same collapse id
        is invisible to the user: count the groups' members to see resends.
        """
        with self._lock:
            snapshot = list(self._all)
        groups: dict[str, list[Delivery]] = {}
        for d in snapshot:
            if d.collapse_id is not None:
                groups.setdefault(d.collapse_id, []).append(d)
        return groups

    def clear(self) -> None:
        """Forget every delivery."""
        with self._lock:
            self._all = []
            self._by_token = {}
