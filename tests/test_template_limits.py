"""Rendering is bounded: size, loop iterations and time; every refusal names the limit and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushctl.errors import TemplateError
from pushctl.message import Template
from pushctl.model import Device, Platform

DEVICE = Device("ab" * 32, Platform.IOS, {"name": "Ann", "n": "3"}, "aud.csv", 2)


def render(tmp_path: Path, body: str) -> str | None:
    path = tmp_path / "t.yaml"
    path.write_text(f"body: {json.dumps(body)}\n")  # a JSON string is a YAML double-quoted scalar
    return Template.load(path).render(DEVICE).body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{{ 'a' * 10**9 }}", "'*' would be 1,000,000,000 characters long"),
        ("{{ [1] * 10**7 }}", "'*' would be 10,000,000"),
        ("{{ 7 ** 100000 }}", "bits"),
        ("{{ 'a' | center(1000000000) }}", "center()"),
        ("{{ 'a'.ljust(10**9) }}", "ljust()"),
        ("{{ '%0999999999d' % 1 }}", "'%' formatting"),
        ("{{ '%0999999999d' | format(1) }}", "format"),
        ("{{ '{:>999999999}'.format(1) }}", "str.format()"),
        ("{{ '{:{}}'.format(1, 10**9) }}", "nested"),
        ("{{ ('a' * 100000) | replace('a', 'bb') }}", "replace()"),
        ("{{ range(100000) | join('a' * 1000) }}", "join()"),
        ("{{ [1, 2] | batch(1000000000) | list }}", "batch()"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         "10,000 iterations"),
        ("{% set ns = namespace(x='a') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
         "concatenation"),
        ("{% for i in range(20) %}{{ 'x' * 9000 }}{% endfor %}", "rendered text is longer than the limit"),
    ],
)
def test_expensive_templates_stop_at_a_named_limit(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(tmp_path, body)
    message = str(info.value)
    assert words in message, message
    assert message.startswith(f"{tmp_path / 't.yaml'}:1: field 'body': ")
    assert "for the device at aud.csv:2" in message or "not allowed" in message


def test_lipsum_is_not_available(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="lipsum"):
        render(tmp_path, "{{ lipsum(1000000) }}")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ name | upper }} {{ 2 ** 10 }} {{ 'ab' ~ name }}", "ANN 1024 abAnn"),
        ("{% for c in 'abc' %}{{ loop.index }}{{ c }}{% endfor %}", "1a2b3c"),
        ("{{ '%5d|%s' % (3, name) }}|{{ '{:>5}'.format(name) }}", "    3|Ann|  Ann"),
        ("{{ [1, 2, 3] | join(',') }} {{ name | center(7) }} {{ 'x' * 3 }}", "1,2,3   Ann   xxx"),
        ("{{ name | replace('n', 'nn') }} {{ '-'.join(['a', 'b']) }} {{ n | int * 2 }}", "Annnn a-b 6"),
        ("{% if n | int > 2 %}many{% else %}few{% endif %}", "many"),
        ("{{ (range(3) | list) + [9] }} {{ 'a' + 'b' }} {{ 1000000 | filesizeformat }}",
         "[0, 1, 2, 9] ab 1.0 MB"),
        ("{{ '{:,}'.format(1234567) }}", "1,234,567"),
    ],
)
def test_ordinary_templates_render_as_before(tmp_path: Path, body: str, expected: str) -> None:
    assert render(tmp_path, body) == expected


def test_deeply_nested_expressions_are_a_syntax_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        render(tmp_path, "{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_recursive_macros_are_a_render_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="RecursionError"):
        render(tmp_path, "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")
