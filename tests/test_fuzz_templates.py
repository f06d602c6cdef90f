"""Fuzzing template loading and rendering, payloads included (see fuzz_support.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml
from fuzz_support import FAST, any_bytes, any_text, fresh, pieces
from hypothesis import given
from hypothesis import strategies as st

from pushctl.errors import InputError
from pushctl.message import Template, build_apns, build_fcm
from pushctl.model import Device, Platform

# -- templates -----------------------------------------------------------------------------------

JINJA = [
    "{{ name }}",
    "{{ 'a' * 10**9 }}",
    "{{ name | center(99999999) }}",
    "{% for i in range(99999) %}x",
    "{% endfor %}",
    "{{ 2 ** 99999 }}",
    "{{ '%0999999d' % 1 }}",
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "{{ missing }}",
    "{{ name ~ name }}",
    "{{ token[:4] }}",
    "{{ range(10) | join(',') }}",
    "{{ 1 / 0 }}",
    "{{ name.__class__ }}",
    "{{ lipsum(9) }}",
    "{{ '{:>9999999}'.format(1) }}",
    "{{ (name | int) + 1 }}",
    "{#",
    "#}",
]
YAML_PIECES = [
    "title: ",
    "body: ",
    "data:",
    " k: ",
    "badge: ",
    "ttl: ",
    "sound: ",
    "locales:",
    " fr:",
    "  title: ",
    "variants:",
    " A: ",
    "{weight: 1}",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: *a",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "- ",
    "\n",
    "  ",
    "'",
    '"',
    "\x01",
    "\x7f",
    "!!python/object:os.system",
    "!!binary ",
    "?",
    ": ",
    "9" * 5000,
    "2023-02-30",
    "1e999",
    "-1",
    "null",
    "true",
    "\\ud83d",
    '"\\ud83d"',
    "\t",
    "#",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    *JINJA,
]
template_text = st.one_of(any_text, pieces(*YAML_PIECES, max_size=60))

scalar = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from(JINJA),
)
template_doc = st.fixed_dictionaries(
    {},
    optional={
        "title": st.one_of(scalar, st.sampled_from(JINJA)),
        "body": st.one_of(scalar, st.sampled_from(JINJA)),
        "badge": scalar,
        "ttl": scalar,
        "sound": st.one_of(scalar, st.dictionaries(st.text(max_size=8), scalar)),
        "data": st.dictionaries(st.text(max_size=8), scalar, max_size=3),
        "collapse_id": scalar,
        "priority": scalar,
        "push_type": scalar,
        "interruption_level": scalar,
        "relevance_score": scalar,
        "content_available": scalar,
        "quiet_hours": scalar,
        "locales": st.dictionaries(
            st.sampled_from(["fr", "de", "zh-CN"]),
            st.dictionaries(st.sampled_from(["title", "body", "x"]), scalar),
            max_size=2,
        ),
        "variants": st.dictionaries(
            st.sampled_from(["A", "B"]),
            st.dictionaries(st.sampled_from(["weight", "title", "body"]), scalar),
            max_size=2,
        ),
        "defaults": st.dictionaries(st.sampled_from(["name", "city"]), scalar, max_size=2),
        "apns": st.dictionaries(
            st.sampled_from(["headers", "payload", "x"]), st.dictionaries(st.text(max_size=5), scalar)
        ),
        "fcm": st.dictionaries(
            st.sampled_from(["data", "android", "token"]), st.dictionaries(st.text(max_size=5), scalar)
        ),
    },
).map(lambda doc: yaml.safe_dump(doc, allow_unicode=True))

DEVICES = [
    Device("ab" * 32, Platform.IOS, {"name": "Ann", "locale": "fr"}, "a.csv", 2),
    Device("fcm:" + "x" * 40, Platform.ANDROID, {"name": "x" * 8000, "city": "{{ name }}"}, "a.csv", 3),
    Device("web:" + "y" * 40, Platform.WEB, {}, "a.csv", 4),
]


def _render_everywhere(template: Template) -> None:
    for device in DEVICES:
        for variant in [None, *template.variants]:
            with contextlib.suppress(InputError):  # a TemplateError for one device, or a PayloadError
                note = template.render(device, variant=variant)
                if device.platform is Platform.IOS:
                    build_apns(note, device.token, topic="com.example.app", where=device.where)
                else:
                    build_fcm(note, device.token, platform=device.platform, where=device.where)


@FAST
@given(text=st.one_of(template_text, template_doc))
def test_template_text(tmp_path: Path, text: str) -> None:
    path = fresh(tmp_path, ".yaml", text)
    try:
        template = Template.load(path)
    except InputError:
        return
    _render_everywhere(template)


@FAST
@given(data=any_bytes)
def test_template_bytes(tmp_path: Path, data: bytes) -> None:
    with contextlib.suppress(InputError):
        Template.load(fresh(tmp_path, ".yaml", data))
