"""Parsing --at, durations, clock times, --cap, --quiet-hours; the Spreader."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushctl.campaign import (
    Cap,
    LocalTimeSlot,
    QuietHours,
    Spreader,
    parse_at,
    parse_clock,
    parse_duration,
)
from pushctl.errors import InputError


def test_parse_at_with_offset_and_z() -> None:
    assert parse_at("2026-12-01T09:00+08:00") == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert parse_at("2026-12-01T09:00:00Z") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert parse_at(" 2026-12-01T09:00+05:45 ").utcoffset() == timedelta(hours=5, minutes=45)


def test_parse_at_without_offset_is_refused_with_a_hint() -> None:
    with pytest.raises(InputError) as info:
        parse_at("2026-12-01T09:00")
    assert info.value.field == "--at"
    assert info.value.hint == "add a UTC offset like +08:00 or Z"
    with pytest.raises(InputError, match="not an ISO 8601"):
        parse_at("tomorrow at nine")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("24H", timedelta(hours=24)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "m", "1.5h", "30m1h", "-5m", "0m", "1w", "1 h"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_duration(text, field="--spread")
    assert info.value.field == "--spread"


@given(st.integers(0, 9), st.integers(0, 48), st.integers(0, 120), st.integers(0, 120))
def test_parse_duration_round_trip(d: int, h: int, m: int, s: int) -> None:
    text = "".join(f"{n}{u}" for n, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if n)
    expected = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if expected:
        assert parse_duration(text) == expected


def test_parse_clock() -> None:
    assert parse_clock("09:00") == time(9, 0)
    assert parse_clock("9:05") == time(9, 5)
    assert parse_clock("23:59:30") == time(23, 59, 30)
    for bad in ("24:00", "9", "09:60", "9am", "", "09:00:61"):
        with pytest.raises(InputError, match="not a time of day"):
            parse_clock(bad, field="--local-time")


def test_cap_parse() -> None:
    assert Cap.parse("3/24h") == Cap(3, timedelta(hours=24))
    assert Cap.parse(" 1/7d ") == Cap(1, timedelta(days=7))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert Cap.parse("1/24h").since(now) == datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["3", "3/", "/24h", "0/24h", "-1/24h", "x/24h", "3/24", "3/0h", "3/24h/1"])
def test_cap_parse_errors_name_the_field(text: str) -> None:
    with pytest.raises(InputError) as info:
        Cap.parse(text)
    assert info.value.field == "--cap"
    assert str(info.value).startswith("field '--cap': ")


def test_quiet_hours_parse() -> None:
    assert QuietHours.parse("22:00-08:00") == QuietHours(time(22, 0), time(8, 0))
    for bad in ("22:00", "22:00-22:00", "22-08", "22:00-25:00"):
        with pytest.raises(InputError) as info:
            QuietHours.parse(bad)
        assert info.value.field == "--quiet-hours"


def test_local_time_slot_parse_and_window_bounds() -> None:
    assert LocalTimeSlot.parse("09:00") == LocalTimeSlot(time(9, 0), timedelta(hours=1))
    with pytest.raises(InputError):
        LocalTimeSlot(time(9, 0), timedelta(0))
    with pytest.raises(InputError):
        LocalTimeSlot(time(9, 0), timedelta(days=2))


@given(st.integers(1, 100_000), st.integers(1, 86_400))
def test_spreader_is_even_and_fits_the_window(total: int, seconds: int) -> None:
    spreader = Spreader(timedelta(seconds=seconds), total)
    delays = [spreader.delay_for(i) for i in (0, 1, total // 2, total - 1)]
    assert delays[0] == 0
    assert delays[-1] < seconds
    assert delays[1] == pytest.approx(seconds / total)
    # evenly spaced: the i-th send is i intervals in
    assert delays[2] == pytest.approx((total // 2) * seconds / total)


def test_spreader_counts_per_bucket_are_even() -> None:
    spreader = Spreader(timedelta(minutes=30), 10_000)
    buckets = [0] * 30
    for i in range(10_000):
        buckets[int(spreader.delay_for(i) // 60)] += 1
    assert max(buckets) - min(buckets) <= 1


def test_spreader_from_rate_and_unknown_total() -> None:
    paced = Spreader.from_rate(250)
    assert paced.delay_for(0) == 0
    assert paced.delay_for(1000) == pytest.approx(4.0)
    with pytest.raises(InputError, match="audience size"):
        Spreader(timedelta(minutes=30), None)
    with pytest.raises(InputError):
        Spreader.from_rate(0)
    with pytest.raises(ValueError):
        paced.delay_for(-1)
    assert Spreader(timedelta(minutes=5), 0).delay_for(0) == 0


def test_parse_at_keeps_the_offset_given() -> None:
    assert parse_at("2026-12-01T09:00+08:00").tzinfo == timezone(timedelta(hours=8))
