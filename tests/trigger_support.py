"""Helpers for the trigger tests (no tests here): devices, events, rules files, and running
`pushctl trigger ...` in-process against an emulator profile."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pushctl.cli.app import app

ENV = {"COLUMNS": "200"}
T0 = "2026-11-20T09:00:00Z"


def ios(n: int) -> str:
    """A hex APNs token the emulator accepts (none of its test prefixes)."""
    return "a" + f"{n:063x}"


def fcm(n: int) -> str:
    """An FCM registration token the emulator accepts."""
    return f"fcm{n:06d}:APA91b" + "x" * 140


def at(minutes: float, base: str = T0) -> str:
    """``base`` plus ``minutes``, as ISO 8601 (for event timestamps)."""
    from datetime import datetime, timedelta

    value = datetime.fromisoformat(base) + timedelta(minutes=minutes)
    return value.isoformat().replace("+00:00", "Z")


def directory_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    """An audience CSV with token, platform, user_id and whatever else the rows carry."""
    rows = list(rows)
    columns = ["token", "platform", "user_id"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = [",".join(columns)] + [",".join(row.get(c, "") for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def event(eid: str, kind: str, ts: str, user: str = "", **data: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": eid, "type": kind, "ts": ts, "data": data}
    if user:
        obj["user_id"] = user
    return obj


def events_file(path: Path, events: Iterable[dict[str, Any] | str]) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


def invoke(
    *args: str, cfg: Path | None = None, output: str = "json"
) -> tuple[int, list[dict[str, Any]], str]:
    """Run pushctl in-process; (exit code, stdout JSON lines, stderr)."""
    head = ["--config", str(cfg), "--profile", "emulator"] if cfg is not None else []
    result = CliRunner().invoke(app, [*head, "-o", output, *args], env=ENV)
    lines = (
        [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        if output == "json"
        else []
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, lines, result.stderr


def run_rules(
    cfg: Path, rules: Path, events: Path, journal: Path, *extra: str
) -> tuple[int, list[dict[str, Any]], str]:
    """`trigger run` over a JSONL file with the event clock (delays need no waiting)."""
    return invoke(
        "trigger",
        "run",
        str(rules),
        "--events",
        str(events),
        "--journal",
        str(journal),
        "--clock",
        "events",
        *extra,
        cfg=cfg,
    )


def summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    found = [line for line in lines if line.get("type") == "summary"]
    assert found, lines
    return found[-1]


def bodies(emu: Any, token: str) -> list[str]:
    """What one device shows: the alert bodies of its notifications, oldest first."""
    out = []
    for d in emu.inbox.received(token):
        if d.provider == "apns":
            out.append(d.payload["aps"]["alert"]["body"])
        else:
            out.append(d.payload["notification"]["body"])
    return out
