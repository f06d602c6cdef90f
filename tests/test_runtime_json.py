"""runtime.dumps_compact: orjson where installed, byte for byte what the standard library gave."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushctl import runtime

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def stdlib(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@given(documents)
def test_same_bytes_as_the_standard_library(obj: Any) -> None:
    assert runtime.dumps_compact(obj) == stdlib(obj)


@pytest.mark.parametrize(
    "obj",
    [{"n": 2**70}, {1: "int key"}, {"f": 0.1, "e": 1.5e300}],
)
def test_what_orjson_refuses_or_spells_differently_still_encodes(obj: Any) -> None:
    assert json.loads(runtime.dumps_compact(obj)) == json.loads(stdlib(obj))


def test_without_orjson_the_standard_library_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime._orjson_dumps.cache_clear()
    monkeypatch.setenv("PUSHCTL_NO_ORJSON", "1")
    try:
        assert runtime._orjson_dumps() is None
        assert runtime.dumps_compact({"a": [1, "é"]}) == stdlib({"a": [1, "é"]})
    finally:
        runtime._orjson_dumps.cache_clear()
