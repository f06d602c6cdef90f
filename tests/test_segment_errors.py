"""--where: errors point at the right column, and nothing but SegmentError escapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushctl.audience import Segment, SegmentError
from pushctl.errors import ExitCode, InputError


def error_for(expr: str) -> SegmentError:
    with pytest.raises(SegmentError) as info:
        Segment.parse(expr)
    return info.value


@pytest.mark.parametrize(
    ("expr", "position", "fragment"),
    [
        ('country == "JP', 11, "unterminated string"),
        ("country == 'JP' and x == 'a", 25, "unterminated string"),
        ('(country == "JP"))', 17, "unexpected ')'"),
        ("age >= 18 age", 10, "unexpected 'age'"),
        ("age >= ", 7, "expected a value after '>='"),
        ("age >=", 6, "expected a value after '>='"),
        ("age == and", 7, "expected a value after '=='"),
        ("lower(name) == 'x'", 0, "unknown function 'lower'"),
        ("a == 1 and regex(b)", 11, "unknown function 'regex'"),
        ("(a == 1", 7, "expected ')' to close the '(' opened at column 1,"),
        ("a = 1", 2, "unexpected character '='"),
        ("a == 1 && b == 2", 7, "unexpected character '&'"),
        ("vip", 3, "expected a comparison after 'vip'"),
        ("a in 'x'", 5, "expected '['"),
        ("a in [1, b]", 9, "list items must be values"),
        ("a == 2026-02-30", 5, "invalid date"),
        ("a == 12abc", 5, "invalid number or date '12abc'"),
        ("a == 1 or", 9, "expected a condition"),
        ("", 0, "empty expression"),
        ("   ", 3, "empty expression"),
        ("vip < true", 4, "booleans can only be compared"),
        ("exists(1)", 7, "exists() takes a column name"),
        ('name == "bad \\q escape"', 13, "unknown escape"),
    ],
)
def test_error_position_and_message(expr: str, position: int, fragment: str) -> None:
    err = error_for(expr)
    assert err.position == position
    assert fragment in err.message
    assert f"at column {position + 1}" in err.message


def test_error_rendering_has_caret_under_the_position() -> None:
    err = error_for('(country == "JP"))')
    assert str(err) == "--where: unexpected ')' at column 18\n  (country == \"JP\"))\n                   ^"
    assert isinstance(err, InputError)
    assert err.field == "--where"
    assert err.exit_code is ExitCode.USAGE


def test_caret_lines_up_with_the_offending_character() -> None:
    err = error_for("age >= 18 and\tcountry ==")
    expr_line, caret_line = str(err).splitlines()[1:]
    assert "\t" not in expr_line
    assert len(caret_line) - 1 == len(expr_line)  # caret just past the end


def test_caret_accounts_for_wide_characters() -> None:
    err = error_for('name == "名前" )')
    assert err.position == 13
    # the two wide characters take two cells each, so the caret moves right by two
    assert str(err).splitlines()[2].index("^") == 2 + 13 + 2


def test_unknown_function_has_a_hint() -> None:
    err = error_for("lower(x) == 'a'")
    assert err.hint is not None and "exists()" in err.hint


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    err = error_for("(" * 10_000 + "a == 1" + ")" * 10_000)
    assert "nested too deeply" in err.message
    err = error_for("not " * 10_000 + "a == 1")
    assert "nested too deeply" in err.message


ALPHABET = st.sampled_from(
    [
        *"()[],'\"\\=!<>-.:_ \t\nab019é名",
        "and",
        "or",
        "not",
        "in",
        "true",
        "exists(",
        "date(",
        "startswith",
        "2026-01-31",
        "==",
        ">=",
        " x ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map("".join))
def test_junk_either_parses_or_raises_segment_error(expr: str) -> None:
    try:
        seg = Segment.parse(expr)
    except SegmentError as err:
        assert 0 <= err.position <= len(expr)
        assert str(err).startswith("--where: ")
        return
    # Whatever parsed must evaluate to a bool on any row, never raise.
    for row in ({}, {"a": "1", "b": "x", "x": "2026-01-31"}, {"a": "", "b": "2026-01-31T00:00:00Z"}):
        assert isinstance(seg.matches(row), bool)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_either_parses_or_raises_segment_error(expr: str) -> None:
    try:
        Segment.parse(expr)
    except SegmentError as err:
        assert 0 <= err.position <= len(expr)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "x"]), st.text(max_size=12), max_size=3))
def test_evaluation_never_raises_on_any_row(row: dict[str, str]) -> None:
    for expr in (
        "a >= 18 or b < 2026-01-01",
        "a == b or a < b",
        'x in [1, "y", 2026-01-01, true] and not exists(b)',
        'x contains "1" or b startswith a',
        "a == true",
    ):
        assert isinstance(Segment.parse(expr).matches(row), bool)
