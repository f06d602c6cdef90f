"""What ``pushctl trigger run`` shows: the live status panel (stderr, on a terminal), JSON Lines
when piped, and the summary at the end (with ``--emulator``, what each device received)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pushctl.cli.console import Terminal
from pushctl.cli.results_view import OUTCOME_STYLES, short_token
from pushctl.delivery import Event as SenderEvent
from pushctl.outcome import Outcome
from pushctl.triggers import SendRecord, Skip, TriggerHooks, TriggerReport, TriggerStats

REFRESH = 0.25


def _panel(stats: TriggerStats, title: str) -> Group:
    sent = "  ".join(
        f"[{OUTCOME_STYLES[o]}]{o}: {stats.sent[str(o)]:,}[/]" for o in Outcome if stats.sent[str(o)]
    )
    skipped = ", ".join(f"{reason} {n:,}" for reason, n in stats.skipped().most_common(6))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("events", f"{stats.records:,} read  ({stats.events_per_s():,.0f}/s)")
    grid.add_row(
        "rules fired",
        f"{stats.total('fired'):,}   scheduled {stats.total('scheduled'):,}   "
        f"cancelled {stats.total('cancelled'):,}",
    )
    grid.add_row("sent", Text.from_markup(sent or "-") + Text(f"   in flight {stats.in_flight:,}"))
    grid.add_row("pending", f"{stats.pending:,} delayed / digest sends in the journal")
    grid.add_row("skipped", skipped or "-")
    parts: list[Any] = [Text(title, style="bold"), grid]
    if stats.errors:
        parts.append(Text("last errors:", style="yellow"))
        for line in stats.errors[-3:]:
            parts.append(Text(f"  {line}", style="dim", no_wrap=True, overflow="ellipsis"))
    return Group(*parts)


@contextlib.asynccontextmanager
async def live_panel(terminal: Terminal, title: str, stats_ref: list[TriggerStats]) -> AsyncIterator[None]:
    """The status panel on stderr while the body runs (nothing when not interactive)."""
    if not terminal.interactive:
        yield
        return
    stop = asyncio.Event()
    with Live(console=terminal.err, auto_refresh=False, transient=False) as live:

        async def refresh() -> None:
            while not stop.is_set():
                if stats_ref:
                    live.update(_panel(stats_ref[0], title), refresh=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), REFRESH)

        task = asyncio.create_task(refresh())
        try:
            yield
        finally:
            stop.set()
            await task
            if stats_ref:
                live.update(_panel(stats_ref[0], title), refresh=True)


def hooks_for(
    terminal: Terminal, stats_ref: list[TriggerStats], on_event: Callable[[SenderEvent], None]
) -> TriggerHooks:
    """JSON Lines per send, skip and dead letter when the output is JSON; the panel otherwise."""

    def on_result(record: SendRecord) -> None:
        if terminal.json:
            r = record.result
            terminal.json_line(
                {
                    "type": "send",
                    "rule": record.rule,
                    "job": record.job_key,
                    "user_id": record.user_id,
                    "token": r.token,
                    "platform": str(r.platform),
                    "outcome": str(r.outcome),
                    "reason": r.reason,
                    "status": r.status,
                    "attempts": r.attempts,
                    "latency_ms": round(r.latency_ms, 2),
                }
            )

    def on_skip(skip: Skip) -> None:
        if terminal.json:
            terminal.json_line(
                {
                    "type": "skip",
                    "rule": skip.rule,
                    "reason": skip.reason,
                    "event": skip.event_id,
                    "user_id": skip.user_id,
                    "detail": skip.detail,
                }
            )

    def on_dead_letter(where: str, reason: str) -> None:
        if terminal.json:
            terminal.json_line({"type": "dead_letter", "where": where, "reason": reason})
        elif not terminal.interactive:
            terminal.warn(f"{where}: {reason}")

    def on_start(stats: TriggerStats, consumer: str) -> None:
        stats_ref.append(stats)

    return TriggerHooks(
        on_result=on_result,
        on_skip=on_skip,
        on_dead_letter=on_dead_letter,
        on_event=on_event,
        on_start=on_start,
    )


def show_summary(terminal: Terminal, report: TriggerReport) -> None:
    """The end of a run: the summary object in JSON mode, else tables on stdout."""
    summary = report.to_dict()
    if terminal.json:
        terminal.json_line(summary)
        return
    rows: list[tuple[str, str]] = [
        ("events read", f"{summary['records']:,} ({summary['events_per_s']:,}/s)"),
        ("rules fired", f"{summary['fired']:,}"),
        ("scheduled (delay / send_at)", f"{summary['scheduled']:,}"),
        ("cancelled", f"{summary['cancelled']:,}"),
        (
            "pending in the journal",
            f"{summary['pending']:,} (+{summary['deferred']:,} waiting for quiet hours)",
        ),
    ]
    rows += [(f"sent: {o}", f"{n:,}") for o, n in summary["sent"].items() if n]
    rows += [(f"skipped: {reason}", f"{n:,}") for reason, n in summary["skipped"].items()]
    if summary["redelivered"]:
        rows.append(("already handled (redelivered)", f"{summary['redelivered']:,}"))
    terminal.table(["", "count"], rows, title=f"rules {report.ruleset} ({report.source})")
    if report.stopped_reason:
        terminal.info(f"stopped: {report.stopped_reason}")


def show_inbox(terminal: Terminal, deliveries: list[Any], users: dict[str, str]) -> None:
    """What the emulator's devices received, one row per notification (table mode only)."""
    if terminal.json:
        return
    rows = []
    for d in deliveries:
        payload = d.payload
        title = body = ""
        if d.provider == "apns":
            alert = payload.get("aps", {}).get("alert", {})
            if isinstance(alert, dict):
                title, body = alert.get("title", ""), alert.get("body", "")
        else:
            note = payload.get("notification", {})
            title, body = note.get("title", ""), note.get("body", "")
        rows.append((users.get(d.token, ""), short_token(d.token), title, body, d.collapse_id or ""))
    terminal.table(
        ["user", "device", "title", "body", "collapse id"],
        rows,
        title="emulator inbox",
        caption=f"{len(rows)} notification(s) received",
    )


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
