"""`pushctl send`: the campaign send, with live progress and per-device results."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import typer

from pushctl import clock
from pushctl.audience import Segment, count_rows
from pushctl.campaign import (
    CampaignReport,
    CampaignSpec,
    Cap,
    Controls,
    Hooks,
    LocalTimeSlot,
    QuietHours,
    SuppressionList,
    bad_zone_reason,
    check_start_time,
    parse_at,
    parse_duration,
    run_scaled,
    workers_for,
)
from pushctl.cli.console import Terminal
from pushctl.cli.dry_run import dry_run
from pushctl.cli.metrics_opts import METRICS_FILE_HELP, send_metrics, with_metrics
from pushctl.cli.progress import SendProgress, countdown, event_printer
from pushctl.cli.result_sink import ResultSink
from pushctl.cli.results_view import show_results
from pushctl.cli.send_insights import ab_setup, best_time, check_best_fallback, explain
from pushctl.cli.send_scale import SHARD_HELP, WORKERS_HELP, devices_in, scale_hooks
from pushctl.cli.state import State, get_state
from pushctl.config import Profile, resolve_profile
from pushctl.delivery import InvalidTokenFile, ResultFile, Sender, SendOptions
from pushctl.errors import ExitCode, InputError
from pushctl.insights import PreferenceFile, Preferences
from pushctl.journal import Journal
from pushctl.metrics import MetricsFile
from pushctl.paths import default_journal_file, exposure_warning
from pushctl.runtime import run as run_loop
from pushctl.scale import Shard

if TYPE_CHECKING:
    from pushctl.emulator import Emulator

Show = Literal["all", "failures", "none"]
Fmt = Literal["csv", "jsonl", "text"]
BadRowMode = Literal["fail", "skip"]

HELP = """Send a personalised campaign to every device of an audience.

Renders TEMPLATE for each audience row, sends through APNs, FCM, Web Push and HMS side by
side, shows live progress, and ends with a per-device table and a summary (JSON Lines with
--output json).
Every send is recorded in the journal (--emulator alone uses a scratch one): re-running the
same command continues the campaign without sending any device twice (see `pushctl runs`).

Try it on the built-in emulator:

  pushctl send samples/templates/welcome.yaml --audience samples/audience.csv --emulator
"""


@contextlib.contextmanager
def _emulator_profile(state_dir: Path | None) -> Iterator[tuple[Profile, Path]]:
    """Start the built-in emulator in-process; yield its profile and a scratch directory."""
    with in_process_emulator(state_dir) as (profile, scratch, _emulator):
        yield profile, scratch


@contextlib.contextmanager
def in_process_emulator(state_dir: Path | None) -> Iterator[tuple[Profile, Path, Emulator]]:
    """Start the built-in emulator in-process; yield its profile, a scratch directory and the
    emulator itself (its inbox: what each device received)."""
    from pushctl.emulator import Emulator

    with tempfile.TemporaryDirectory(prefix="pushctl-emulator-") as tmp:
        scratch = Path(tmp)
        with Emulator(state_dir or scratch / "state") as emulator:
            config = emulator.write_profile(scratch / "config.toml")
            yield resolve_profile(config, "emulator"), scratch, emulator


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    problem = bad_zone_reason(name)
    if problem:
        raise InputError(problem, field="--default-timezone")  # the reason already says what to use
    return ZoneInfo(name)


def _controls(profile: Profile, o: dict[str, Any], template_path: Path) -> Controls:
    sender = profile.sender
    quiet = o["quiet_hours"] or sender.quiet_hours
    cap = o["cap"] or sender.cap
    local_window = parse_duration(o["local_window"], field="--local-window")
    controls = Controls(
        where=Segment.parse(o["where"]) if o["where"] else None,
        suppression=SuppressionList.load(o["suppress"]) if o["suppress"] else None,
        skip_known_invalid=o["skip_known_invalid"],
        cap=Cap.parse(cap) if cap else None,
        quiet_hours=QuietHours.parse(quiet) if quiet else None,
        local_time=(
            LocalTimeSlot.parse(o["local_time"], local_window) if o["local_time"] not in (None, "best")
            else None
        ),
        best_time=best_time(o, local_window),
        default_zone=_zone(o["default_timezone"] or sender.default_timezone),
        preferences=Preferences(
            file=PreferenceFile.load(o["preferences"]) if o["preferences"] else None,
            mandatory=profile.preferences.mandatory,
        ),
    )
    return controls


def _identity(o: dict[str, Any]) -> dict[str, Any]:
    """Options that make a different campaign (the rest may change on resume)."""
    keys = ("where", "validate_only", "local_time", "ab_test")
    return {k: o[k] for k in keys if o[k]}


def _sink(terminal: Terminal, sink: ResultSink) -> Hooks:
    on_event = event_printer(terminal)

    def on_start(campaign_id: str, resumed: bool, _sender: Sender | None) -> None:
        verb = "continuing" if resumed else "campaign"
        terminal.info(f"{verb} {campaign_id}")

    return Hooks(on_result=sink.add, on_event=on_event, on_start=on_start, flush=sink.flush)


def _present(state: State, report: CampaignReport, journal_path: Path, show: Show, limit: int) -> None:
    t = state.terminal
    if report.bad_row_count:
        t.warn(
            f"{report.bad_row_count:,} bad audience rows skipped"
            + "".join(f"\n  {row}" for row in report.bad_rows[:10])
        )
    if report.duplicates:
        t.info(f"{report.duplicates:,} duplicate tokens collapsed into one send each")
    stats = report.pipeline
    if stats.already_settled:
        t.info(f"{stats.already_settled:,} devices were already settled by an earlier run (not sent again)")
    if stats.filtered:
        t.info(f"{stats.filtered:,} devices did not match --where")
    for reason, when in sorted(stats.deferred_until.items()):
        t.info(f"deferred ({reason}): run again after {when.isoformat()} to send them")
    if t.json:
        summary = report.campaign.to_dict()
        # Rows that never became devices are not in the journal; count them here for scripts.
        summary["audience"] = {
            "bad_rows": report.bad_row_count,
            "duplicates": report.duplicates,
            "already_settled": stats.already_settled,
            "filtered": stats.filtered,
        }
        summary["this_run"] = {k: v for k, v in report.this_run.counts.items() if v}
        t.json_line(summary)
        return
    with Journal(journal_path) as journal:
        show_results(
            t,
            journal.results(report.campaign_id, failures_first=True),
            report.campaign,
            show=show,
            limit=limit,
            campaign_id=report.campaign_id,
        )


def send(
    template: Annotated[Path, typer.Argument(help="YAML template.", show_default=False)],
    audience: Annotated[
        str, typer.Option("--audience", "-a", help="Audience file (CSV, JSONL, text) or - for stdin.")
    ],
    fmt: Annotated[
        Fmt | None, typer.Option("--format", "-f", help="Audience format (default: by extension).")
    ] = None,
    on_bad_row: Annotated[
        BadRowMode, typer.Option(help="Stop at the first bad row, or skip and count it.")
    ] = "fail",
    emulator: Annotated[
        bool, typer.Option(
            "--emulator",
            help="Send to a fresh built-in emulator (sample credentials) with a scratch journal "
            "unless --journal is given.",
        )
    ] = False,
    emulator_state: Annotated[
        Path | None, typer.Option("--emulator-state", help="State dir for --emulator.")
    ] = None,
    dry_run_: Annotated[
        bool, typer.Option("--dry-run", help="Render and validate everything; send nothing.")
    ] = False,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="FCM validate_only: checked, not delivered.")
    ] = False,
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="Campaign id (default: derived and printed).")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", envvar="PUSHCTL_JOURNAL", help="Journal database.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Continue a campaign although its template/audience changed.")
    ] = False,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Requests in flight per provider.")] = None,
    rate: Annotated[float | None, typer.Option(min=0, help="At most N notifications per second.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, help="Attempts per device (retries + 1).")
    ] = None,
    max_connections: Annotated[int, typer.Option(min=1, help="HTTP/2 connections per provider.")] = 4,
    results: Annotated[
        Path | None, typer.Option("--results", help="Write per-device results (.csv or .jsonl) as they come.")
    ] = None,
    invalid_tokens: Annotated[
        Path | None, typer.Option("--invalid-tokens", help="Write the invalid tokens (prune list).")
    ] = None,
    show: Annotated[Show, typer.Option(help="Per-device rows in the final table (failures first).")] = "all",
    limit: Annotated[int, typer.Option(min=0, help="At most N rows in the per-device table.")] = 50,
    where: Annotated[str | None, typer.Option("--where", help="Only rows matching this expression.")] = None,
    suppress: Annotated[
        list[Path] | None, typer.Option("--suppress", help="Opt-out list (tokens / user ids); repeatable.")
    ] = None,
    preferences: Annotated[
        Path | None,
        typer.Option("--preferences", help="Users' choices per category (CSV/JSONL: user_id or token, "
                     "category, opted_in): opted out of the template's category → skipped (preference)."),
    ] = None,
    skip_known_invalid: Annotated[
        bool, typer.Option(help="Skip tokens an earlier run found invalid.")
    ] = False,
    cap: Annotated[
        str | None, typer.Option("--cap", help="Frequency cap across campaigns, e.g. 3/24h.")
    ] = None,
    quiet_hours: Annotated[
        str | None, typer.Option("--quiet-hours", help="Defer devices inside e.g. 22:00-08:00 local.")
    ] = None,
    local_time: Annotated[
        str | None,
        typer.Option(
            "--local-time", help="Deliver at HH:MM in each device's time zone, or best: at the hour its user "
            "most often opens pushes (--best-fallback for users without enough opens)."
        ),
    ] = None,
    best_fallback: Annotated[
        str, typer.Option("--best-fallback", help="With --local-time best: the slot of users with few opens.")
    ] = "09:00",
    best_min_opens: Annotated[
        int, typer.Option("--best-min-opens", min=1, help="Opens (60 days) before a user's own hour is used.")
    ] = 3,
    local_window: Annotated[
        str, typer.Option("--local-window", help="How long after the local slot a device is still due.")
    ] = "1h",
    default_timezone: Annotated[
        str | None, typer.Option("--default-timezone", help="Zone for rows without one.")
    ] = None,
    spread: Annotated[
        str | None, typer.Option("--spread", help="Spread the sends evenly over e.g. 30m.")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Start at this time (ISO 8601 with offset).")] = None,
    now: Annotated[bool, typer.Option("--now", help="With --at in the past: send now anyway.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="With --local-time/--quiet-hours: keep running until every device is sent."
        ),
    ] = False,
    ab_test: Annotated[
        str | None,
        typer.Option("--ab-test", metavar="PERCENT", help="Send the variants to a stable random share "
                     "(e.g. 10%); hold the rest back (deferred, ab_holdout) for --winner-of."),
    ] = None,
    winner_of: Annotated[
        str | None,
        typer.Option("--winner-of", metavar="CAMPAIGN", help="Send the winning variant of that --ab-test "
                     "campaign to the devices it held back (same campaign and journal)."),
    ] = None,
    metric: Annotated[
        Literal["opens", "conversions"], typer.Option("--metric", help="What --winner-of compares.")
    ] = "opens",
    if_no_winner: Annotated[
        str, typer.Option("--if-no-winner", metavar="best|wait|VARIANT",
                          help="--winner-of without a significant winner: send the leader, hold on, or this.")
    ] = "best",
    workers: Annotated[str, typer.Option("--workers", metavar="N|auto", help=WORKERS_HELP)] = "auto",
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="I/N", envvar="PUSHCTL_SHARD", help=SHARD_HELP)
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", metavar="PATH.prom", help=METRICS_FILE_HELP)
    ] = None,
) -> None:
    state = get_state()
    o = dict(
        where=where,
        suppress=suppress or [],
        preferences=preferences,
        skip_known_invalid=skip_known_invalid,
        cap=cap,
        quiet_hours=quiet_hours,
        local_time=local_time,
        best_fallback=best_fallback,
        best_min_opens=best_min_opens,
        local_window=local_window,
        default_timezone=default_timezone,
        validate_only=validate_only,
        ab_test=ab_test,
    )
    at_time = parse_at(at) if at else None
    check_start_time(at_time, allow_past=now)
    with contextlib.ExitStack() as stack:
        if emulator:
            profile, scratch = stack.enter_context(_emulator_profile(emulator_state))
            journal_path = journal or scratch / "journal.sqlite3"
        else:
            profile = resolve_profile(state.config_path, state.profile)
            journal_path = journal or profile.sender.journal or default_journal_file()
        ab = ab_setup(state.terminal, template, journal_path, ab_test=ab_test, winner_of=winner_of,
                      campaign=campaign, metric=metric, if_no_winner=if_no_winner)  # fmt: skip
        if ab.hold is not None:
            state.terminal.info(f"no winner for {winner_of} yet: {ab.hold}; nothing sent")
            raise typer.Exit(0)
        campaign = ab.campaign_id
        controls = _controls(profile, o, template)
        controls.ab = ab.plan
        check_best_fallback(controls.best_time, controls.quiet_hours)
        slot, quiet = controls.local_time, controls.quiet_hours
        if slot is not None and quiet is not None and slot.blocked_by(quiet):
            raise InputError(
                f"--local-time {local_time} lies entirely inside the quiet hours: no device would be sent",
                field="--local-time",
                hint="pick a slot outside the quiet hours, or widen --local-window",
            )
        if dry_run_:
            raise typer.Exit(
                dry_run(
                    state.terminal,
                    template,
                    audience,
                    fmt,
                    on_bad_row,
                    profile,
                    controls,
                    validate_only,
                    campaign,
                    _identity(o),
                )
            )
        cut = Shard.parse(shard) if shard else Shard()
        rows = count_rows(audience, None)
        n_workers = workers_for(workers, rows)
        total = devices_in(rows, cut)
        spread_rate = None
        if spread:
            window = parse_duration(spread, field="--spread")
            if total is None:
                raise InputError(
                    "--spread needs an audience file, not stdin",
                    field="--spread",
                    hint="pace a stream with --rate",
                )
            spread_rate = max(total, 1) / max(window.total_seconds(), 1.0)
            state.terminal.info(
                f"--spread {spread}: {total:,} devices at {spread_rate:.3g}/s "
                f"(one every {1 / spread_rate:.3g} s)"
            )
        send_rate = (
            min(r for r in (rate, spread_rate, profile.sender.rate) if r)
            if (rate or spread_rate or profile.sender.rate)
            else None
        )
        attempts = max_attempts or profile.sender.max_attempts
        conc = concurrency or profile.sender.concurrency
        options = SendOptions(
            # HMS requests carry up to 1,000 devices each: its own default (a few in flight) stays.
            concurrency={"apns": conc, "fcm": conc, "webpush": conc} if conc else {},
            rate=send_rate,
            max_attempts=attempts,
        )
        spec = CampaignSpec(
            template=template,
            audience=audience,
            profile=profile,
            journal_path=journal_path,
            audience_format=fmt,
            on_bad_row=on_bad_row,
            campaign_id=campaign,
            force=force,
            send=options,
            validate_only=validate_only,
            max_connections=max_connections,
            controls=controls,
            identity=_identity(o),
            shard=cut,
            workers=n_workers,
        )
        metrics = send_metrics(metrics_file, cut)
        files: list[ResultFile | InvalidTokenFile] = []
        for path, what in ((results, "results file"), (invalid_tokens, "prune list")):
            if path is not None and (warning := exposure_warning([path], what)):
                state.terminal.warn(warning)
        if results:
            files.append(stack.enter_context(contextlib.closing(ResultFile(results))))
        if invalid_tokens:
            files.append(stack.enter_context(contextlib.closing(InvalidTokenFile(invalid_tokens))))
        code = run_loop(
            with_metrics(metrics, _run(state, spec, files, total, at_time, wait, metrics), lambda rc: rc[1])
        )
        report, exit_code = code
        _present(state, report, journal_path, show, limit)
        if not state.terminal.json and (ab.plan is not None or o["local_time"] == "best"):
            with Journal(journal_path) as j:
                explain(state.terminal, j, report.campaign_id)
    raise typer.Exit(int(exit_code))


async def _run(
    state: State,
    spec: CampaignSpec,
    files: list[ResultFile | InvalidTokenFile],
    total: int | None,
    at_time: Any,
    wait: bool,
    metrics: MetricsFile | None = None,
) -> tuple[CampaignReport, ExitCode]:
    t = state.terminal
    if at_time is not None:
        await _wait_until(t, at_time)
    while True:
        progress = SendProgress(t, total)
        sink = ResultSink(t, progress, files)
        async with progress.live():
            try:
                hooks = scale_hooks(_sink(t, sink), spec, t, progress, files, metrics)
                report = await run_scaled(spec, hooks)
            finally:
                sink.close()
        pending = report.pipeline.deferred_until
        if not wait or not pending or report.stopped_reason:
            break
        until = min(pending.values())
        t.info(f"waiting until {until.isoformat()} for deferred devices (--wait)")
        await _wait_until(t, until)
        # Real waiting only makes sense with a real clock; a pinned PUSHCTL_NOW would loop.
        if clock.now() < until:
            break
    # The exit code speaks for the whole campaign (a cron re-run that had nothing left to send
    # still reports the invalid tokens it found earlier), stopped or not.
    report.campaign.stopped_reason = report.stopped_reason
    return report, report.campaign.exit_code()


async def _wait_until(t: Terminal, until: Any) -> None:
    """Count down to ``until``; with a pinned ``PUSHCTL_NOW`` the clock never gets there, so don't wait."""
    if os.environ.get(clock.ENV_VAR) and clock.now() < until:
        pinned = clock.now().isoformat()
        t.warn(f"{clock.ENV_VAR} is fixed at {pinned}: not waiting until {until.isoformat()}")
        return
    await countdown(t, until, clock.now)


def register(app: typer.Typer) -> None:
    """Add `pushctl send`."""
    app.command("send", help=HELP)(send)
