"""When to send: ``--at``, ``--local-time``, quiet hours, ``--spread`` and ``--cap`` values.

Everything here is pure: the current time is an argument (take it from :func:`pushctl.clock.now`),
so a streaming sender calls :func:`decide` once per device and gets a :class:`Decision` value.

Time zones come from the audience column ``timezone`` (IANA names such as ``Asia/Tokyo``),
falling back to ``--default-timezone``. Wall-clock times that do not exist on a DST day
(02:30 on a spring-forward night in New York) are read with the offset in force *before* the jump,
so they happen one hour later on the wall clock (03:30); ambiguous ones (the repeated hour in
autumn) mean their first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pushctl.errors import InputError

__all__ = [
    "Cap",
    "Decision",
    "LocalTimeSlot",
    "QuietHours",
    "Spreader",
    "bad_zone_reason",
    "decide",
    "parse_at",
    "parse_clock",
    "parse_duration",
    "zone_for",
]

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CLOCK = re.compile(r"(\d{1,2}):(\d\d)(?::(\d\d))?")
_DAY = timedelta(days=1)


def parse_at(text: str, *, field: str = "--at") -> datetime:
    """Parse an ISO 8601 timestamp that must carry a UTC offset or ``Z`` (``2026-12-01T09:00+08:00``)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"not an ISO 8601 date and time: {text!r}", field=field, hint="e.g. 2026-12-01T09:00+08:00"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{text!r} has no UTC offset", field=field, hint="add a UTC offset like +08:00 or Z")
    return value


def parse_duration(text: str, *, field: str | None = None) -> timedelta:
    """Parse ``90s``, ``30m``, ``2h``, ``1d`` or combinations in that order (``1h30m``); must be > 0."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None or not any(m.groups()):
        raise InputError(
            f"not a duration: {text!r}", field=field, hint="use a number and a unit: 90s, 30m, 2h, 1d, 1h30m"
        )
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not value:
        raise InputError(f"duration must be longer than zero: {text!r}", field=field)
    return value


def parse_clock(text: str, *, field: str | None = None) -> time:
    """Parse a 24-hour wall-clock time ``HH:MM`` (or ``HH:MM:SS``)."""
    m = _CLOCK.fullmatch(text.strip())
    hour, minute, second = (int(g or 0) for g in m.groups()) if m else (-1, 0, 0)
    if not (0 <= hour < 24 and minute < 60 and second < 60):
        raise InputError(f"not a time of day: {text!r}", field=field, hint="use 24-hour HH:MM, e.g. 09:00")
    return time(hour, minute, second)


@dataclass(frozen=True)
class Cap:
    """A frequency cap: at most ``count`` notifications per device in any ``window``."""

    count: int
    window: timedelta

    @classmethod
    def parse(cls, text: str, *, field: str = "--cap") -> Cap:
        """Parse ``COUNT/WINDOW``, e.g. ``3/24h`` or ``1/7d``."""
        count_text, slash, window_text = text.strip().partition("/")
        if not slash or not count_text.strip().isdigit():
            raise InputError(f"not a cap: {text!r}", field=field, hint="use COUNT/WINDOW, e.g. 3/24h")
        count = int(count_text)
        if count < 1:
            raise InputError(f"the count must be at least 1: {text!r}", field=field)
        return cls(count, parse_duration(window_text, field=field))

    def since(self, now: datetime) -> datetime:
        """Start of the window ending at ``now``: sends after it count against the cap."""
        return now - self.window


@dataclass(frozen=True)
class QuietHours:
    """A daily local-time window (``22:00-08:00``) in which devices are not disturbed.

    ``start`` is inclusive and ``end`` exclusive; a window whose end is earlier than its start
    wraps past midnight.
    """

    start: time
    end: time

    @classmethod
    def parse(cls, text: str, *, field: str = "--quiet-hours") -> QuietHours:
        """Parse ``HH:MM-HH:MM``; equal start and end are refused (it would mean always or never)."""
        start_text, dash, end_text = text.strip().partition("-")
        if not dash:
            hint = "use START-END, e.g. 22:00-08:00"
            raise InputError(f"not a time window: {text!r}", field=field, hint=hint)
        start, end = parse_clock(start_text, field=field), parse_clock(end_text, field=field)
        if start == end:
            raise InputError(f"start and end are the same: {text!r}", field=field)
        return cls(start, end)

    def contains(self, local: datetime) -> bool:
        """Whether the wall-clock time of ``local`` falls inside the window."""
        t = local.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, local: datetime) -> datetime:
        """The first end of the window after ``local``, as a datetime in ``local``'s time zone."""
        end = datetime.combine(local.date(), self.end, tzinfo=local.tzinfo)
        # Wall-clock comparison on purpose: the window is defined on the local clock.
        if end.replace(tzinfo=None) <= local.replace(tzinfo=None):
            end = datetime.combine(local.date() + _DAY, self.end, tzinfo=local.tzinfo)
        return end


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    # Cached with misses too, so a million rows with the same typo hit the tz database once.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_for(attrs: Mapping[str, str], default: ZoneInfo | None) -> ZoneInfo | None:
    """The device's zone from its ``timezone`` column; ``default`` when the column is absent or empty.

    An unknown zone name gives ``None`` (not the default) so the caller can tell it apart and
    report it with :func:`bad_zone_reason`.
    """
    name = attrs.get("timezone", "").strip()
    if not name:
        return default
    return _zone(name)


def bad_zone_reason(name: str) -> str:
    """Why ``name`` is not a usable time zone, for a message; ``""`` when it is fine."""
    name = name.strip()
    if not name:
        return "no time zone given"
    if _zone(name) is None:
        return f"unknown time zone {name!r} (use an IANA name like Europe/Paris)"
    return ""


@dataclass(frozen=True)
class LocalTimeSlot:
    """``--local-time``: send when the device's local clock reads ``at``, within ``window``.

    A device is *due* while its local time is in ``[at, at + window)`` today (or in yesterday's
    slot, if that window runs past midnight). A cron job that runs every N minutes with
    N < ``window`` therefore never misses a device: every device's slot contains at least one run.
    Devices not due get the UTC time of their next slot: later today if it has not come yet,
    else tomorrow's.
    """

    at: time
    window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.window <= _DAY:
            raise InputError("the window must be longer than zero and at most 1d", field="--local-time")

    @classmethod
    def parse(cls, text: str, window: timedelta = timedelta(hours=1)) -> LocalTimeSlot:
        """Parse ``HH:MM`` for ``--local-time``."""
        return cls(parse_clock(text, field="--local-time"), window)

    def blocked_by(self, quiet: QuietHours) -> bool:
        """Whether the whole slot lies inside ``quiet``, so no device would ever be sent: warn or refuse.

        (When only part of it does, devices are sent when quiet hours end, if still in the slot.)
        """
        start = datetime.combine(datetime(2000, 1, 1), self.at)
        minutes = max(1, int(self.window.total_seconds() // 60))
        return all(quiet.contains(start + timedelta(minutes=m)) for m in range(minutes))

    def not_before(self, local: datetime) -> datetime | None:
        """``None`` if the device is due at ``local`` (an aware local time), else its next slot in UTC."""
        now = local.astimezone(UTC)
        today = datetime.combine(local.date(), self.at, tzinfo=local.tzinfo).astimezone(UTC)
        if today <= now < today + self.window:
            return None
        if now < today:
            yesterday = datetime.combine(local.date() - _DAY, self.at, tzinfo=local.tzinfo).astimezone(UTC)
            return None if yesterday <= now < yesterday + self.window else today
        return datetime.combine(local.date() + _DAY, self.at, tzinfo=local.tzinfo).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one device now: ``send``, ``defer`` until ``not_before`` (UTC), or ``skip``."""

    action: Literal["send", "defer", "skip"]
    reason: str = ""
    not_before: datetime | None = None


SEND = Decision("send")


def decide(
    attrs: Mapping[str, str],
    now: datetime,
    *,
    local_time: LocalTimeSlot | None,
    quiet_hours: QuietHours | None,
    default_zone: ZoneInfo | None,
    ignore_quiet_hours: bool = False,
) -> Decision:
    """Decide whether a device is sent now, deferred, or skipped, given its row and an aware ``now``.

    Checks, in order:

    1. ``local_time``: not yet (or no longer) in the device's slot → ``defer`` / ``local_time``,
       ``not_before`` = its next slot.
    2. ``quiet_hours`` (unless ``ignore_quiet_hours``, for time-sensitive templates): local time
       inside the window → ``defer`` / ``quiet_hours``, ``not_before`` = the window's end in UTC.
    3. otherwise ``send``.

    A slot inside quiet hours is deferred to the end of quiet hours; see
    :meth:`LocalTimeSlot.blocked_by` to catch a slot that quiet hours cover completely.

    Time zone: the row's ``timezone`` column, else ``default_zone``; an unknown zone name is
    treated like a missing one (so it also falls back to ``default_zone``; report bad names with
    :func:`bad_zone_reason`). With no zone at all, a local-time campaign cannot place the device
    and skips it (``skip`` / ``no_timezone``), while quiet hours alone are not checked and the
    device is sent with reason ``no_timezone`` so the caller can count it.
    """
    check_quiet = quiet_hours is not None and not ignore_quiet_hours
    if local_time is None and not check_quiet:
        return SEND
    zone = zone_for(attrs, default_zone) or default_zone
    if zone is None:
        return Decision("skip", "no_timezone") if local_time is not None else Decision("send", "no_timezone")
    local = now.astimezone(zone)
    if local_time is not None:
        next_slot = local_time.not_before(local)
        if next_slot is not None:
            return Decision("defer", "local_time", next_slot)
    if check_quiet and quiet_hours is not None and quiet_hours.contains(local):
        return Decision("defer", "quiet_hours", quiet_hours.ends_after(local).astimezone(UTC))
    return SEND


class Spreader:
    """Paces a campaign: ``delay_for(i)`` is when (seconds after the start) the i-th send should go.

    ``Spreader(window, total)`` spreads ``total`` sends evenly over ``window``: send *i* at
    ``i * window / total``, so the first goes at once and the last one interval before the end.
    For a stream of unknown length use :meth:`from_rate`.
    """

    __slots__ = ("interval",)

    def __init__(self, window: timedelta, total: int | None) -> None:
        if total is None:
            hint = "pace a stream with --rate"
            raise InputError("spreading over a window needs the audience size", field="--spread", hint=hint)
        self.interval = window.total_seconds() / total if total > 0 else 0.0
        """Seconds between consecutive sends."""

    @classmethod
    def from_rate(cls, per_second: float) -> Spreader:
        """Pace at ``per_second`` sends per second, for audiences of unknown length."""
        if per_second <= 0:
            raise InputError("the rate must be greater than zero", field="--rate")
        # Bypasses __init__: a timedelta's microsecond resolution would round high rates.
        spreader = cls.__new__(cls)
        spreader.interval = 1.0 / per_second
        return spreader

    def delay_for(self, index: int) -> float:
        """Seconds from the campaign start at which send number ``index`` (0-based) is due."""
        if index < 0:
            raise ValueError("index must be >= 0")
        return index * self.interval
