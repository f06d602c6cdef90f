"""Fuzz: the readers of engagement events (`engage import`) and preferences (`prefs import`,
`--preferences`) give rows or a located InputError, never another exception, within the deadline."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from fuzz_support import FAST, any_bytes, any_text, fresh, pieces
from hypothesis import given
from hypothesis import strategies as st

from pushctl.errors import InputError
from pushctl.insights import EngagementReader
from pushctl.insights.preferences import MAX_PREFERENCE_LINE, read_preferences

SUFFIXES = st.sampled_from([".csv", ".jsonl", ""])
EVENT_PIECES = [
    "event_id,type,ts,campaign,token,variant\n",
    "e1,opened,2026-03-02T09:00:00Z,c1,",
    "ab" * 32,
    ",short\n",
    "converted",
    '"',
    ",,,,,,,,,,\n",
    "\x00",
    '{"type": "opened", "ts": "2026-03-02T09:00:00Z", "campaign": "c", "token": "t"}\n',
    '{"type": ' + "[" * 3000 + "\n",
    "1e999",
    "\n",
]
PREF_PIECES = [
    "user_id,category,opted_in\n",
    "u1,marketing,false\n",
    "token,category,opted_in\n",
    ",,\n",
    "u2,,maybe\n",
    '"',
    '{"user_id": "u", "category": "orders", "opted_in": true}\n',
    "[" * 3000 + "\n",
    "\xff",
    "\n",
]


@FAST
@given(
    data=st.one_of(any_text, any_bytes, pieces(*EVENT_PIECES)), suffix=st.sampled_from([".csv", ".jsonl", ""])
)
def test_engagement_event_files(tmp_path: Path, data: str | bytes, suffix: str) -> None:
    for on_bad_row in ("fail", "skip"):
        reader = EngagementReader(str(fresh(tmp_path, suffix, data)), on_bad_row=on_bad_row)
        with contextlib.suppress(InputError):
            for _ in reader:
                pass


@FAST
@given(
    data=st.one_of(any_text, any_bytes, pieces(*PREF_PIECES)), suffix=st.sampled_from([".csv", ".jsonl", ""])
)
def test_preference_files(tmp_path: Path, data: str | bytes, suffix: str) -> None:
    for on_bad_row in ("fail", "skip"):
        with contextlib.suppress(InputError):
            list(read_preferences(fresh(tmp_path, suffix, data), on_bad_row=on_bad_row))


def test_a_device_or_a_huge_line_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"device"):
        list(read_preferences(Path("/dev/zero")))
    with pytest.raises(InputError, match=r"device"):
        list(EngagementReader("/dev/zero"))
    long = tmp_path / "long.csv"
    long.write_text("user_id,category,opted_in\nu1,marketing," + "x" * MAX_PREFERENCE_LINE + "\n")
    with pytest.raises(InputError) as caught:
        list(read_preferences(long))
    assert caught.value.line == 2
    assert "limit" in str(caught.value)
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    with pytest.raises(InputError) as caught:
        list(read_preferences(deep))
    assert caught.value.line == 1
