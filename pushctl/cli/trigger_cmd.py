"""`pushctl trigger`: rules that turn user events into notifications (run, check, test, status)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pushctl.cli.console import Terminal
from pushctl.cli.metrics_opts import METRICS_HOST_HELP, METRICS_PORT_HELP
from pushctl.cli.progress import event_printer
from pushctl.cli.state import State, get_state
from pushctl.cli.trigger_view import hooks_for, live_panel, show_inbox, show_summary
from pushctl.config import Profile, resolve_profile
from pushctl.delivery import SendOptions
from pushctl.errors import InputError
from pushctl.journal import Journal
from pushctl.metrics import DEFAULT_METRICS_HOST
from pushctl.paths import default_journal_file
from pushctl.runtime import run as run_loop

HELP = """Rules that turn a stream of user events into personalised notifications.

Try it on the built-in emulator (a cart reminder cancelled by a purchase, another sent after its
delay, orders shipped):

  pushctl trigger run samples/rules/shop.yaml --events samples/events/shop.jsonl \
    --devices samples/audience.csv --emulator --until-idle 2
"""

RUN_HELP = """Apply RULES to a stream of events and send the notifications they call for.

--events is a JSON Lines file (--follow keeps reading it as it grows, across rotation), - for
stdin, or a Redis stream read by a consumer group:
redis://HOST:6379/0?stream=events&group=pushctl&consumer=NAME. Every decision is journaled before
an event is acknowledged; delayed and digest sends wait in the journal and survive restarts.
On a terminal a live status panel shows on stderr; piped, stdout gets JSON Lines (one per send,
skip and dead letter, then a summary). Ctrl-C / SIGTERM stop reading and finish the sends
already journaled. Events of the types push_opened, push_converted and push_dismissed are also
recorded as engagement (as `pushctl engage import` does) for reports and best hours.
"""

ClockOpt = Literal["wall", "events"]
JournalOption = Annotated[
    Path | None, typer.Option("--journal", envvar="PUSHCTL_JOURNAL", help="Journal database.")
]

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


@contextlib.contextmanager
def _profile(
    state: State, emulator: bool, emulator_state: Path | None, journal: Path | None
) -> Iterator[tuple[Profile, Path, Any]]:
    """(profile, journal path, emulator or None): a fresh in-process emulator with a scratch
    journal for --emulator, else the configured profile."""
    if not emulator:
        profile = resolve_profile(state.config_path, state.profile)
        yield profile, journal or profile.sender.journal or default_journal_file(), None
        return
    from pushctl.cli.send_cmd import in_process_emulator

    with in_process_emulator(emulator_state) as (profile, scratch, emu):
        yield profile, journal or scratch / "journal.sqlite3", emu


def _send_options(
    profile: Profile, concurrency: int | None, rate: float | None, attempts: int | None
) -> SendOptions:
    conc = concurrency or profile.sender.concurrency
    return SendOptions(
        concurrency={"apns": conc, "fcm": conc} if conc else {},
        rate=rate or profile.sender.rate or None,
        max_attempts=attempts or profile.sender.max_attempts,
    )


@app.command("run", help=RUN_HELP)
def run(
    rules: Annotated[Path, typer.Argument(help="Rules file (YAML).", show_default=False)],
    events: Annotated[
        str, typer.Option("--events", "-e", help="JSONL file, - (stdin) or redis://... stream.")
    ],
    devices: Annotated[
        Path | None,
        typer.Option("--devices", "-d", help="Audience file to load into the device directory first."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Keep reading the file as it grows.")
    ] = False,
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="Consumer name in the Redis group (default: host name).")
    ] = None,
    clock_: Annotated[
        ClockOpt,
        typer.Option("--clock", help="wall: real time (PUSHCTL_NOW honoured); events: event time only."),
    ] = "wall",
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after N events.")
    ] = None,
    until_idle: Annotated[
        float | None, typer.Option("--until-idle", min=0, help="Stop after SECONDS with nothing to do.")
    ] = None,
    dead_letter: Annotated[
        Path | None,
        typer.Option("--dead-letter", help="Append malformed events (with reasons) to this JSONL file."),
    ] = None,
    emulator: Annotated[
        bool, typer.Option("--emulator", help="Send to a fresh built-in emulator with a scratch journal.")
    ] = False,
    emulator_state: Annotated[
        Path | None, typer.Option("--emulator-state", help="State dir for --emulator.")
    ] = None,
    journal: JournalOption = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Requests in flight per provider.")] = None,
    rate: Annotated[float | None, typer.Option(min=0, help="At most N notifications per second.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, help="Attempts per device (retries + 1).")
    ] = None,
    max_connections: Annotated[int, typer.Option(min=1, help="HTTP/2 connections per provider.")] = 4,
    preferences: Annotated[
        Path | None,
        typer.Option("--preferences", help="Users' choices per category (CSV/JSONL: user_id or token, "
                     "category, opted_in); the journal's (pushctl prefs import) apply too."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", metavar="PORT", min=0, max=65535, help=METRICS_PORT_HELP)
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help=METRICS_HOST_HELP)
    ] = DEFAULT_METRICS_HOST,
) -> None:
    from pushctl.cli.metrics_opts import metered_trigger_hooks, trigger_metrics
    from pushctl.triggers import RuleSet, TriggerSpec, open_source, run_triggers

    state = get_state()
    t = state.terminal
    ruleset = RuleSet.load(rules)
    source = open_source(events, follow=follow, consumer=consumer)
    with (
        _profile(state, emulator, emulator_state, journal) as (profile, journal_path, emu),
        trigger_metrics(metrics_port, metrics_host, ruleset.name, source.consumer, t.info) as metrics,
    ):
        spec = TriggerSpec(
            rules=ruleset,
            source=source,
            profile=profile,
            journal_path=journal_path,
            devices=devices,
            clock=clock_,
            max_events=max_events,
            until_idle=until_idle,
            dead_letter=dead_letter,
            send=_send_options(profile, concurrency, rate, max_attempts),
            max_connections=max_connections,
            preferences=preferences,
        )
        stats_ref: list[Any] = []
        hooks = metered_trigger_hooks(hooks_for(t, stats_ref, event_printer(t)), metrics)

        async def go() -> Any:
            async with live_panel(t, f"pushctl trigger run {rules} ← {source.name}", stats_ref):
                return await run_triggers(spec, hooks)

        report = run_loop(go())
        if report.imported is not None:
            t.info(
                f"device directory: {report.imported.devices:,} devices of {report.imported.users:,} users "
                f"loaded from {devices}"
            )
        show_summary(t, report)
        if emu is not None:
            with Journal(journal_path) as j:
                users = {tok: user for tok, user in _token_users(j)}
            show_inbox(t, emu.inbox.all(), users)
    raise typer.Exit(int(report.exit_code()))


def _token_users(journal: Journal) -> Iterator[tuple[str, str]]:
    yield from journal.directory().token_owners()


@app.command("check")
def check(rules: Annotated[Path, typer.Argument(help="Rules file (YAML).", show_default=False)]) -> None:
    """Check a rules file and its templates; errors name the file, line and field (exit 2)."""
    from pushctl.triggers import RuleSet

    t = get_state().terminal
    ruleset = RuleSet.load(rules)
    rows = []
    for rule in ruleset.rules.values():
        extras = [
            f"{key} {value}"
            for key, value in (
                ("where", rule.where.expr if rule.where else None),
                ("cancel_on", ", ".join(rule.cancel_on) or None),
                ("throttle", _cap_text(rule.throttle)),
                ("cap", _cap_text(rule.cap)),
                ("dedupe_key", rule.dedupe_key.source if rule.dedupe_key else None),
                ("category", rule.category),
            )
            if value
        ]
        rows.append((rule.name, ", ".join(rule.on), rule.timing, "; ".join(extras)))
        if t.json:
            t.json_line(
                {
                    "type": "rule",
                    "ruleset": ruleset.name,
                    "rule": rule.name,
                    "on": list(rule.on),
                    "timing": rule.timing,
                    "line": rule.line,
                    "details": extras,
                }
            )
    if t.json:
        return
    t.table(["rule", "on", "when", "details"], rows, title=f"{rules}: rule set '{ruleset.name}' is valid")


def _cap_text(cap: Any) -> str | None:
    if cap is None:
        return None
    seconds = int(cap.window.total_seconds())
    unit = next(
        (f"{seconds // s}{u}" for u, s in (("d", 86400), ("h", 3600), ("m", 60)) if seconds % s == 0),
        f"{seconds}s",
    )
    return f"{cap.count}/{unit}"


@app.command("test")
def test(
    rules: Annotated[Path, typer.Argument(help="Rules file (YAML).", show_default=False)],
    event: Annotated[str | None, typer.Option("--event", help="One event as JSON.")] = None,
    events: Annotated[
        Path | None, typer.Option("--events", "-e", help="Events as a JSON Lines file.")
    ] = None,
    devices: Annotated[
        Path | None, typer.Option("--devices", "-d", help="Audience file (else the journal's directory).")
    ] = None,
    journal: JournalOption = None,
    topic: Annotated[str | None, typer.Option("--topic", help="APNs topic for the printed requests.")] = None,
) -> None:
    """Show which rules fire for which devices, with the rendered requests; nothing is sent."""
    from pushctl.cli.trigger_test import run_test

    if (event is None) == (events is None):
        raise InputError("give one of --event '{...}' or --events FILE", field="--event")
    state = get_state()
    run_test(state, rules, event, events, devices, journal, topic)


@app.command("status")
def status(
    journal: JournalOption = None,
    ruleset: Annotated[str | None, typer.Option("--rules", help="Only this rule set (its name).")] = None,
) -> None:
    """Pending delayed sends, counts per rule and consumer lag, from the journal."""
    state = get_state()
    t = state.terminal
    path = journal or _configured_journal(state)
    if not path.exists():
        raise InputError(
            "no journal here yet", file=path, field="--journal", hint="run `pushctl trigger run` first"
        )
    with Journal(path) as j:
        report = j.trigger_status(ruleset)
    if t.json:
        for rule in report.rules:
            t.json_line(rule.to_dict())
        for consumer in report.consumers:
            t.json_line(consumer.to_dict())
        return
    _status_tables(t, report)


def _configured_journal(state: State) -> Path:
    with contextlib.suppress(InputError):
        profile = resolve_profile(state.config_path, state.profile)
        if profile.sender.journal:
            return profile.sender.journal
    return default_journal_file()


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def _status_tables(t: Terminal, report: Any) -> None:
    if not report.rules and not report.consumers:
        t.print("no trigger activity in this journal")
        return
    rows = []
    notes = []
    for r in report.rules:
        counts = r.counts
        if not r.rule:  # the rule set's own line: events seen, redelivered, dead letters
            parts = [
                f"{counts.get(k, 0):,} {k.replace('_', ' ')}"
                for k in ("events", "redelivered", "dead_letter")
            ]
            notes.append(f"{r.ruleset}: " + ", ".join(parts))
            continue
        sent = {k.split(":", 2)[1]: v for k, v in counts.items() if k.startswith("sent:")}
        skipped = ", ".join(
            f"{k.split(':', 1)[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("skipped:")
        )
        pending = f"{r.pending:,}" + (f" (next {_when(r.next_due)[5:16]})" if r.next_due else "")
        if r.deferred:
            pending += f" +{r.deferred} quiet"
        other = sum(v for k, v in sent.items() if k != "delivered")
        rows.append(
            (
                f"{r.ruleset}/{r.rule}",
                counts.get("fired", 0),
                sent.get("delivered", 0),
                other,
                pending,
                skipped,
            )
        )
    t.table(
        ["rule", "fired", "sent", "not sent", "pending", "skipped"],
        rows,
        title="trigger rules",
        caption="; ".join(notes) or None,
    )
    if report.consumers:
        t.table(
            ["consumer", "source", "pid", "status", "events", "lag", "last seen"],
            [
                (
                    f"{c.ruleset}/{c.consumer}",
                    c.source,
                    c.pid,
                    c.status,
                    c.events,
                    "" if c.lag is None else c.lag,
                    _when(c.seen_at)[5:19],
                )
                for c in report.consumers
            ],
            title="consumers",
        )


def register(root: typer.Typer) -> None:
    """Add `pushctl trigger`."""
    root.add_typer(app, name="trigger", help=HELP)
