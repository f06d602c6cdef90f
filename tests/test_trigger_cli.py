"""`trigger check` / `trigger test` / `trigger status` / `devices`, and the README's trigger command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from trigger_support import at, directory_csv, event, events_file, invoke, ios, run_rules

REPO = Path(__file__).resolve().parent.parent

GOOD = """
rules:
  shipped:
    on: order_shipped
    delay: 5m
    template: {title: Shipped, body: "{{ event.data.order_id }}"}
"""


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (GOOD.replace("delay: 5m", "delay: soon"), 5, "rules.shipped.delay", "not a duration"),
        (GOOD.replace("delay: 5m", "throttle: 3"), 5, "rules.shipped.throttle", "not a cap"),
        (
            GOOD.replace("    delay: 5m\n", "    cancel_on: [x]\n"),
            5,
            "rules.shipped.cancel_on",
            "needs a delay",
        ),
        (GOOD.replace("delay: 5m", "wher: x"), 5, "rules.shipped.wher", "unknown key"),
        (
            GOOD.replace("delay: 5m", "where: 'event.data.total >='"),
            5,
            "rules.shipped.where",
            "expected a value",
        ),
        (
            GOOD.replace("{title: Shipped,", "{title: Shipped, push_type: nope,"),
            6,
            "rules.shipped.template.push_type",
            "must be one of",
        ),
        (
            GOOD.replace('"{{ event.data.order_id }}"', '"{{ event.data.order_id "'),
            6,
            "rules.shipped.template.body",
            "template syntax",
        ),
        (GOOD.replace("    on: order_shipped\n", ""), 3, "rules.shipped", "needs 'on'"),
        (
            GOOD.replace("delay: 5m", "delay: 5m\n    send_at: data.at"),
            6,
            "rules.shipped.send_at",
            "cannot be combined",
        ),
        (GOOD.replace("delay: 5m", "digest: {key: data.x}"), 5, "rules.shipped.digest", "needs a window"),
    ],
)
def test_check_on_a_broken_rules_file_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    code, _lines, err = invoke("trigger", "check", str(rules))
    assert code == 2, err
    assert f"{rules}:{line}: field '{field}':" in err and words in err, err
    assert "Traceback" not in err


def test_check_on_a_broken_template_file_names_the_template(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("title: Hi\nbadge: -1\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  r:\n    on: x\n    template: t.yaml\n")
    code, _l, err = invoke("trigger", "check", str(rules))
    assert code == 2 and f"{tmp_path / 't.yaml'}:2: field 'badge'" in err, err
    rules.write_text("rules:\n  r:\n    on: x\n    template: missing.yaml\n")
    code, _l, err = invoke("trigger", "check", str(rules))
    assert code == 2 and f"{rules}:4: field 'rules.r.template': template file not found" in err, err


def test_check_lists_the_sample_rules(samples: Path) -> None:
    for name in ("shop", "social", "chat", "school"):
        code, lines, err = invoke("trigger", "check", str(samples / "rules" / f"{name}.yaml"))
        assert code == 0, err
        assert lines and all(line["ruleset"] == name for line in lines)


def test_trigger_test_shows_decisions_and_requests_without_sending(tmp_path: Path, samples: Path) -> None:
    code, lines, err = invoke(
        "trigger",
        "test",
        str(samples / "rules" / "shop.yaml"),
        "--events",
        str(samples / "events" / "shop.jsonl"),
        "--devices",
        str(samples / "audience.csv"),
    )
    assert code == 0, err
    decisions = {(d["rule"], d["what"], d["reason"]) for d in lines if d["type"] == "decision"}
    assert ("cart_abandoned", "cancelled", "") in decisions
    assert ("order_shipped", "skipped", "unknown_user") in decisions
    requests = [r for r in lines if r["type"] == "request"]
    assert sorted((r["rule"], r["user_id"]) for r in requests) == [
        ("cart_abandoned", "u1002"),
        ("order_shipped", "u1003"),
        ("order_shipped", "u1004"),
    ]
    ios_request = next(r for r in requests if r["user_id"] == "u1003")
    assert ios_request["headers"]["apns-collapse-id"] == ios_request["collapse_id"]
    assert ios_request["payload"]["aps"]["alert"]["title"] == "Your order is on its way"
    code, lines, err = invoke(
        "trigger",
        "test",
        str(samples / "rules" / "shop.yaml"),
        "--devices",
        str(samples / "audience.csv"),
        "--event",
        '{"id": 1, "type": "order_shipped"}',
    )
    assert code == 0 and lines[0]["type"] == "dead_letter" and "whom" in lines[0]["reason"]


def test_status_and_devices_show(tmp_path: Path, emulator: Any) -> None:
    cfg = emulator.write_profile(tmp_path / "config.toml")
    rules = tmp_path / "rules.yaml"
    rules.write_text(GOOD.replace("rules:", "name: orders\nrules:"))
    devices = directory_csv(
        tmp_path / "d.csv", [{"token": ios(1), "platform": "ios", "user_id": "u1", "name": "Ana"}]
    )
    journal = tmp_path / "j.sqlite3"
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event("a", "order_shipped", at(0), "u1", order_id="o1"),
            event("b", "order_shipped", at(1), "u1", order_id="o2"),
            event("c", "tick", at(5), "u1"),
        ],
    )
    code, _l, err = run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert code == 0, err
    code, lines, err = invoke("trigger", "status", "--journal", str(journal))
    assert code == 0, err
    rule = next(line for line in lines if line["type"] == "rule" and line["rule"] == "shipped")
    assert rule["pending"] == 1 and rule["counts"]["fired"] == 1 and rule["counts"]["sent:delivered"] == 1
    consumer = next(line for line in lines if line["type"] == "consumer")
    assert consumer["ruleset"] == "orders" and consumer["status"] == "stopped" and consumer["events"] == 3
    code, _table, err = invoke("trigger", "status", "--journal", str(journal), output="table")
    assert code == 0, err
    code, shown, err = invoke("devices", "show", "u1", "--journal", str(journal))
    assert code == 0 and shown[0]["token"] == ios(1) and shown[0]["attrs"]["name"] == "Ana"
    code, _s, err = invoke("devices", "show", "nobody", "--journal", str(journal))
    assert code == 2 and "no devices for user 'nobody'" in err


def test_devices_import_replaces_a_users_devices(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    first = directory_csv(
        tmp_path / "a.csv",
        [
            {"token": ios(1), "platform": "ios", "user_id": "u1"},
            {"token": ios(2), "platform": "ios", "user_id": "u1"},
            {"token": ios(3), "platform": "ios", "user_id": "u2"},
            {"token": ios(4), "platform": "ios", "user_id": ""},
        ],
    )
    code, lines, err = invoke("devices", "import", str(first), "--journal", str(journal))
    assert code == 0, err
    assert (lines[0]["devices"], lines[0]["users"], lines[0]["missing_user_id"]) == (3, 2, 1)
    second = directory_csv(tmp_path / "b.csv", [{"token": ios(5), "platform": "ios", "user_id": "u1"}])
    invoke("devices", "import", str(second), "--journal", str(journal))
    _c, u1, _e = invoke("devices", "show", "u1", "--journal", str(journal))
    _c, u2, _e = invoke("devices", "show", "u2", "--journal", str(journal))
    assert [d["token"] for d in u1] == [ios(5)] and [d["token"] for d in u2] == [ios(3)]


def test_the_readme_command_shows_exactly_what_the_sample_rules_call_for(tmp_path: Path) -> None:
    """The README's first trigger command, as a new user runs it (from the repository, no set-up)."""
    env = {
        **os.environ,
        "COLUMNS": "200",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    argv = [
        sys.executable,
        "-m",
        "pushctl",
        "--output",
        "table",
        "trigger",
        "run",
        "samples/rules/shop.yaml",
        "--events",
        "samples/events/shop.jsonl",
        "--devices",
        "samples/audience.csv",
        "--emulator",
        "--until-idle",
        "2",
    ]
    done = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    inbox = out[out.index("emulator inbox") :]
    assert "3 notification(s) received" in inbox
    rows = [line for line in inbox.splitlines() if line.startswith("│ u")]
    assert sorted(row.split("│")[1].strip() for row in rows) == ["u1002", "u1003", "u1004"]
    assert "Still thinking it over, Benoît?" in inbox and "Order o-4990 left with DHL" in inbox
    assert "u1001" not in inbox  # Alice bought her cart in time
    for words in (
        "cancelled",
        "skipped: unknown_user",
        "skipped: malformed",
        "skipped: template_error",
        "skipped: duplicate",
    ):
        assert words in out, out
