"""Local-time slots, quiet hours and decide() across time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushctl.campaign import Decision, LocalTimeSlot, QuietHours, bad_zone_reason, decide, zone_for

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
NINE = LocalTimeSlot(time(9, 0))
QUIET = QuietHours(time(22, 0), time(8, 0))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def at_nine(zone: str, now: datetime = NOW) -> Decision:
    return decide({"timezone": zone}, now, local_time=NINE, quiet_hours=None, default_zone=None)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        # 00:30 UTC on 1 Dec is 09:30 in Tokyo: inside [09:00, 10:00)
        ("Asia/Tokyo", Decision("send")),
        # 01:30 in Paris: today's 09:00 is 08:00 UTC
        ("Europe/Paris", Decision("defer", "local_time", utc(2026, 12, 1, 8, 0))),
        # 16:30 on 30 Nov in Los Angeles: slot passed, next is 1 Dec 09:00 PST = 17:00 UTC
        ("America/Los_Angeles", Decision("defer", "local_time", utc(2026, 12, 1, 17, 0))),
        # +14:00: 14:30 on 1 Dec, slot passed; next is 2 Dec 09:00 = 1 Dec 19:00 UTC
        ("Pacific/Kiritimati", Decision("defer", "local_time", utc(2026, 12, 1, 19, 0))),
        # +05:45: 06:15 local; 09:00 is 03:15 UTC
        ("Asia/Kathmandu", Decision("defer", "local_time", utc(2026, 12, 1, 3, 15))),
        ("UTC", Decision("defer", "local_time", utc(2026, 12, 1, 9, 0))),
    ],
)
def test_local_time_slot_across_zones(zone: str, expected: Decision) -> None:
    assert at_nine(zone) == expected


def test_kathmandu_is_due_at_its_quarter_hour_offset() -> None:
    assert at_nine("Asia/Kathmandu", utc(2026, 12, 1, 3, 15)).action == "send"
    assert at_nine("Asia/Kathmandu", utc(2026, 12, 1, 3, 14, 59)).action == "defer"
    assert at_nine("Asia/Kathmandu", utc(2026, 12, 1, 4, 14, 59)).action == "send"
    assert at_nine("Asia/Kathmandu", utc(2026, 12, 1, 4, 15)).not_before == utc(2026, 12, 2, 3, 15)


def test_spring_forward_day_in_new_york() -> None:
    # 8 March 2026: clocks jump 02:00 EST -> 03:00 EDT. 09:00 is 13:00 UTC that day, 14:00 the day before.
    assert at_nine("America/New_York", utc(2026, 3, 7, 13, 30)) == Decision(
        "defer", "local_time", utc(2026, 3, 7, 14, 0)
    )
    assert at_nine("America/New_York", utc(2026, 3, 8, 13, 0)).action == "send"
    assert at_nine("America/New_York", utc(2026, 3, 8, 12, 59)).not_before == utc(2026, 3, 8, 13, 0)
    # A slot in the skipped hour (02:30) happens at 03:30 EDT = 07:30 UTC, not never.
    slot = LocalTimeSlot(time(2, 30))
    night = decide(
        {"timezone": "America/New_York"},
        utc(2026, 3, 8, 6, 0),
        local_time=slot,
        quiet_hours=None,
        default_zone=None,
    )
    assert night == Decision("defer", "local_time", utc(2026, 3, 8, 7, 30))


def test_slot_window_running_past_midnight_uses_yesterdays_slot() -> None:
    late = LocalTimeSlot(time(23, 30), timedelta(hours=1))
    local = datetime(2026, 12, 2, 0, 15, tzinfo=ZoneInfo("Europe/Paris"))
    assert late.not_before(local) is None
    assert late.not_before(local.replace(hour=0, minute=31)) == utc(2026, 12, 2, 22, 30)


@given(st.integers(min_value=0, max_value=7 * 24 * 60 - 1), st.integers(min_value=1, max_value=59))
def test_cron_every_n_minutes_shorter_than_window_catches_every_slot(start: int, step: int) -> None:
    # Runs every `step` minutes for 24h from any start: each device is due in one stretch of runs
    # (two only when the day of runs begins and ends inside a slot), never longer than the window.
    zone = ZoneInfo("Asia/Kathmandu")
    begin = utc(2026, 12, 1) + timedelta(minutes=start)
    runs = [begin + timedelta(minutes=step * i) for i in range(24 * 60 // step + 1)]
    due = [NINE.not_before(r.astimezone(zone)) is None for r in runs]
    starts = [i for i, d in enumerate(due) if d and (i == 0 or not due[i - 1])]
    assert 1 <= len(starts) <= 2
    if len(starts) == 2:
        assert due[0] and due[-1]
    assert sum(due) <= len(starts) * (60 // step + 1)
    for run, is_due in zip(runs, due, strict=True):
        if not is_due:
            nxt = NINE.not_before(run.astimezone(zone))
            assert nxt is not None and run < nxt <= run + timedelta(days=1)
            assert nxt.astimezone(zone).time() == time(9, 0)


@pytest.mark.parametrize(
    ("clock", "inside", "end"),
    [
        (time(21, 59), False, datetime(2026, 12, 2, 8, 0)),
        (time(22, 0), True, datetime(2026, 12, 2, 8, 0)),
        (time(23, 59), True, datetime(2026, 12, 2, 8, 0)),
        (time(0, 0), True, datetime(2026, 12, 1, 8, 0)),
        (time(7, 59), True, datetime(2026, 12, 1, 8, 0)),
        (time(8, 0), False, datetime(2026, 12, 2, 8, 0)),
        (time(12, 0), False, datetime(2026, 12, 2, 8, 0)),
    ],
)
def test_quiet_hours_wrapping_midnight(clock: time, inside: bool, end: datetime) -> None:
    zone = ZoneInfo("Europe/Paris")
    local = datetime.combine(datetime(2026, 12, 1).date(), clock, tzinfo=zone)
    assert QUIET.contains(local) is inside
    assert QUIET.ends_after(local) == end.replace(tzinfo=zone)


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-13:30")
    day = datetime(2026, 12, 1, tzinfo=UTC)
    assert lunch.contains(day.replace(hour=12, minute=45))
    assert not lunch.contains(day.replace(hour=13, minute=30))
    assert not lunch.contains(day.replace(hour=23))
    assert lunch.ends_after(day.replace(hour=12)) == day.replace(hour=13, minute=30)


def test_decide_quiet_hours_defers_until_the_window_ends_in_utc() -> None:
    # 23:30 in Tokyo (14:30 UTC): quiet until 08:00 Tokyo = 23:00 UTC
    d = decide(
        {"timezone": "Asia/Tokyo"},
        utc(2026, 12, 1, 14, 30),
        local_time=None,
        quiet_hours=QUIET,
        default_zone=None,
    )
    assert d == Decision("defer", "quiet_hours", utc(2026, 12, 1, 23, 0))


def test_decide_order_local_time_before_quiet_hours() -> None:
    # 07:30 slot inside 22:00-08:00 quiet hours: due by slot, then deferred by quiet hours
    slot = LocalTimeSlot(time(7, 30))
    now = utc(2026, 12, 1, 6, 45)  # 07:45 Paris
    d = decide({"timezone": "Europe/Paris"}, now, local_time=slot, quiet_hours=QUIET, default_zone=None)
    assert d == Decision("defer", "quiet_hours", utc(2026, 12, 1, 7, 0))
    # before the slot, local_time wins even though it is also quiet
    d = decide(
        {"timezone": "Europe/Paris"},
        utc(2026, 12, 1, 5, 0),
        local_time=slot,
        quiet_hours=QUIET,
        default_zone=None,
    )
    assert d == Decision("defer", "local_time", utc(2026, 12, 1, 6, 30))
    # time-sensitive templates ignore quiet hours but not the slot
    d = decide(
        {"timezone": "Europe/Paris"},
        now,
        local_time=slot,
        quiet_hours=QUIET,
        default_zone=None,
        ignore_quiet_hours=True,
    )
    assert d == Decision("send")


def test_decide_without_constraints_sends() -> None:
    assert decide({}, NOW, local_time=None, quiet_hours=None, default_zone=None) == Decision("send")
    assert (
        decide({}, NOW, local_time=None, quiet_hours=QUIET, default_zone=None, ignore_quiet_hours=True).action
        == "send"
    )


@pytest.mark.parametrize("attrs", [{}, {"timezone": ""}, {"timezone": "Mars/Olympus_Mons"}])
def test_decide_without_a_zone(attrs: dict[str, str]) -> None:
    assert decide(attrs, NOW, local_time=NINE, quiet_hours=None, default_zone=None) == Decision(
        "skip", "no_timezone"
    )
    assert decide(attrs, NOW, local_time=None, quiet_hours=QUIET, default_zone=None) == Decision(
        "send", "no_timezone"
    )
    # the default zone stands in for missing and unknown zones
    tokyo = ZoneInfo("Asia/Tokyo")
    assert decide(attrs, NOW, local_time=NINE, quiet_hours=QUIET, default_zone=tokyo) == Decision("send")


def test_zone_for_and_bad_zone_reason() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert zone_for({"timezone": "Asia/Tokyo"}, paris) == ZoneInfo("Asia/Tokyo")
    assert zone_for({}, paris) is paris
    assert zone_for({"timezone": " "}, None) is None
    assert zone_for({"timezone": "Nowhere/Town"}, paris) is None
    assert zone_for({"timezone": "../../etc/passwd"}, paris) is None
    assert "unknown time zone 'Nowhere/Town'" in bad_zone_reason("Nowhere/Town")
    assert bad_zone_reason("Asia/Kathmandu") == ""
    assert bad_zone_reason("") == "no time zone given"


def test_slot_blocked_by_quiet_hours() -> None:
    assert LocalTimeSlot(time(23, 0)).blocked_by(QUIET)
    assert LocalTimeSlot(time(7, 0), timedelta(minutes=60)).blocked_by(QUIET)
    assert not LocalTimeSlot(time(7, 30)).blocked_by(QUIET)
    assert not LocalTimeSlot(time(9, 0)).blocked_by(QUIET)
    assert not LocalTimeSlot(time(21, 30)).blocked_by(QUIET)
