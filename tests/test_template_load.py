"""Loading templates: schema errors carry file, line and field; samples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushctl.errors import TemplateError
from pushctl.message import Template


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        Template.load(write(tmp_path, text))
    return info.value


@pytest.mark.parametrize(
    "name", ["welcome", "promo-image", "localized", "silent", "ab-test", "critical-alert"]
)
def test_samples_load(samples: Path, name: str) -> None:
    tpl = Template.load(samples / "templates" / f"{name}.yaml")
    assert len(tpl.fingerprint) == 64


def test_unknown_top_level_key_names_key_and_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\nbody: there\ntitel: typo\n")
    assert err.line == 3
    assert err.field == "titel"
    assert "unknown key 'titel'" in str(err)
    assert str(err).startswith(f"{tmp_path / 't.yaml'}:3: field 'titel'")


def test_unknown_key_inside_locale_is_located(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\nlocales:\n  fr:\n    title: Salut\n    bdy: x\n")
    assert (err.line, err.field) == (5, "locales.fr.bdy")


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\nbody: [unclosed\ndata:\n  a: b\n")
    assert err.file == str(tmp_path / "t.yaml")
    assert err.line is not None and err.line >= 2
    assert "invalid YAML" in err.message


def test_bad_indentation_yaml(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\n  body: x\n")
    assert err.line == 2


def test_python_tags_are_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: !!python/object/apply:os.system ['true']\n")
    assert err.line == 1
    assert "invalid YAML" in err.message


def test_quiet_hours_needs_time_sensitive_or_critical(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\ninterruption_level: active\nquiet_hours: ignore\n")
    assert (err.line, err.field) == (3, "quiet_hours")
    assert "time-sensitive" in err.message
    ok = Template.load(
        write(tmp_path, "title: Hi\ninterruption_level: critical\nquiet_hours: ignore\n", "ok.yaml")
    )
    assert ok.ignores_quiet_hours and ok.interruption_level == "critical"


def test_quiet_hours_only_accepts_ignore(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: Hi\ninterruption_level: critical\nquiet_hours: respect\n")
    assert err.field == "quiet_hours"


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("title: 5\n", "title", "must be a string"),
        ("body: x\nbadge: -1\n", "badge", "whole number"),
        ("body: x\npriority: urgent\n", "priority", "high, normal"),
        ("body: x\nttl: 3 weeks\n", "ttl", "ttl must be"),
        ("body: x\nttl: 40d\n", "ttl", "30-day"),
        ("body: x\npush_type: shout\n", "push_type", "alert"),
        ("body: x\nrelevance_score: 2\n", "relevance_score", "0 to 1"),
        ("body: x\nmedia: {url: 'https://x/y.gif', type: gif}\n", "media.type", "image, audio, video"),
        ("body: x\ndata:\n  count: 3\n", "data.count", "must be strings"),
        ("body: x\ndata:\n  google.foo: bar\n", "data.google.foo", "reserved"),
        ("body: x\ndata:\n  from: me\n", "data.from", "reserved"),
        ("body: x\nsound: {name: a, volume: 3}\n", "sound.volume", "0 to 1"),
        ("body: x\ncollapse_id: '" + "c" * 65 + "'\n", "collapse_id", "64"),
        ("push_type: background\ntitle: x\n", "title", "background"),
        ("body: x\nfcm:\n  topic: news\n", "fcm.topic", "per device"),
        ("body: x\napns:\n  header: {}\n", "apns.header", "unknown key"),
        ("body: x\nvariants:\n  A: {weight: 0}\n", "variants", "add up to 0"),
        ("body: '{{ name'\n", "body", "template syntax"),
    ],
)
def test_field_errors(tmp_path: Path, text: str, field: str, needle: str) -> None:
    err = load_error(tmp_path, text)
    assert err.field == field
    assert needle in str(err)
    assert err.line is not None


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    err = load_error(tmp_path, "title: a\nbody: b\ntitle: c\n")
    assert err.line == 3 and "duplicate key 'title'" in err.message


def test_empty_and_non_mapping(tmp_path: Path) -> None:
    assert "empty" in load_error(tmp_path, "# nothing\n").message
    assert "mapping" in load_error(tmp_path, "- a\n- b\n").message


def test_missing_file() -> None:
    with pytest.raises(TemplateError, match="not found"):
        Template.load("/nonexistent/t.yaml")


def test_push_type_defaults(tmp_path: Path) -> None:
    silent = Template.load(write(tmp_path, "content_available: true\ndata: {a: b}\n", "s.yaml"))
    assert silent.push_type == "background"
    alert = Template.load(write(tmp_path, "content_available: true\nbody: hi\n", "a.yaml"))
    assert alert.push_type == "alert"
    voip = Template.load(write(tmp_path, "push_type: voip\ndata: {call: '1'}\n", "v.yaml"))
    assert voip.push_type == "voip"


def test_ttl_units_and_fingerprint(tmp_path: Path) -> None:
    path = write(tmp_path, "body: x\nttl: 2h\n")
    tpl = Template.load(path)
    assert tpl.ttl == 7200
    import hashlib

    assert tpl.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert Template.load(write(tmp_path, "body: x\nttl: 30m\n", "b.yaml")).ttl == 1800
    assert Template.load(write(tmp_path, "body: x\nttl: 0\n", "c.yaml")).ttl == 0
