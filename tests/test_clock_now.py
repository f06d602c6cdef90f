"""clock.now() honours PUSHCTL_NOW."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pushctl import clock
from pushctl.errors import InputError


def test_now_is_aware_utc_and_current(monkeypatch: pytest.MonkeyPatch) -> None:
    value = clock.now()
    assert value.tzinfo is UTC
    assert abs(value - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("2026-12-01T08:55:00Z", datetime(2026, 12, 1, 8, 55, tzinfo=UTC)),
        ("2026-12-01T09:00+08:00", datetime(2026, 12, 1, 1, 0, tzinfo=UTC)),
        ("2026-03-08T07:30:00-05:00", datetime(2026, 3, 8, 12, 30, tzinfo=UTC)),
    ],
)
def test_pushctl_now_is_honoured_and_fixed(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: datetime
) -> None:
    monkeypatch.setenv("PUSHCTL_NOW", env)
    first = clock.now()
    assert first == expected
    assert first.tzinfo is UTC
    assert clock.now() == first  # does not advance


def test_empty_pushctl_now_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHCTL_NOW", "")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("env", "fragment"), [("yesterday", "not an ISO 8601"), ("2026-12-01T09:00", "no UTC offset")]
)
def test_bad_pushctl_now_names_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, fragment: str) -> None:
    monkeypatch.setenv("PUSHCTL_NOW", env)
    with pytest.raises(InputError) as info:
        clock.now()
    assert info.value.field == "PUSHCTL_NOW"
    assert "PUSHCTL_NOW" in str(info.value)
    assert fragment in info.value.message


def test_monotonic_is_not_affected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHCTL_NOW", "2000-01-01T00:00:00Z")
    a = clock.monotonic()
    assert clock.monotonic() >= a
