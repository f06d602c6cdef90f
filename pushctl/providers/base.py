"""The provider interface and the two error tables.

A provider (APNs, FCM, later Web Push...) is one module under ``pushctl/providers/`` that
declares its limits as data and makes *one* attempt per :meth:`Provider.send` call.
Everything else -- concurrency, rate, retries, backoff, stopping the campaign -- belongs to
:class:`pushctl.delivery.sender.Sender`, which only ever sees :class:`Attempt` values.

The ``classify_*`` functions are the fact sheet's error tables
(``shared/reference/push-protocols.md``) as code; the adapters call them on every answer.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

from pushctl.errors import PayloadError
from pushctl.model import Device, Platform
from pushctl.outcome import Outcome, Result


class AttemptKind(StrEnum):
    """What one request's answer means for the sender."""

    DELIVERED = "delivered"
    INVALID_TOKEN = "invalid_token"
    """The token is dead or belongs to another app/project: prune it, do not retry."""
    REJECTED = "rejected"
    """The request itself is wrong (payload, topic, headers): do not retry, fix."""
    RETRYABLE = "retryable"
    """Transient (429, 5xx, connection lost, IdleTimeout): retry later."""
    AUTH_FAILED = "auth_failed"
    """Credentials refused: the campaign stops."""


@dataclass(slots=True)
class Attempt:
    """The answer to one request, already classified by the provider."""

    kind: AttemptKind
    status: int | None
    """HTTP status, or None when no answer came back (connection lost)."""
    reason: str
    """The provider's reason (``Unregistered``, ``UNAVAILABLE``) or e.g. ``ConnectionLost``."""
    provider_id: str = ""
    """``apns-id`` or the FCM message name."""
    retry_after: float | None = None
    """Seconds to wait before retrying, from the ``Retry-After`` header."""
    provider_wide: bool = False
    """A throttling or availability answer (429, 503) that may speak for the whole provider, not
    one device. One such answer only backs off its device; when half of the provider's latest
    answers are such answers from different devices, the sender pauses the whole provider (see
    :mod:`pushctl.delivery.lane`). False for answers that name one device ("Device message rate
    exceeded")."""
    per_device: dict[str, Attempt] | None = None
    """For a batch request: the answer per token where they differ (HMS partial success lists its
    illegal tokens); a token not in it shares this attempt's own answer."""


class Provider(Protocol):
    """What the sender needs from a push service adapter.

    ``request`` is opaque to the sender: whatever :meth:`prepare` builds, :meth:`send` takes.

    Optional batch capability (HMS: one request for up to 1,000 tokens): a provider with
    ``batch_limit > 1`` also has ``batch_key(request)`` (equal keys: the devices' requests are
    identical but for the token) and ``merge(requests)`` (one request for them all). The sender
    groups pending items with :func:`take_batch`, sends the merged request as one attempt (retried
    as one) and gives each device its own result from :attr:`Attempt.per_device`.
    """

    name: str
    """Registry name: ``apns`` or ``fcm``."""
    platforms: frozenset[Platform]
    default_concurrency: int
    """Requests in flight when the user does not choose (declared as data, like apprise's limits)."""
    payload_limit: int
    """Largest payload in bytes."""

    async def start(self) -> None:
        """Connect and authenticate up front; may raise AuthRefused / ProviderUnavailable."""
        ...

    def prepare(self, device: Device, notification: Any, *, collapse_id: str | None) -> Any:
        """Build the request for one device; raises PayloadError when it breaks a protocol rule."""
        ...

    async def send(self, request: Any) -> Attempt:
        """Make ONE attempt. Never raises for per-device problems: a lost connection is
        ``Attempt(RETRYABLE, None, "ConnectionLost")``."""
        ...

    async def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


@dataclass(slots=True)
class WorkItem:
    """One device, with the request its provider prepared for it (or, for a batch, several
    devices: ``members``, whose requests ``request`` carries together)."""

    device: Device
    provider: str
    request: Any
    variant: str = ""
    ref: int = 0
    """The caller's id for this item, echoed in its :class:`Result` (trigger sends use it to find
    their journal row: one token may be in flight for several rules at once)."""
    members: list[WorkItem] | None = None

    @property
    def size(self) -> int:
        """Devices this item stands for."""
        return len(self.members) if self.members is not None else 1


BATCH_SCAN_MISSES = 64
""":func:`take_batch` stops looking after this many pending items in a row with other content
(personalised messages then go one per request without a quadratic scan)."""


def take_batch(provider: Any, first: WorkItem, pending: deque[WorkItem], limit: int) -> WorkItem:
    """``first`` and the pending items with an identical request (up to ``limit`` in all), taken out
    of ``pending`` (the others keep their order), as one item whose request is ``provider.merge``'d."""
    key = provider.batch_key(first.request)
    members = [first]
    kept: list[WorkItem] = []
    misses = 0
    while pending and len(members) < limit and misses < BATCH_SCAN_MISSES:
        item = pending.popleft()
        if provider.batch_key(item.request) == key:
            members.append(item)
            misses = 0
        else:
            kept.append(item)
            misses += 1
    pending.extendleft(reversed(kept))
    return WorkItem(first.device, first.provider, provider.merge([m.request for m in members]), first.variant,
                    members=members)


def prepare_item(
    provider: Provider, device: Device, notification: Any, *, collapse_id: str | None = None,
    variant: str = "",
) -> WorkItem | Result:
    """Build the item for one device, or its REJECTED result when the payload breaks a rule.

    A PayloadError is a per-device outcome (the run goes on), not a run-wide error.
    """
    try:
        request = provider.prepare(device, notification, collapse_id=collapse_id)
    except PayloadError as exc:
        return Result(device.token, device.platform, Outcome.REJECTED, exc.message, variant=variant,
                      line=device.line)
    return WorkItem(device, provider.name, request, variant)


@asynccontextmanager
async def started(providers: Iterable[Provider]) -> AsyncIterator[list[Provider]]:
    """Start all providers side by side and close them all on exit.

    If one fails to start, the ones that did start are closed before the error propagates.
    """
    items = list(providers)
    outcomes = await asyncio.gather(*(p.start() for p in items), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    try:
        if failures:
            raise failures[0]
        yield items
    finally:
        await asyncio.gather(
            *(p.close() for p, o in zip(items, outcomes, strict=True) if not isinstance(o, BaseException)),
            return_exceptions=True,
        )


# --- APNs -----------------------------------------------------------------------------------

_APNS_INVALID_TOKEN = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"})
_APNS_RETRYABLE = frozenset(
    {
        "IdleTimeout",
        "TooManyRequests",
        "TooManyProviderTokenUpdates",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
        # The adapter re-signs its JWT and retries once; a second one comes back as AUTH_FAILED.
        "ExpiredProviderToken",
    }
)
_APNS_AUTH = frozenset(
    {
        "InvalidProviderToken",
        "MissingProviderToken",
        "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyIdInToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
    }
)


def classify_apns(status: int, reason: str, retry_after: float | None) -> Attempt:
    """Classify an APNs answer (status + JSON ``reason``) per the fact sheet's table.

    The reason decides first; unknown reasons fall back on the status (403 is always a
    credential problem at APNs, 410 a dead token, 429/5xx transient, other 4xx a bad request).
    """
    text = reason or f"HTTP {status}"
    if 200 <= status < 300:
        return Attempt(AttemptKind.DELIVERED, status, reason)
    if reason in _APNS_INVALID_TOKEN:
        return Attempt(AttemptKind.INVALID_TOKEN, status, text)
    if reason in _APNS_RETRYABLE or status == 429 or status >= 500:
        # TooManyRequests is documented per device, but answered to many devices at once it is
        # Apple throttling the provider: the sender tells the two apart by bursts.
        wide = status in (429, 503)
        return Attempt(AttemptKind.RETRYABLE, status, text, retry_after=retry_after, provider_wide=wide)
    if reason in _APNS_AUTH or status == 403:
        return Attempt(AttemptKind.AUTH_FAILED, status, text)
    if status == 410:
        return Attempt(AttemptKind.INVALID_TOKEN, status, text)
    return Attempt(AttemptKind.REJECTED, status, text)


# --- FCM ------------------------------------------------------------------------------------

_FCM_INVALID_TOKEN = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
_FCM_QUOTA = frozenset({"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"})
_FCM_RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL"})
_FCM_AUTH = frozenset({"THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", "PERMISSION_DENIED"})


def classify_fcm(
    status: int, error_code: str | None, status_text: str, message: str, retry_after: float | None
) -> Attempt:
    """Classify an FCM v1 answer per the fact sheet's table.

    ``error_code`` is ``error.details[].errorCode`` (the specific one, read first);
    ``status_text`` is ``error.status`` (often generic); ``message`` is ``error.message``.
    """
    if 200 <= status < 300:
        return Attempt(AttemptKind.DELIVERED, status, "")
    code = error_code or status_text or ""
    text = code or f"HTTP {status}"
    if code in _FCM_INVALID_TOKEN:
        return Attempt(AttemptKind.INVALID_TOKEN, status, text)
    if code == "INVALID_ARGUMENT":
        # One code for "bad message" and "bad token": only the message tells them apart.
        kind = AttemptKind.INVALID_TOKEN if "registration token" in message.lower() else AttemptKind.REJECTED
        return Attempt(kind, status, text)
    if code in _FCM_QUOTA:
        # The project's quota may pause the whole provider (in a burst); a per-device rate limit
        # ("Device message rate exceeded") must not hold up everyone else.
        wide = "device" not in message.lower()
        return Attempt(AttemptKind.RETRYABLE, status, text, retry_after=retry_after, provider_wide=wide)
    if code in _FCM_RETRYABLE or status == 429 or status >= 500:
        wide = status in (429, 503) and "device" not in message.lower()
        return Attempt(AttemptKind.RETRYABLE, status, text, retry_after=retry_after, provider_wide=wide)
    if code in _FCM_AUTH or status in (401, 403):
        return Attempt(AttemptKind.AUTH_FAILED, status, text)
    return Attempt(AttemptKind.REJECTED, status, text)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date).

    ``now`` is wall-clock UNIX time (for the HTTP-date form). Dates in the past give 0;
    anything unparseable gives None (fall back to backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP-dates are always UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
