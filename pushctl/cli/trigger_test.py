"""`pushctl trigger test`: the engine run on given events in a scratch journal, printing decisions
and the exact requests each firing would send. Nothing is sent; delayed and digest sends are shown
as they would fire when due (event time)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pushctl import clock
from pushctl.cli.render_cmd import DEFAULT_TOPIC, PROJECT_PLACEHOLDER
from pushctl.cli.state import State
from pushctl.errors import InputError
from pushctl.journal import Journal
from pushctl.message import build_apns, build_fcm
from pushctl.model import Platform
from pushctl.paths import default_journal_file
from pushctl.triggers import Engine, Firing, RuleSet, Skip, parse_line


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _request(firing: Firing, topic: str) -> dict[str, Any]:
    device = firing.device
    if device.platform is Platform.IOS:
        req = build_apns(
            firing.notification,
            device.token,
            topic=topic,
            default_collapse_id=firing.collapse_id,
            where=device.where,
        )
        return {
            "path": req.path,
            "headers": dict(req.headers),
            "payload": json.loads(req.body),
            "bytes": len(req.body),
        }
    freq = build_fcm(
        firing.notification,
        device.token,
        platform=device.platform,
        default_collapse_key=firing.collapse_id,
        where=device.where,
    )
    path = f"/v1/projects/{PROJECT_PLACEHOLDER}/messages:send"
    return {"path": path, "headers": {}, "payload": json.loads(freq.body), "bytes": freq.size}


def run_test(
    state: State,
    rules_path: Path,
    event: str | None,
    events: Path | None,
    devices: Path | None,
    journal: Path | None,
    topic: str | None,
) -> None:
    """Print what the rules do with the events (see the module docstring)."""
    t = state.terminal
    rules = RuleSet.load(rules_path)
    lines: list[tuple[str, str]] = []
    if event is not None:
        lines.append(("--event", event))
    else:
        assert events is not None
        try:
            text = events.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=events, field="--events") from None
        lines = [(f"{events}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    apns_topic = topic or DEFAULT_TOPIC
    with (
        tempfile.TemporaryDirectory(prefix="pushctl-trigger-test-") as tmp,
        Journal(Path(tmp) / "j.sqlite3") as j,
    ):
        directory = j.directory()
        if devices is not None:
            from pushctl.audience import AudienceReader

            directory.import_devices(AudienceReader(devices, on_bad_row="skip"))
        else:
            source = journal or default_journal_file()
            if source.exists():
                directory.copy_from(source)
        skips: list[Skip] = []
        engine = Engine(rules, j.trigger_store(rules.name, "test"), directory, on_skip=skips.append)
        shown = Counter[str]()

        def show(firings: list[Firing], when: str) -> None:
            for f in firings:
                shown[f.rule.name] += 1
                request = _request(f, apns_topic)
                record = {
                    "type": "request",
                    "rule": f.rule.name,
                    "when": when,
                    "user_id": f.job.user_id,
                    "token": f.device.token,
                    "platform": str(f.device.platform),
                    "collapse_id": f.collapse_id,
                    **request,
                }
                if t.json:
                    t.json_line(record)
                    continue
                t.print(
                    f"  → {f.rule.name}: {f.job.user_id or 'token'} {f.device.token[:12]}… "
                    f"({f.device.platform}) {when}"
                )
                t.raw(f"    POST {request['path']}\n")
                for name, value in request["headers"].items():
                    t.raw(f"    {name}: {value}\n")
                t.raw("    " + json.dumps(request["payload"], ensure_ascii=False) + "\n")

        store = engine.store
        for where, line in lines:
            parsed = parse_line(line, rules.fields, now=clock.timestamp())
            if isinstance(parsed, str):
                _say(
                    t,
                    {"type": "dead_letter", "where": where, "reason": parsed},
                    f"{where}: malformed: {parsed}",
                )
                continue
            before = Counter(engine.totals)
            skips.clear()
            with store.batch():
                firings = engine.fire_due(parsed.ts)
                firings += engine.process(parsed, parsed.ts)
            _say(
                t,
                {"type": "event", "where": where, "id": parsed.id, "event_type": parsed.type},
                f"event {parsed.id} ({parsed.type}, {_when(parsed.ts)}, {parsed.user_id or 'token'})",
            )
            for (rule, what, reason), n in (engine.totals - before).items():
                if what in ("scheduled", "cancelled", "digested", "filtered", "skipped") and rule:
                    why = f" ({reason})" if reason else ""
                    text = f"  {rule}: {what}{why}{f' x{n}' if n > 1 else ''}"
                    _say(
                        t,
                        {
                            "type": "decision",
                            "event": parsed.id,
                            "rule": rule,
                            "what": what,
                            "reason": reason,
                            "count": n,
                        },
                        text,
                    )
            show(firings, "now")
        while (due := engine.next_due) is not None:
            with store.batch():
                firings = engine.fire_due(due)
            if not firings:
                _say(t, {"type": "due", "at": due}, f"at {_when(due)}: nothing to send")
            show(firings, f"when due at {_when(due)}")
            if engine.next_due == due:
                break
    if not t.json:
        total = sum(shown.values())
        t.print(
            f"{total} notification(s) would be sent"
            + (f" ({', '.join(f'{r} {n}' for r, n in shown.items())})" if shown else "")
        )


def _say(t: Any, obj: dict[str, Any], text: str) -> None:
    if t.json:
        t.json_line(obj)
    else:
        t.print(text)
