"""Fuzzing the parsers of event-triggered sends and Web Push: rules files (YAML with templates and
expressions inside), event lines (JSON), subscriptions and VAPID key files (see fuzz_support.py)."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

import yaml
from fuzz_support import FAST, any_bytes, any_text, fresh, pieces
from hypothesis import given
from hypothesis import strategies as st

from pushctl.audience.subscription import parse_subscription_json
from pushctl.credentials import load_vapid_key
from pushctl.errors import CredentialError, InputError
from pushctl.triggers import FieldMap, RuleSet, parse_line

REPO = Path(__file__).resolve().parent.parent
_names = itertools.count()

RULE_PIECES = (
    "name: shop\n",
    "rules:\n",
    "  r:\n",
    "    on: cart_updated\n",
    "    delay: ",
    "30m",
    "9" * 5000,
    "\n",
    "    cancel_on: [order_placed]\n",
    "    cancel_key: ",
    "data.cart_id",
    "{{ event.data.x * 10**9 }}",
    "    throttle: ",
    "1/6h",
    "0/0s",
    "    template:\n",
    "      title: ",
    "      body: ",
    "{{ name }}",
    "{{ 'a' * 10**9 }}",
    "&a ",
    "*a",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "\x01",
    "    send_at: ",
    "data.starts_at - 1h",
    "    digest: ",
    "{window: 10m, max_events: 5}",
    "    where: ",
    "country == 'JP'",
    "((((",
    "    category: ",
    "marketing",
    "    dedupe_key: ",
    "  ",
    "- ",
    "?",
    ": ",
    "fields:\n",
    "  ts: ",
    "time\n",
    "default_zone: ",
    "Mars/X",
)
rule_doc = st.fixed_dictionaries(
    {
        "rules": st.dictionaries(
            st.sampled_from(["a", "b", "x" * 100]),
            st.fixed_dictionaries(
                {"on": st.sampled_from(["e", "", 5, None])},
                optional={
                    "delay": st.sampled_from(["30m", "0s", "-1h", "9" * 30, 3]),
                    "template": st.one_of(
                        st.sampled_from(["missing.yaml", str(REPO / "samples/templates/welcome.yaml")]),
                        st.fixed_dictionaries({"title": st.sampled_from(["{{ name }}", "{{ 1/0 }}", "x"])}),
                    ),
                    "throttle": st.sampled_from(["1/6h", "x", "0/1h"]),
                    "cancel_on": st.lists(st.sampled_from(["o", ""]), max_size=2),
                    "where": st.sampled_from(["country == 'JP'", "((", "x" * 300]),
                    "send_at": st.sampled_from(["data.t - 1h", "nope", "data.t + 99999999d"]),
                },
            ),
            max_size=2,
        )
    },
    optional={
        "name": st.sampled_from(["shop", "bad name!", ""]),
        "default_zone": st.sampled_from(["UTC", "Mars/X"]),
    },
).map(yaml.safe_dump)


@FAST
@given(text=st.one_of(any_text, pieces(*RULE_PIECES), rule_doc))
def test_rules_files(tmp_path: Path, text: str) -> None:
    with contextlib.suppress(InputError):
        RuleSet.load(fresh(tmp_path, ".yaml", text))


@FAST
@given(data=any_bytes)
def test_rules_files_as_bytes(tmp_path: Path, data: bytes) -> None:
    with contextlib.suppress(InputError):
        RuleSet.load(fresh(tmp_path, ".yaml", data))


json_event = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=10), st.integers()),
        "type": st.one_of(st.text(max_size=10), st.none()),
        "ts": st.one_of(
            st.sampled_from(["2026-11-20T09:00:00Z", "1e999", "nan", "-1", "2026-02-30"]),
            st.floats(),
            st.integers(),
        ),
        "user_id": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2)),
        "data": st.one_of(
            st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
            st.text(max_size=5),
            st.just({"d": [[[[[1]]]]]}),
        ),
        "token": st.text(max_size=10),
        "platform": st.text(max_size=5),
    },
).map(json.dumps)


@FAST
@given(line=st.one_of(any_text, json_event, st.just("[" * 100_000 + "]" * 100_000), any_bytes))
def test_event_lines(line: str | bytes) -> None:
    event = parse_line(line, FieldMap(), now=1_800_000_000.0)
    assert isinstance(event, str) or event.type is not None


@FAST
@given(
    text=st.one_of(
        any_text,
        pieces(
            '{"endpoint": ',
            '"https://push.example/x"',
            ', "keys": ',
            '{"p256dh": ',
            '"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcx"',
            ', "auth": ',
            '"AAAA"',
            "}",
            "[" * 200,
            "]" * 200,
            "null",
            "1e999",
        ),
    )
)
def test_subscription_json(text: str) -> None:
    parsed = parse_subscription_json(text)
    assert isinstance(parsed, str) or parsed.endpoint


@FAST
@given(
    data=st.one_of(
        any_bytes,
        pieces(
            "-----BEGIN PRIVATE KEY-----\n",
            "-----END PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "MHcCAQEEI",
            "=\n",
            "\n",
        ).map(str.encode),
    )
)
def test_vapid_key_files(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / f"vapid-{next(_names)}.pem"
    path.write_bytes(data)
    with contextlib.suppress(InputError, CredentialError):
        load_vapid_key(path)
