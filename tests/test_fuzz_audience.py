"""Fuzzing the audience readers (CSV, JSONL, text, stdin) and ``--where`` (see fuzz_support.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from fuzz_support import FAST, TOKENS, any_bytes, any_text, fresh, pieces
from hypothesis import given
from hypothesis import strategies as st

from pushctl.audience import AudienceReader, Segment
from pushctl.errors import InputError

# -- audiences -----------------------------------------------------------------------------------

audience_text = st.one_of(
    any_text,
    pieces(
        "token",
        "platform",
        "name",
        ",",
        ",",
        "\n",
        "\n",
        '"',
        "'",
        "\r\n",
        "\r",
        "\x00",
        "#",
        "ios",
        "android",
        "web",
        "apns",
        *TOKENS,
        "\ufeff",
        "{",
        "}",
        "[",
        "]",
        ":",
        " ",
        "\t",
    ),
)


def _jsonl_row(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


json_value = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(TOKENS)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
jsonl_text = st.lists(
    st.one_of(
        st.dictionaries(
            st.sampled_from(["token", "platform", "name", "locale", "x"]), json_value, max_size=4
        ).map(_jsonl_row),
        st.sampled_from(["[" * 200 + "]" * 200, '{"token": ' + "[" * 100, "null", "1" * 5000, ""]),
        any_text,
    ),
    max_size=8,
).map("\n".join)


def _read_all(reader: AudienceReader) -> int:
    return sum(1 for _ in reader)


@FAST
@given(
    text=st.one_of(audience_text, jsonl_text),
    fmt=st.sampled_from([None, "csv", "jsonl", "text"]),
    skip=st.booleans(),
    suffix=st.sampled_from([".csv", ".jsonl", ".txt"]),
)
def test_audience_files(tmp_path: Path, text: str, fmt: Any, skip: bool, suffix: str) -> None:
    path = fresh(tmp_path, suffix, text)
    with contextlib.suppress(InputError):
        reader = AudienceReader(path, fmt=fmt, on_bad_row="skip" if skip else "fail")
        _read_all(reader)
        reader.fingerprint()


@FAST
@given(data=any_bytes, suffix=st.sampled_from([".csv", ".jsonl", ".txt"]))
def test_audience_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = fresh(tmp_path, suffix, data)
    with contextlib.suppress(InputError):
        _read_all(AudienceReader(path, on_bad_row="skip"))


@FAST
@given(text=st.one_of(audience_text, jsonl_text), fmt=st.sampled_from([None, "csv", "jsonl", "text"]))
def test_audience_stdin(text: str, fmt: Any) -> None:
    with contextlib.suppress(InputError):
        _read_all(AudienceReader("-", fmt=fmt, on_bad_row="skip", stdin=io.StringIO(text)))


# -- --where -------------------------------------------------------------------------------------

WHERE_PIECES = [
    "country",
    "age",
    "last_seen",
    " ",
    "==",
    "!=",
    "<",
    ">=",
    "'JP'",
    '"FR"',
    "18",
    "-2.5",
    "1e309",
    "2026-01-31",
    "2026-02-30",
    "date(",
    "exists(",
    ")",
    "(",
    "and",
    "or",
    "not",
    "in",
    "[",
    "]",
    ",",
    "startswith",
    "contains",
    "true",
    "'unterminated",
    "\\",
    "\x00",
    "é",
    "九",
    "~",
    "x" * 300,
]
where_text = st.one_of(any_text, pieces(*WHERE_PIECES))
attrs = st.dictionaries(
    st.sampled_from(["country", "age", "last_seen", "x"]),
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(["18", "2026-01-31", "1e309", "nan", "JP", "2026-01-31T10:00:00Z"]),
    ),
)


@FAST
@given(expr=where_text, rows=st.lists(attrs, max_size=5))
def test_where_expressions(expr: str, rows: list[dict[str, str]]) -> None:
    try:
        segment = Segment.parse(expr)
    except InputError as exc:
        assert max(len(line) for line in str(exc).splitlines()) < 400  # a long expression is clipped
        return
    for row in rows:
        assert segment.matches(row) in (True, False)
