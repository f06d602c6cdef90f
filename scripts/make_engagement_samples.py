"""Regenerate samples/engagement/ (deterministic: the same files every time).

- ``audience.csv``: 4,000 devices (iOS and Android) of users u30001..u34000 in eight time zones;
- ``events.csv``: opens, conversions and dismissals of the A/B campaign ``spring-sale``
  (``samples/templates/spring-sale.yaml``) sent at 2026-03-02T09:00:00Z: variant ``short`` opened
  by about 6.1% of its devices, ``long`` by about 4.3% (a real difference the test can find), plus
  what real files hold: late opens outside the 72 h window, a few repeated event ids, and opens of
  devices the campaign never reached;
- ``ab-test-events.csv``: opens of the 10% test slice of campaign ``spring-rollout`` (sent with
  ``--ab-test 10%`` at the same time): ``short`` clearly ahead;
- ``best-time-audience.csv`` + ``opens-history.csv``: twelve users and 60+ days of their opens, for
  ``--local-time best``;
- ``preferences.csv``: users' choices per category.

Run: ``.venv/bin/python scripts/make_engagement_samples.py``.
"""

from __future__ import annotations

import csv
import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pushctl.journal import in_ab_slice
from pushctl.message import Template

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "samples" / "engagement"
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ZONES = ["Europe/Paris", "Europe/London", "America/New_York", "America/Chicago", "Asia/Tokyo",
         "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo"]  # fmt: skip
NAMES = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kim", "Lars",
         "Mia", "Noah", "Olga", "Pia", "Quinn", "Rosa", "Sam", "Tara"]  # fmt: skip
OPEN_RATE = {"short": 0.061, "long": 0.043}
SLICE_OPEN_RATE = {"short": 0.12, "long": 0.04}


def _token(i: int, platform: str) -> str:
    digest = hashlib.sha256(f"pushctl-engagement-sample-{i}".encode()).hexdigest()
    if platform == "ios":
        return "a" + digest[1:]  # never an emulator test prefix (dead, 0bad, zeros)
    tail = hashlib.sha256(digest.encode()).hexdigest()
    return f"eng{i:05d}{digest[:14]}:APA91b{tail[:40]}"


def audience() -> list[dict[str, str]]:
    rows = []
    for i in range(4000):
        platform = "android" if i % 3 == 2 else "ios"
        rows.append({
            "token": _token(i, platform), "platform": platform, "name": NAMES[i % len(NAMES)],
            "locale": "en", "timezone": ZONES[i % len(ZONES)], "user_id": f"u{30001 + i}",
        })  # fmt: skip
    return rows


def _delay(rng: random.Random) -> timedelta:
    # Most opens come within the hour, a long tail over the next two days.
    return timedelta(minutes=min(60 * 60, rng.lognormvariate(3.4, 1.3)))


def _event(
    i: int, kind: str, at: datetime, campaign: str, row: dict[str, str], by_user: bool, value: str = ""
) -> dict[str, str]:
    return {
        "event_id": f"{campaign}-{kind}-{i:05d}", "type": kind, "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "campaign": campaign, "token": "" if by_user else row["token"],
        "user_id": row["user_id"] if by_user else "", "value": value,
    }  # fmt: skip


def events(rows: list[dict[str, str]], campaign: str, rates: dict[str, float], seed: int,
           fraction: float | None = None) -> list[dict[str, str]]:  # fmt: skip
    template = Template.load(REPO / "samples" / "templates" / "spring-sale.yaml")
    rng = random.Random(seed)
    by_variant: dict[str, list[dict[str, str]]] = {"short": [], "long": []}
    for row in rows:
        if fraction is not None and not in_ab_slice(campaign, row["token"], fraction):
            continue
        variant = template.choose_variant(row["token"], campaign)
        assert variant is not None
        by_variant[variant].append(row)
    out: list[dict[str, str]] = []
    n = 0
    for variant, members in by_variant.items():
        openers = rng.sample(members, round(rates[variant] * len(members)))
        for row in openers:
            n += 1
            opened = SENT + _delay(rng)
            out.append(_event(n, "opened", opened, campaign, row, by_user=rng.random() < 0.3))
            if rng.random() < 0.26:
                value = f"{rng.choice([19.9, 24.5, 39.0, 54.9, 89.0]):.2f}"
                converted = opened + timedelta(minutes=rng.randint(1, 45))
                out.append(_event(n, "converted", converted, campaign, row, by_user=False, value=value))
        others = [r for r in members if r not in openers]
        for row in rng.sample(others, round(0.03 * len(others))):
            n += 1
            out.append(_event(n, "dismissed", SENT + _delay(rng), campaign, row, by_user=False))
    if fraction is None:
        # What real files also hold: opens days later (outside the 72 h window), repeated lines,
        # and opens of devices this campaign never reached.
        for row in rng.sample(rows, 3):
            n += 1
            late = SENT + timedelta(hours=80 + rng.randint(0, 20))
            out.append(_event(n, "opened", late, campaign, row, False))
        out.extend(dict(e) for e in rng.sample(out, 4))
        for k in range(2):
            stranger = {"token": _token(90000 + k, "ios"), "user_id": f"u9{k:04d}"}
            n += 1
            out.append(_event(n, "opened", SENT + timedelta(minutes=30), campaign, stranger, False))
    out.sort(key=lambda e: (e["ts"], e["event_id"]))
    return out


BEST_USERS = [
    # user, name, zone, platform, best local hour (None: no trust-worthy history), opens
    ("u4001", "Ana", "Europe/Madrid", "ios", 7, 14),
    ("u4002", "Bob", "America/New_York", "android", 20, 11),
    ("u4003", "Chen", "Asia/Shanghai", "ios", 12, 9),
    ("u4004", "Dana", "Europe/Berlin", "android", 18, 12),
    ("u4005", "Emeka", "Africa/Lagos", "ios", 21, 8),
    ("u4006", "Fatima", "Asia/Dubai", "android", 8, 10),
    ("u4007", "Gus", "Australia/Sydney", "ios", 19, 7),
    ("u4008", "Hana", "Asia/Tokyo", "ios", 10, 2),  # two opens only: the fallback
    ("u4009", "Ivan", "Europe/Moscow", "android", None, 0),  # never opened one
    ("u4010", "Julia", "America/Sao_Paulo", "ios", 15, 0),  # opened, but longer than 60 days ago
    ("u4011", "Kofi", "Europe/London", "android", 13, 10),
    ("u4012", "Lea", "America/Los_Angeles", "ios", 6, 9),
]


def _open(event_id: str, local: datetime, user: str) -> dict[str, str]:
    ts = local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"event_id": event_id, "type": "opened", "ts": ts, "user_id": user}


def best_time() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rng = random.Random(13)
    people = []
    history = []
    for i, (user, name, zone, platform, hour, count) in enumerate(BEST_USERS):
        people.append({"token": _token(50000 + i, platform), "platform": platform, "name": name,
                       "timezone": zone, "user_id": user})  # fmt: skip
        tz = ZoneInfo(zone)
        days = rng.sample(range(1, 58), count)
        for k, day in enumerate(sorted(days)):
            local_day = (SENT - timedelta(days=day)).astimezone(tz).date()
            # Mostly in the best hour; now and then another hour (real people are not clocks).
            h = hour if hour is not None and (k % 4 != 3) else rng.choice([9, 11, 16, 22])
            local = datetime(local_day.year, local_day.month, local_day.day, h, rng.randint(0, 59), tzinfo=tz)
            history.append(_open(f"hist-{user}-{k:02d}", local, user))
        if user == "u4010":  # opens of last autumn: older than the 60 days looked at
            for k in range(6):
                local = datetime(2025, 11, 3 + k, 15, 20, tzinfo=tz)
                history.append(_open(f"hist-{user}-old{k}", local, user))
    history.sort(key=lambda e: (e["ts"], e["event_id"]))
    return people, history


GRETA = (  # a device-level choice: Greta's Android phone (samples/audience.csv)
    "J59FHz5r1pY4OjE2jBMptU:APA91bsGr7CmY-uCu3ZR1zTOlUcR64cXQLioDnkHIfxIq2HZt_PlJhx2jIclHkCiHp6bR1IqfE"
    "ouHgxzNNAL5wIScGebcy8F5n3_YNBDRzrZSgqbjG3uhkWKFLf6xuI5aHUQPFeNBTxa"
)
PREFERENCES = [
    {"user_id": "u1001", "token": "", "category": "marketing", "opted_in": "true"},
    {"user_id": "u1002", "token": "", "category": "marketing", "opted_in": "false"},
    {"user_id": "u1003", "token": "", "category": "marketing", "opted_in": "false"},
    {"user_id": "u1004", "token": "", "category": "social", "opted_in": "false"},
    {"user_id": "u1003", "token": "", "category": "security", "opted_in": "false"},
    {"user_id": "", "token": GRETA, "category": "marketing", "opted_in": "false"},
    {"user_id": "u30002", "token": "", "category": "marketing", "opted_in": "false"},
    {"user_id": "u30007", "token": "", "category": "marketing", "opted_in": "false"},
]


def _write(name: str, rows: list[dict[str, str]]) -> None:
    with (OUT / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT / name} ({len(rows):,} rows)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = audience()
    _write("audience.csv", rows)
    _write("events.csv", events(rows, "spring-sale", OPEN_RATE, seed=2026))
    _write("ab-test-events.csv", events(rows, "spring-rollout", SLICE_OPEN_RATE, seed=7, fraction=0.10))
    people, history = best_time()
    _write("best-time-audience.csv", people)
    _write("opens-history.csv", history)
    _write("preferences.csv", PREFERENCES)


if __name__ == "__main__":
    main()
