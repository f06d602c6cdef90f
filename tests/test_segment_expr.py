"""--where: what expressions select."""

from __future__ import annotations

import pytest

from pushctl.audience import Segment
from pushctl.model import Device, Platform

ROW = {
    "locale": "en_US",
    "country": "JP",
    "age": "30",
    "last_seen": "2026-01-15T10:00:00+09:00",
    "signup": "2025-06-01",
    "vip": "yes",
    "zip": "01234",
    "nickname": "",
}


def sel(expr: str, row: dict[str, str] | None = None) -> bool:
    return Segment.parse(expr).matches(ROW if row is None else row)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # and binds tighter than or: true or (false and false)
        ('country == "JP" or country == "FR" and age > 99', True),
        ('(country == "JP" or country == "FR") and age > 99', False),
        ('country == "FR" or country == "JP" AND age >= 30', True),
        ('not country == "FR" and age == 30', True),
        ('not (country == "JP" or age == 1)', False),
        ("not not age == 30", True),
    ],
)
def test_precedence(expr: str, expected: bool) -> None:
    assert sel(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('country in ["JP", "FR"]', True),
        ("country in ['DE', 'FR']", False),
        ('country not in ["DE", "FR"]', True),
        ('country not in ["JP"]', False),
        ("country in []", False),
        ("age in [18, 30.0]", True),
        ("age not in [18, 19]", True),
        ('age in ["30"]', True),
        ("signup in [2025-06-01, 2026-01-01]", True),
    ],
)
def test_in_and_not_in(expr: str, expected: bool) -> None:
    assert sel(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # numbers compare numerically, not as text ("30" < "4" as strings)
        ("age < 4", False),
        ("age >= 18", True),
        ("age == 30.0", True),
        ("age != 30", False),
        ("age > 1e1", True),
        ("-5 < age", True),
        # quoted literals always compare as strings
        ('age < "4"', True),
        ('zip == "01234"', True),
        ("zip == 1234", True),
        # dates: a datetime counts by its date
        ("last_seen >= 2026-01-15", True),
        ("last_seen > 2026-01-15", False),
        ('last_seen < date("2026-02-01")', True),
        ("last_seen == 2026-01-15", True),
        ("signup < last_seen", True),
        # booleans
        ("vip == true", True),
        ("vip != false", True),
        ("true", True),
        ("false or vip == TRUE", True),
        # strings
        ('locale startswith "en"', True),
        ('locale endswith "_US"', True),
        ('locale contains "n_U"', True),
        ('locale startswith "EN"', False),
        ('"en_US_POSIX" startswith locale', True),
        ('locale >= "en"', True),
    ],
)
def test_comparison_kinds(expr: str, expected: bool) -> None:
    assert sel(expr) is expected


def test_orderings_of_mismatched_kinds_are_false() -> None:
    row = {"age": "unknown", "seen": "yesterday"}
    assert not sel("age >= 18", row)
    assert not sel("age < 18", row)
    assert sel("age != 18", row)
    assert not sel("seen > 2026-01-01", row)
    assert sel('seen == "yesterday"', row)


@pytest.mark.parametrize(
    "expr",
    [
        'missing == "x"',
        'missing != "x"',
        "missing < 5",
        'missing in ["x"]',
        'missing not in ["x"]',
        'missing startswith ""',
        "exists(missing)",
        'nickname != "bob"',
        "exists(nickname)",
        "missing == age",
    ],
)
def test_missing_and_empty_columns_never_compare(expr: str) -> None:
    assert sel(expr) is False


@pytest.mark.parametrize(
    "expr",
    ["not exists(missing)", 'not (missing == "x")', "not exists(nickname)", "exists(age)"],
)
def test_negations_of_missing_are_true(expr: str) -> None:
    assert sel(expr) is True


def test_columns_lists_every_column_read() -> None:
    seg = Segment.parse('a == 1 or (b in [1] and not exists(c)) or d startswith "x" or 5 < e')
    assert seg.columns == frozenset({"a", "b", "c", "d", "e"})
    assert Segment.parse("true").columns == frozenset()


def test_string_escapes() -> None:
    assert sel(r"name == 'it\'s'", {"name": "it's"})
    assert sel(r'name == "a\"b\\c"', {"name": 'a"b\\c'})
    assert sel(r'name contains "\t"', {"name": "x\ty"})


def test_matches_device_reads_token_and_platform() -> None:
    dev = Device("abc123", Platform.IOS, {"country": "JP"})
    assert Segment.parse('platform == "ios" and token startswith "abc"').matches_device(dev)
    assert not Segment.parse('platform == "android"').matches_device(dev)
    assert Segment.parse('country == "JP"').matches_device(dev)


def test_constant_folding_of_two_literals() -> None:
    assert sel("1 < 2")
    assert not sel('"b" < "a"')
    assert sel('"JP" in ["JP"]')
    assert not sel('"JP" not in ["JP"]')


def test_long_chains_do_not_recurse() -> None:
    expr = " or ".join(f"c{i} == {i}" for i in range(5000))
    seg = Segment.parse(expr)
    assert seg.matches({"c4999": "4999"})
    assert not seg.matches({})
