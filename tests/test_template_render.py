"""Rendering templates for devices: variables, defaults, locales, variants, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pushctl.errors import TemplateError
from pushctl.message import Media, Template
from pushctl.model import Device, Platform

IOS_TOKEN = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"


def make(tmp_path: Path, text: str, name: str = "t.yaml") -> Template:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return Template.load(path)


def device(line: int = 3, token: str = IOS_TOKEN, **attrs: str) -> Device:
    return Device(token=token, platform=Platform.IOS, attrs=attrs, source="samples/audience.csv", line=line)


def test_variables_token_and_platform(tmp_path: Path) -> None:
    tpl = make(tmp_path, "title: 'Hi {{ name }}'\nbody: '{{ platform }}/{{ token[:4] }}'\n")
    n = tpl.render(device(name="Alice"))
    assert (n.title, n.body) == ("Hi Alice", "ios/a4c1")


def test_missing_variable_names_template_field_and_row(tmp_path: Path) -> None:
    tpl = make(tmp_path, "title: Hello\nbody: 'Hi {{ name }}'\n")
    with pytest.raises(TemplateError) as info:
        tpl.render(device(line=3))
    err = info.value
    text = str(err)
    assert "variable 'name' is not defined" in text
    assert err.file == str(tmp_path / "t.yaml") and err.field == "body" and err.line == 2
    assert "samples/audience.csv:3" in text
    assert "add a 'name' column, or defaults: {name: ...}" in text


def test_missing_variable_in_data_is_located(tmp_path: Path) -> None:
    tpl = make(tmp_path, "body: x\ndata:\n  link: 'app://{{ user_id }}'\n")
    with pytest.raises(TemplateError) as info:
        tpl.render(device())
    assert info.value.field == "data.link" and info.value.line == 3


def test_defaults_fill_missing_and_empty_values(tmp_path: Path) -> None:
    tpl = make(tmp_path, "title: 'Welcome, {{ name }}!'\ndefaults:\n  name: there\n")
    assert tpl.render(device()).title == "Welcome, there!"
    assert tpl.render(device(name="")).title == "Welcome, there!"
    assert tpl.render(device(name="Bob")).title == "Welcome, Bob!"


def test_constant_fields_are_not_rendered(tmp_path: Path) -> None:
    # "{name}" is not Jinja syntax: it must come out exactly as written.
    tpl = make(tmp_path, "title: 'Literal {name} text'\nbody: |\n  two\n  lines\n")
    n = tpl.render(device())
    assert n.title == "Literal {name} text"
    assert n.body == "two\nlines\n"


def test_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    tpl = make(tmp_path, "body: \"{{ ''.__class__.__mro__ }}\"\n")
    with pytest.raises(TemplateError) as info:
        tpl.render(device())
    assert info.value.field == "body"


WELCOMEISH = """\
title: 'Hello {{ name }}'
body: default body
locales:
  zh:
    title: '你好 {{ name }}'
  zh-CN:
    title: '您好 {{ name }}'
    body: 简体
  fr:
    title: 'Bonjour {{ name }}'
"""


@pytest.mark.parametrize(
    ("locale", "matched", "title", "body"),
    [
        ("zh-CN", "zh-CN", "您好 Li", "简体"),
        ("zh_cn", "zh-CN", "您好 Li", "简体"),
        ("zh-TW", "zh", "你好 Li", "default body"),
        ("fr-CA", "fr", "Bonjour Li", "default body"),
        ("de", None, "Hello Li", "default body"),
        (None, None, "Hello Li", "default body"),
    ],
)
def test_locale_fallback(
    tmp_path: Path, locale: str | None, matched: str | None, title: str, body: str
) -> None:
    tpl = make(tmp_path, WELCOMEISH)
    attrs = {"name": "Li"} | ({"locale": locale} if locale else {})
    n = tpl.render(device(**attrs))
    assert (n.locale, n.title, n.body) == (matched, title, body)


def test_locale_override_deep_merges_data(tmp_path: Path) -> None:
    tpl = make(tmp_path, "body: x\ndata: {a: '1', b: '2'}\nlocales:\n  fr:\n    data: {b: deux}\n")
    assert tpl.render(device(locale="fr")).data == {"a": "1", "b": "deux"}


AB = """\
body: b
variants:
  A:
    weight: 50
    title: Title A
  B:
    weight: 50
    title: Title B
    locales:
      fr: {title: Titre B}
"""


def test_variants_deterministic_and_balanced(tmp_path: Path) -> None:
    tpl = make(tmp_path, AB)
    assert tpl.variants == {"A": 50, "B": 50}
    tokens = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(10_000)]
    picks = [tpl.choose_variant(t, "spring") for t in tokens]
    assert picks == [tpl.choose_variant(t, "spring") for t in tokens]
    share = picks.count("A") / len(picks)
    assert abs(share - 0.5) < 0.02
    # Another campaign reshuffles devices.
    other = [tpl.choose_variant(t, "summer") for t in tokens]
    assert 0.4 < sum(a != b for a, b in zip(picks, other, strict=True)) / len(picks) < 0.6


def test_variant_weights_are_respected(tmp_path: Path) -> None:
    tpl = make(tmp_path, "body: b\nvariants:\n  A: {weight: 90}\n  B: {weight: 10}\n  C: {weight: 0}\n")
    picks = [tpl.choose_variant(f"tok{i}", "c") for i in range(5000)]
    assert picks.count("C") == 0
    assert abs(picks.count("A") / 5000 - 0.9) < 0.02


def test_variant_render_sets_fields_and_data(tmp_path: Path) -> None:
    tpl = make(tmp_path, AB)
    n = tpl.render(device(), variant="B")
    assert (n.title, n.variant, n.data["pushctl_variant"]) == ("Title B", "B", "B")
    assert tpl.render(device(locale="fr"), variant="B").title == "Titre B"
    assert tpl.render(device(locale="fr"), variant="A").title == "Title A"
    chosen = tpl.render(device()).variant
    assert chosen == tpl.choose_variant(IOS_TOKEN, "")
    with pytest.raises(TemplateError, match="no variant 'C'"):
        tpl.render(device(), variant="C")


def test_no_variants(tmp_path: Path) -> None:
    tpl = make(tmp_path, "body: b\n")
    assert tpl.choose_variant("x", "c") is None
    n = tpl.render(device())
    assert n.variant is None and "pushctl_variant" not in n.data


def test_badge_template_and_sound_and_media(tmp_path: Path) -> None:
    tpl = make(
        tmp_path,
        "body: b\nbadge: '{{ unread }}'\nsound: {name: alarm.caf, critical: true, volume: 0.5}\n"
        "media: {url: 'https://cdn/{{ img }}.mp4', type: video}\n",
    )
    n = tpl.render(device(unread="7", img="clip"))
    assert n.badge == 7
    assert n.sound == {"critical": 1, "name": "alarm.caf", "volume": 0.5}
    assert n.media == Media("https://cdn/clip.mp4", "video")
    with pytest.raises(TemplateError, match="badge must render to a whole number") as info:
        tpl.render(device(unread="lots", img="x"))
    assert "samples/audience.csv:3" in str(info.value)


def test_rendered_empty_text_is_omitted(tmp_path: Path) -> None:
    tpl = make(tmp_path, "title: '{{ t }}'\nbody: b\ndefaults: {t: ''}\n")
    assert tpl.render(device()).title is None


def test_apns_fcm_blocks_are_rendered(tmp_path: Path) -> None:
    tpl = make(
        tmp_path,
        "body: b\napns:\n  payload: {uid: '{{ user_id }}'}\nfcm:\n  android: {notification: {tag: t}}\n",
    )
    n = tpl.render(device(user_id="u1"))
    assert n.apns == {"payload": {"uid": "u1"}}
    assert n.fcm == {"android": {"notification": {"tag": "t"}}}
