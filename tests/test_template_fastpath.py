"""Plain ``{{ name }}`` substitutions skip Jinja: the result must be exactly Jinja's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pushctl.message.template import _ENV, _Expr, _simple_parts
from pushctl.model import Device, Platform

NAMES = ["name", "city", "n", "missing", "range", "true", "None"]
literal = st.text(alphabet=st.sampled_from(list("ab {}%#\r\n-é")), max_size=8)
pad_st = st.sampled_from(["", " ", "  "])
var = st.builds(lambda name, pad: "{{" + pad + name + pad + "}}", st.sampled_from(NAMES), pad_st)
source_st = st.lists(st.one_of(literal, var), max_size=6).map("".join)
value_st = st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                     st.lists(st.integers(), max_size=2))
DEVICE = Device(token="ab" * 32, platform=Platform.IOS, attrs={}, source="t.csv", line=2)


def _jinja(source: str, ctx: dict[str, Any]) -> tuple[str, str | None]:
    try:
        return _ENV.from_string(source).render(ctx), None
    except Exception as exc:
        return "", type(exc).__name__


def _ours(source: str, ctx: dict[str, Any]) -> tuple[str, str | None]:
    try:
        compiled = _ENV.from_string(source)
    except Exception as exc:
        return "", type(exc).__name__
    try:
        return _Expr(compiled, source, "title", 1).render(ctx, Path("t.yaml"), DEVICE), None
    except Exception:
        return "", "error"


@given(source_st, st.dictionaries(st.sampled_from(NAMES[:3]), value_st))
def test_the_fast_path_renders_exactly_what_jinja_does(source: str, ctx: dict[str, Any]) -> None:
    expected, jinja_error = _jinja(source, ctx)
    got, our_error = _ours(source, ctx)
    assert (got, our_error is None) == (expected, jinja_error is None)


def test_only_plain_substitutions_take_the_fast_path() -> None:
    parts = _simple_parts("Hi {{ name }}, welcome to {{city}}!")
    assert parts == ("Hi ", "name", ", welcome to ", "city", "!")
    assert _simple_parts("{{ event.data.id }}!") == ("", "event.data.id", "!")
    for source in ("{{ name | upper }}", "{{ user['name'] }}", "{{- name }}", "{{ true.x }}",
                   "{% if a %}x{% endif %}",
                   "{{ true }}", "a\r\n{{ name }}", "{# note #}{{ name }}"):
        assert _simple_parts(source) is None, source


DOTTED = ["event.data.id", "event.data.items", "event.id", "event.data.n.x", "user.name"]
KEYS = st.sampled_from(["id", "items", "n", "x"])
nested_st = st.recursive(value_st, lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=6)
dotted_st = st.lists(st.one_of(literal, st.builds(lambda name, pad: "{{" + pad + name + pad + "}}",
                                                  st.sampled_from(DOTTED), pad_st)), max_size=4).map("".join)


@given(dotted_st, st.dictionaries(st.sampled_from(["event", "user"]), nested_st))
def test_dotted_names_render_exactly_what_jinja_does(source: str, ctx: dict[str, Any]) -> None:
    expected, jinja_error = _jinja(source, ctx)
    got, our_error = _ours(source, ctx)
    assert (got, our_error is None) == (expected, jinja_error is None)
