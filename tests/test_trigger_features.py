"""Each rule feature, end to end: `pushctl trigger run` over JSONL events on the emulator, with the
event clock so delays are exact and need no waiting. The emulator's inbox is the judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trigger_support import (
    at,
    bodies,
    directory_csv,
    event,
    events_file,
    fcm,
    invoke,
    ios,
    run_rules,
    summary,
)

from pushctl.journal import Journal


def _setup(
    tmp_path: Path, emulator: Any, rules: str, users: int = 3, **attrs: str
) -> tuple[Path, Path, Path, Path]:
    cfg = emulator.write_profile(tmp_path / "config.toml")
    rows = [
        {
            "token": ios(i) if i % 2 else fcm(i),
            "platform": "ios" if i % 2 else "android",
            "user_id": f"u{i}",
            "name": f"User{i}",
            **attrs,
        }
        for i in range(1, users + 1)
    ]
    devices = directory_csv(tmp_path / "devices.csv", rows)
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(rules)
    return cfg, devices, rules_path, tmp_path / "journal.sqlite3"


CART = """
name: shop
rules:
  cart:
    on: cart_updated
    delay: 30m
    cancel_on: [order_placed]
    cancel_key: data.cart_id
    template:
      title: "Cart"
      body: "{{ name }}: your {{ event.data.item }} is waiting"
"""


def test_delay_cancel_on_and_pending_survive_a_restart(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(tmp_path, emulator, CART)
    first = events_file(
        tmp_path / "a.jsonl",
        [
            event("e1", "cart_updated", at(0), "u1", cart_id="c1", item="shoes"),
            event("e2", "cart_updated", at(1), "u2", cart_id="c2", item="hat"),
            event("e3", "cart_updated", at(2), "u3", cart_id="c3", item="scarf"),
            event("e4", "order_placed", at(10), "u1", cart_id="c1"),  # in time, same cart: cancels
            event("e5", "order_placed", at(12), "u3", cart_id="other"),  # another cart: cancels nothing
        ],
    )
    code, lines, err = run_rules(cfg, rules, first, journal, "--devices", str(devices))
    assert code == 0, err
    s = summary(lines)
    assert (s["scheduled"], s["cancelled"], s["pending"]) == (3, 1, 2)
    assert emulator.inbox.total() == 0  # event time is 09:12: nothing is due yet

    # A later run (a restart) finds the pending sends in the journal; an event at 09:31 makes
    # u2's due (09:31 >= 09:31) but not u3's (09:32).
    second = events_file(
        tmp_path / "b.jsonl",
        [
            event("e6", "order_placed", at(31), "u2", cart_id="late"),
            event("e7", "page_view", at(31.5), "u9"),
        ],
    )
    code, lines, err = run_rules(cfg, rules, second, journal)
    assert code == 0, err
    assert bodies(emulator, fcm(2)) == ["User2: your hat is waiting"]
    assert emulator.inbox.count(ios(3)) == 0 and summary(lines)["pending"] == 1
    third = events_file(tmp_path / "c.jsonl", [event("e8", "page_view", at(40), "u9")])
    run_rules(cfg, rules, third, journal)
    assert bodies(emulator, ios(3)) == ["User3: your scarf is waiting"]
    assert emulator.inbox.count(ios(1)) == 0  # its purchase came in time


def test_send_at_takes_the_time_from_the_event_with_an_offset(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  class_reminder:
    on: class_booked
    send_at: data.starts_at - 1h
    template:
      title: "{{ event.data.course }} starts at {{ event.data.starts_at[11:16] }}"
      body: "See you in room {{ event.data.room }}"
""",
    )
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event(
                "b1",
                "class_booked",
                at(0),
                "u1",
                course="Algebra",
                starts_at="2026-11-20T14:00:00Z",
                room="B2",
            ),
            event("t1", "tick", at(60 * 3 + 59), "u9"),  # 12:59: not yet
        ],
    )
    run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert emulator.inbox.total() == 0
    run_rules(cfg, rules, events_file(tmp_path / "f.jsonl", [event("t2", "tick", at(240), "u9")]), journal)
    assert bodies(emulator, ios(1)) == ["See you in room B2"]
    alert = emulator.inbox.received(ios(1))[0].payload["aps"]["alert"]
    assert alert["title"] == "Algebra starts at 14:00"


def test_throttle_and_dedupe_key(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  shipped:
    on: order_shipped
    dedupe_key: data.order_id
    throttle: 1/6h
    template: {title: Shipped, body: "order {{ event.data.order_id }}"}
""",
    )
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event("s1", "order_shipped", at(0), "u1", order_id="o1"),
            event("s2", "order_shipped", at(5), "u2", order_id="o1"),  # same order id: a duplicate
            event("s3", "order_shipped", at(60), "u1", order_id="o2"),  # u1 again within 6h: throttled
            event("s4", "order_shipped", at(7 * 60), "u1", order_id="o3"),  # 7h later: sent
        ],
    )
    code, lines, err = run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert code == 0, err
    assert bodies(emulator, ios(1)) == ["order o1", "order o3"]
    assert emulator.inbox.count(fcm(2)) == 0
    skips = {(line["event"], line["reason"]) for line in lines if line["type"] == "skip"}
    assert skips == {("s2", "duplicate"), ("s3", "throttled")}


def test_digest_turns_a_burst_into_one_notification(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  comments:
    on: comment_added
    digest: {window: 10m, key: data.post_id}
    template:
      title: "New comments"
      body: >-
        {% if event_count == 1 %}{{ event.data.author }} commented{% else %}{{ events[0].data.author }} and
        {{ event_count - 1 }} others commented{% endif %} on {{ event.data.post }}
""",
    )
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event("c1", "comment_added", at(0), "u1", post_id="p1", post="your photo", author="Ana"),
            event("c2", "comment_added", at(1), "u1", post_id="p1", post="your photo", author="Bo"),
            event("c3", "comment_added", at(2), "u1", post_id="p1", post="your photo", author="Cy"),
            event("c4", "comment_added", at(3), "u2", post_id="p9", post="your poem", author="Di"),
            event(
                "c5", "comment_added", at(20), "u1", post_id="p1", post="your photo", author="Ed"
            ),  # a new window
            event("t", "tick", at(40), "u9"),
        ],
    )
    code, _lines, err = run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert code == 0, err
    assert bodies(emulator, ios(1)) == [
        "Ana and 2 others commented on your photo",
        "Ed commented on your photo",
    ]
    assert bodies(emulator, fcm(2)) == ["Di commented on your poem"]


def test_where_reads_event_fields_and_device_attributes(tmp_path: Path, emulator: Any) -> None:
    cfg, _devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  big_order:
    on: order_placed
    where: 'event.data.total >= 50 and locale == "fr"'
    template: {title: Merci, body: "{{ event.data.total }}"}
""",
    )
    devices = directory_csv(
        tmp_path / "d.csv",
        [
            {"token": ios(1), "platform": "ios", "user_id": "u1", "locale": "fr"},
            {"token": ios(2), "platform": "ios", "user_id": "u1", "locale": "en"},  # same user, other device
            {"token": ios(3), "platform": "ios", "user_id": "u3", "locale": "fr"},
        ],
    )
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event("o1", "order_placed", at(0), "u1", total=80),
            event("o2", "order_placed", at(1), "u3", total=20),
        ],
    )
    run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert bodies(emulator, ios(1)) == ["80"]
    assert emulator.inbox.count(ios(2)) == 0 and emulator.inbox.count(ios(3)) == 0


def test_quiet_hours_defer_a_device_until_they_end(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  news:
    on: news
    quiet_hours: "22:00-08:00"
    template: {title: News, body: "{{ event.data.headline }}"}
""",
        users=1,
        timezone="Asia/Tokyo",
    )
    # 14:00 UTC is 23:00 in Tokyo: deferred to 08:00 Tokyo (23:00 UTC).
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event("n1", "news", "2026-11-20T14:00:00Z", "u1", headline="Snow"),
            event("t1", "tick", "2026-11-20T22:59:00Z", "u9"),
        ],
    )
    code, lines, err = run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert code == 0, err
    assert emulator.inbox.total() == 0 and summary(lines)["deferred"] == 1
    run_rules(
        cfg,
        rules,
        events_file(tmp_path / "f.jsonl", [event("t2", "tick", "2026-11-20T23:00:00Z", "u9")]),
        journal,
    )
    assert bodies(emulator, ios(1)) == ["Snow"]


def test_cap_is_shared_with_campaigns(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
defaults: {cap: 1/24h}
rules:
  promo:
    on: promo
    template: {title: Promo, body: "{{ event.data.text }}"}
""",
        users=2,
    )
    template = tmp_path / "campaign.yaml"
    template.write_text("title: Campaign\nbody: hello\n")
    audience = directory_csv(
        tmp_path / "campaign.csv", [{"token": ios(1), "platform": "ios", "user_id": "u1"}]
    )
    code, _l, err = invoke(
        "send", str(template), "--audience", str(audience), "--journal", str(journal), cfg=cfg
    )
    assert code == 0, err
    events = events_file(
        tmp_path / "e.jsonl",
        [event("p1", "promo", at(0), "u1", text="x"), event("p2", "promo", at(0), "u2", text="y")],
    )
    code, lines, err = run_rules(cfg, rules, events, journal, "--devices", str(devices))
    assert code == 0, err
    assert bodies(emulator, ios(1)) == ["hello"]  # the campaign's, and nothing more
    assert bodies(emulator, fcm(2)) == ["y"]
    assert summary(lines)["skipped"] == {"frequency_cap": 1}


def test_chat_offline_message_collapses_per_conversation(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  offline_message:
    on: message_sent
    where: 'event.data.recipient_online == false'
    template:
      title: "{{ event.data.sender }}"
      body: "{{ event.data.text }}"
      collapse_id: "chat-{{ event.data.conversation_id }}"
      thread_id: "chat-{{ event.data.conversation_id }}"
      interruption_level: time-sensitive
""",
        users=1,
    )
    events = events_file(
        tmp_path / "e.jsonl",
        [
            event(
                "m1",
                "message_sent",
                at(0),
                "u1",
                conversation_id="k7",
                sender="Ana",
                text="hi",
                recipient_online=False,
            ),
            event(
                "m2",
                "message_sent",
                at(1),
                "u1",
                conversation_id="k7",
                sender="Ana",
                text="there",
                recipient_online=True,
            ),
            event(
                "m3",
                "message_sent",
                at(2),
                "u1",
                conversation_id="k7",
                sender="Ana",
                text="ok?",
                recipient_online=False,
            ),
        ],
    )
    run_rules(cfg, rules, events, journal, "--devices", str(devices))
    got = emulator.inbox.received(ios(1))
    assert [d.payload["aps"]["alert"]["body"] for d in got] == ["hi", "ok?"]
    assert {d.collapse_id for d in got} == {"chat-k7"}
    assert all(d.payload["aps"]["thread-id"] == "chat-k7" for d in got)
    assert all(d.payload["aps"]["interruption-level"] == "time-sensitive" for d in got)


def test_bad_event_unknown_user_and_failing_template_are_counted_and_the_stream_goes_on(
    tmp_path: Path, emulator: Any
) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  shipped:
    on: order_shipped
    template: {title: Shipped, body: "via {{ event.data.carrier }}"}
""",
        users=2,
    )
    dead = tmp_path / "dead.jsonl"
    events = events_file(
        tmp_path / "e.jsonl",
        [
            "{not json",
            event("x1", "order_shipped", at(0), "nobody", carrier="DHL"),
            event("x2", "order_shipped", at(1), "u1"),  # no carrier: the template cannot render
            {"type": "order_shipped", "user_id": "u1"},  # no id
            event("x3", "order_shipped", at(2), "u2", carrier="UPS"),
        ],
    )
    code, lines, err = run_rules(
        cfg, rules, events, journal, "--devices", str(devices), "--dead-letter", str(dead)
    )
    assert code == 0, err
    assert bodies(emulator, fcm(2)) == ["via UPS"]
    s = summary(lines)
    assert s["skipped"] == {"malformed": 2, "unknown_user": 1, "template_error": 1}
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [d["reason"].split(":")[0] for d in letters] == ["invalid JSON", "missing 'id' (the event id)"]
    template_skip = next(line for line in lines if line.get("reason") == "template_error")
    assert "carrier" in template_skip["detail"] and template_skip["event"] == "x2"


def test_invalid_tokens_are_marked_and_skipped_from_then_on(tmp_path: Path, emulator: Any) -> None:
    cfg, _d, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  hello:
    on: hello
    template: {title: Hi, body: "{{ event.id }}"}
""",
    )
    dead = "dead" + "0" * 60
    devices = directory_csv(
        tmp_path / "d.csv",
        [
            {"token": dead, "platform": "ios", "user_id": "u1"},
            {"token": ios(2), "platform": "ios", "user_id": "u1"},
        ],
    )
    code, _l, _e = run_rules(
        cfg,
        rules,
        events_file(tmp_path / "a.jsonl", [event("h1", "hello", at(0), "u1")]),
        journal,
        "--devices",
        str(devices),
    )
    assert code == 1  # an invalid token
    code, lines, _e = run_rules(
        cfg, rules, events_file(tmp_path / "b.jsonl", [event("h2", "hello", at(1), "u1")]), journal
    )
    assert code == 0 and [s["token"] for s in lines if s["type"] == "send"] == [ios(2)]
    assert emulator.inbox.count(dead) == 0 and bodies(emulator, ios(2)) == ["h1", "h2"]
    code, marks, _e = invoke("devices", "invalid", "--journal", str(journal))
    assert [(m["token"], m["user_id"], m["reason"]) for m in marks] == [(dead, "u1", "Unregistered")]
    with Journal(journal) as j:
        assert j.known_invalid([dead, ios(2)]) == {dead}  # campaigns' --skip-known-invalid sees it too


def test_the_same_events_again_send_nothing(tmp_path: Path, emulator: Any) -> None:
    cfg, devices, rules, journal = _setup(
        tmp_path,
        emulator,
        """
rules:
  hello:
    on: hello
    template: {title: Hi, body: "{{ event.id }}"}
""",
    )
    events = events_file(
        tmp_path / "e.jsonl", [event(f"h{i}", "hello", at(i), f"u{i % 3 + 1}") for i in range(6)]
    )
    run_rules(cfg, rules, events, journal, "--devices", str(devices))
    code, lines, err = run_rules(cfg, rules, events, journal)
    assert code == 0, err
    s = summary(lines)
    assert s["redelivered"] == 6 and s["fired"] == 0 and emulator.inbox.total() == 6
