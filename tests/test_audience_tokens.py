"""Token shape rules and the flat TokenSet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushctl.audience import TokenSet, infer_platform, normalize_token, token_problem
from pushctl.model import Platform

APNS = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"
FCM = "jORS_6ilI8ihN5KXSc7Tvo:APA91b_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWt"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"  {APNS}\n", APNS),
        (APNS.upper(), APNS),
        ("<a4c123b1 612dd272 d1371c17>", "a4c123b1612dd272d1371c17"),
        (f" {FCM} ", FCM),
        ("AbC:def", "AbC:def"),  # FCM tokens are case-sensitive
        ("  ", ""),
    ],
)
def test_normalize_token(raw: str, expected: str) -> None:
    assert normalize_token(raw) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (APNS, Platform.IOS),
        ("ab" * 16, Platform.IOS),  # 32 hex chars is the threshold
        ("ab" * 15, None),
        (FCM, Platform.ANDROID),
        ("x" * 32, Platform.ANDROID),
        ("x" * 31, None),
        ('{"endpoint": "https://push.example/abc", "keys": {}}', Platform.WEBPUSH),
        ("https://fcm.googleapis.com/fcm/send/abc", Platform.WEBPUSH),
        ("has spaces in it and is quite long, really", None),
        ("", None),
    ],
)
def test_infer_platform(token: str, expected: Platform | None) -> None:
    assert infer_platform(token) == expected


def test_token_problem_ios_is_lenient_about_length_not_alphabet() -> None:
    assert token_problem("abc", Platform.IOS) is None  # length is the service's call
    assert token_problem(APNS, Platform.IOS) is None
    problem = token_problem("zz" + APNS[2:], Platform.IOS)
    assert problem is not None and "'z'" in problem
    assert token_problem("", Platform.IOS) == "empty token"


def test_token_problem_fcm() -> None:
    assert token_problem(FCM, Platform.ANDROID) is None
    assert token_problem("shorttoken123", Platform.ANDROID) is None
    assert token_problem(FCM, Platform.WEB) is None
    problem = token_problem("abc def", Platform.ANDROID)
    assert problem is not None and "' '" in problem
    problem = token_problem("https://push.example/x", Platform.WEB)
    assert problem is not None and "set the platform to webpush" in problem
    assert token_problem("https://push.example/x", Platform.WEBPUSH) is None
    problem = token_problem("http://push.example/x", Platform.WEBPUSH)
    assert problem is not None and "https://" in problem


def test_token_problem_over_4kb() -> None:
    problem = token_problem("a" * 4097, Platform.ANDROID)
    assert problem is not None and "4 KB" in problem
    assert token_problem("a" * 4096, Platform.ANDROID) is None


def test_tokenset_add_contains_and_first_line() -> None:
    seen = TokenSet()
    assert seen.add("a", 2) is True
    assert seen.add("b", 3) is True
    assert seen.add("a", 9) is False
    assert "a" in seen and "c" not in seen
    assert seen.first_line("a") == 2
    assert seen.first_line("c") is None
    assert len(seen) == 2


def test_tokenset_grows_and_keeps_everything() -> None:
    seen = TokenSet(capacity=4)
    tokens = [f"token-{i}" for i in range(20_000)]
    assert all(seen.add(t, i) for i, t in enumerate(tokens))
    assert len(seen) == 20_000
    assert not any(seen.add(t) for t in tokens)
    assert seen.first_line("token-12345") == 12345
    # 8 + 4 bytes per slot, load <= 1/2: flat, not a set of strings.
    assert len(seen._table) <= 4 * 20_000 * 2


@given(st.lists(st.text(max_size=12), max_size=200))
def test_tokenset_matches_a_python_set(values: list[str]) -> None:
    seen = TokenSet()
    reference: set[str] = set()
    for value in values:
        assert seen.add(value) == (value not in reference)
        reference.add(value)
    assert len(seen) == len(reference)
