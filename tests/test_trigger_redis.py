"""Redis Streams: a consumer group shared by two `trigger run` processes, and kill -9 at random
points while consuming 10,000 events, then a restart. A real Redis-protocol server (tests/
redis_support.py); pushctl runs as real subprocesses; the in-process emulator's inbox is the judge."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis
from test_resume_support import Pushctl, pushctl_argv, wait_for, wait_until
from trigger_support import at, directory_csv, fcm, ios

from pushctl.emulator import Emulator
from pushctl.triggers import collapse_id_for_job

RULES = """
name: {name}
rules:
  ping:
    on: ping
    template:
      title: "Ping {{{{ event.data.n }}}}"
      body: "for {{{{ name }}}}"
      data: {{event: "{{{{ event.id }}}}"}}
  later:
    on: remind
    delay: 30m
    template:
      title: "Reminder {{{{ event.data.n }}}}"
      body: "for {{{{ name }}}}"
      data: {{event: "{{{{ event.id }}}}"}}
"""


def _users(tmp_path: Path, n: int) -> tuple[Path, dict[str, str]]:
    rows = [
        {
            "token": ios(i) if i % 2 else fcm(i),
            "platform": "ios" if i % 2 else "android",
            "user_id": f"u{i}",
            "name": f"User {i}",
        }
        for i in range(n)
    ]
    return directory_csv(tmp_path / "devices.csv", rows), {r["user_id"]: r["token"] for r in rows}


def _publish(url: str, stream: str, events: list[dict[str, Any]]) -> None:
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for e in events:
            pipe.xadd(stream, {"event": json.dumps(e)})
        pipe.execute()
    finally:
        client.close()


TICK = {"id": "tick", "type": "tick", "ts": "", "user_id": "u0"}


def _events(n: int, users: int, remind_every: int = 0, *, tick: bool = True) -> list[dict[str, Any]]:
    events = []
    for i in range(n):
        kind = "remind" if remind_every and i % remind_every == 0 else "ping"
        events.append(
            {"id": f"e{i}", "type": kind, "ts": at(i / 60), "user_id": f"u{i % users}", "data": {"n": i}}
        )
    if tick:  # a day later: the event clock passes every delay
        events.append({**TICK, "ts": at(24 * 60)})
    return events


def _expected(name: str, events: list[dict[str, Any]], tokens: dict[str, str]) -> dict[tuple[str, str], str]:
    """(token, event id) -> the collapse id its one visible notification must carry."""
    out = {}
    for e in events:
        rule = {"ping": "ping", "remind": "later"}.get(e["type"])
        if rule:
            out[(tokens[e["user_id"]], e["id"])] = collapse_id_for_job(f"{name}/{rule}/{e['id']}")
    return out


def _inbox(emu: Emulator) -> dict[tuple[str, str], set[str | None]]:
    seen: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for d in emu.inbox.all():
        data = d.payload.get("data") or {k: v for k, v in d.payload.items() if k != "aps"}
        seen[(d.token, data["event"])].add(d.collapse_id)
    return seen


def _argv(
    cfg: Path, rules: Path, url: str, stream: str, consumer: str, journal: Path, devices: Path
) -> list[str]:
    return pushctl_argv(
        cfg,
        "trigger",
        "run",
        str(rules),
        "--events",
        f"{url}?stream={stream}&group=g&consumer={consumer}",
        "--journal",
        str(journal),
        "--devices",
        str(devices),
        "--clock",
        "events",
        "--until-idle",
        "3",
    )


def _summary(done: Any) -> dict[str, Any]:
    return next(line for line in done.json_lines() if line.get("type") == "summary")


def test_two_consumers_in_one_group_split_the_stream(tmp_path: Path, redis_url: str) -> None:
    devices, tokens = _users(tmp_path, 200)
    events = _events(2000, 200)
    _publish(redis_url, "split", events)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(name="split"))
    with Emulator(tmp_path / "emu", latency_ms=2) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        procs = [
            Pushctl(
                _argv(cfg, rules, redis_url, "split", f"c{i}", tmp_path / f"j{i}.sqlite3", devices),
                tmp_path,
                f"c{i}",
            )
            for i in (1, 2)
        ]
        done = [p.wait(180) for p in procs]
        wait_for(lambda: emu.open_connections() == 0, "the clients to hang up")
        seen = _inbox(emu)
        total = emu.inbox.total()
    for d in done:
        assert d.code == 0, d.stderr
    shares = [_summary(d)["records"] for d in done]
    assert sum(shares) == len(events) and min(shares) > 0, shares  # each handled a share
    assert all(_summary(d)["redelivered"] == 0 for d in done)
    expected = _expected("split", events, tokens)
    assert {k: {v} for k, v in expected.items()} == dict(seen)  # none lost, none extra
    assert total == len(expected)  # and none sent twice, even invisibly


KILL_POINTS = {"early": (0.1, 0.3), "middle": (0.4, 0.6), "late": (0.7, 0.9)}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_while_consuming_10000_events_then_restart(tmp_path: Path, redis_url: str, point: str) -> None:
    stream = f"kill-{point}"
    devices, tokens = _users(tmp_path, 500)
    # The day-later tick that lets the last reminders fall due is published only after the kill:
    # however far ahead of the sends the consumer has read, delayed sends are pending when it dies.
    events = _events(10_000, 500, remind_every=10, tick=False)
    _publish(redis_url, stream, events)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(name="kill"))
    expected = _expected("kill", events, tokens)
    low, high = KILL_POINTS[point]
    kill_at = int(len(expected) * random.Random(point).uniform(low, high))
    journal = tmp_path / "journal.sqlite3"
    with Emulator(tmp_path / "emu", latency_ms=5) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = _argv(cfg, rules, redis_url, stream, "worker-1", journal, devices)
        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= kill_at, first, timeout=120)
        first.signal(signal.SIGKILL)
        first.wait()
        wait_for(lambda: emu.open_connections() == 0, "the emulator to drop the dead client")
        with sqlite3.connect(journal) as db:
            pending = db.execute("SELECT COUNT(*) FROM trigger_jobs WHERE state = 'pending'").fetchone()[0]
        assert pending > 0, "the kill left no delayed send pending: the test proved nothing about them"
        assert len(_inbox(emu)) < len(expected), "killed too late"
        _publish(redis_url, stream, [{**TICK, "ts": at(24 * 60)}])

        second = Pushctl(argv, tmp_path, "second").wait(180)
        assert second.code == 0, second.stderr
        wait_for(lambda: emu.open_connections() == 0, "the client to hang up")
        seen = _inbox(emu)
    missing = set(expected) - set(seen)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:3]}"
    assert set(seen) == set(expected)
    two_ids = {key: ids for key, ids in seen.items() if len(ids) > 1}
    assert not two_ids, f"{len(two_ids)} (device, event) pairs with two collapse ids"
    assert all(ids == {expected[key]} for key, ids in seen.items())
    with sqlite3.connect(journal) as db:
        left = db.execute("SELECT state, COUNT(*) FROM trigger_jobs WHERE state = 'pending'").fetchall()
        inflight = db.execute("SELECT COUNT(*) FROM trigger_sends WHERE state != 'settled'").fetchone()[0]
    assert not left[0][1] and inflight == 0


def test_sigterm_drains_then_a_restart_sends_no_copy_twice(tmp_path: Path, redis_url: str) -> None:
    devices, tokens = _users(tmp_path, 200)
    events = _events(3000, 200)
    _publish(redis_url, "drain", events)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(name="drain"))
    journal = tmp_path / "journal.sqlite3"
    with Emulator(tmp_path / "emu", latency_ms=20) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = _argv(cfg, rules, redis_url, "drain", "w1", journal, devices)
        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= 500, first, timeout=120)
        first.signal(signal.SIGTERM)
        stopped = first.wait(60)
        assert stopped.code == 130, stopped.stderr
        summary = _summary(stopped)
        assert summary["stopped"] == "interrupted" and 0 < summary["records"] < len(events)
        with sqlite3.connect(journal) as db:  # everything journaled was sent and settled
            query = "SELECT COUNT(*) FROM trigger_sends WHERE state != 'settled'"
            unsettled = db.execute(query).fetchone()[0]
        assert unsettled == 0
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:  # nothing was acknowledged that the journal had not committed
            read = client.xinfo_groups("drain")[0]["entries-read"]
            entries = client.xrange("drain", count=read)
            pending = {p["message_id"] for p in client.xpending_range("drain", "g", "-", "+", read)}
        finally:
            client.close()
        acked = {json.loads(fields["event"])["id"] for entry_id, fields in entries if entry_id not in pending}
        with sqlite3.connect(journal) as db:
            seen_ids = {row[0] for row in db.execute("SELECT event_id FROM trigger_events")}
        assert acked and acked <= seen_ids
        second = Pushctl(argv, tmp_path, "second").wait(120)
        assert second.code == 0, second.stderr
        wait_for(lambda: emu.open_connections() == 0, "the client to hang up")
        seen = _inbox(emu)
        total = emu.inbox.total()
    expected = _expected("drain", events, tokens)
    assert {k: {v} for k, v in expected.items()} == dict(seen)
    assert total == len(expected)  # a clean stop sends no copy twice
