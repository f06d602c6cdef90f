"""`pushctl tokens`: offline and online checks of an audience's device tokens."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from pushctl.audience import count_rows
from pushctl.checks import APNS_NOT_CHECKED, WEBPUSH_NOT_CHECKED, TokenFinding, TokenReport, check_audience
from pushctl.cli.console import Terminal
from pushctl.cli.state import State, get_state
from pushctl.errors import AuthRefused, ExitCode, InputError

if TYPE_CHECKING:
    from pushctl.checks import OnlineReport
    from pushctl.config import Profile
    from pushctl.metrics import MetricsFile

TABLE_LIMIT = 50

tokens_app = typer.Typer(
    name="tokens",
    help="Check device tokens without sending anything.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def shorten(token: str, keep: int = 4) -> str:
    """``abcd…1234`` for tokens too long for a table cell."""
    return token if len(token) <= 2 * keep + 1 else f"{token[:keep]}…{token[-keep:]}"


CHECK_HELP = f"""Check an audience's device tokens: offline, and with --online against the services.

Offline: malformed, duplicate, wrong-platform and odd-length tokens, and Web Push subscriptions'
endpoints and keys (nothing is sent).

--online then checks every token that passed: FCM and HMS tokens with a validate_only message
(their dry run: nothing is delivered; HMS 1,000 tokens a request). APNs tokens are
{APNS_NOT_CHECKED}. Web Push subscriptions are {WEBPUSH_NOT_CHECKED}.
With --apns-probe each APNs token gets a silent background push (content-available, no alert,
priority 5): a real push, answered Unregistered / BadDeviceToken / DeviceTokenNotForTopic when
the token is not valid. Token checks are not journaled.

Exits 1 when any token is invalid (malformed, wrong platform, or refused online) or could not
be checked, 3 when the service refused the credentials; duplicates and warnings alone exit 0.

Try it on the built-in emulator:

\b
  pushctl tokens check samples/audience-check.csv --online --apns-probe --emulator
"""


@tokens_app.command("check", help=CHECK_HELP)
def check(
    audience: Annotated[str, typer.Argument(help="Audience file (CSV, JSONL or text), or - for stdin.")],
    fmt: Annotated[
        Literal["csv", "jsonl", "text"] | None,
        typer.Option("--format", "-f", help="Audience format (default: by extension; sniffed for stdin)."),
    ] = None,
    prune_list: Annotated[
        Path | None,
        typer.Option("--prune-list", help="Write invalid tokens to this CSV (duplicates are not listed)."),
    ] = None,
    online: Annotated[
        bool,
        typer.Option("--online", help="Also ask FCM (validate_only) about every token that passed offline; "
                     f"APNs tokens are {APNS_NOT_CHECKED}."),
    ] = False,
    apns_probe: Annotated[
        bool,
        typer.Option("--apns-probe", help="With --online: send each APNs token a real silent background push "
                     "(APNs has no dry run)."),
    ] = False,
    rate: Annotated[
        float | None, typer.Option(min=0, help="With --online: at most N checks per second.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="With --online: checks in flight per provider.")
    ] = None,
    emulator: Annotated[
        bool, typer.Option("--emulator", help="With --online: check against the built-in emulator.")
    ] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file", metavar="PATH.prom",
            help="With --online: write Prometheus metrics (text format, atomically) to this .prom file "
            "as the check goes and at the end, for node_exporter's textfile collector.",
        ),
    ] = None,
) -> None:
    state = get_state()
    terminal = state.terminal
    if not online:
        for given, name in ((apns_probe, "--apns-probe"), (emulator, "--emulator"),
                            (rate is not None, "--rate"), (concurrency is not None, "--concurrency"),
                            (metrics_file is not None, "--metrics-file")):
            if given:
                raise InputError(f"{name} needs --online", field=name, hint="add --online")
        on_finding = (lambda f: terminal.json_line(f.to_dict())) if terminal.json else None
        report = check_audience(audience, fmt=fmt, prune_list=prune_list, on_finding=on_finding)
        if terminal.json:
            terminal.json_line(report.summary())
        else:
            _print_tables(terminal, report)
        if report.prune_list:
            terminal.info(f"{report.pruned} invalid token(s) written to {report.prune_list}")
        if not report.valid:
            raise typer.Exit(int(ExitCode.PARTIAL))
        return
    with contextlib.ExitStack() as stack:
        if emulator:
            from pushctl.cli.send_cmd import _emulator_profile

            profile, _scratch = stack.enter_context(_emulator_profile(None))
        else:
            from pushctl.config import resolve_profile

            profile = resolve_profile(state.config_path, state.profile)
        from pushctl.cli.metrics_opts import online_exit_code, tokens_metrics, with_metrics

        metrics = tokens_metrics(metrics_file, audience)
        online_report = asyncio.run(with_metrics(
            metrics,
            _check_online(state, profile, audience, fmt, prune_list, apns_probe, rate, concurrency, metrics),
            online_exit_code,
        ))
    _present_online(terminal, online_report)
    if online_report.auth_failure:
        raise AuthRefused(
            f"{online_report.auth_failure}; no further tokens were checked",
            hint="run `pushctl credentials check --online` to see what to fix",
        )
    if not online_report.ok:
        raise typer.Exit(int(ExitCode.PARTIAL))


async def _check_online(
    state: State,
    profile: Profile,
    audience: str,
    fmt: Literal["csv", "jsonl", "text"] | None,
    prune_list: Path | None,
    apns_probe: bool,
    rate: float | None,
    concurrency: int | None,
    metrics: MetricsFile | None = None,
) -> OnlineReport:
    from pushctl.checks import Finding, check_audience_online, finding_dict
    from pushctl.cli.credentials_cmd import password_source
    from pushctl.cli.progress import SendProgress, event_printer
    from pushctl.delivery import SendOptions

    terminal = state.terminal
    conc = concurrency or profile.sender.concurrency
    send_rate = rate if rate is not None else profile.sender.rate
    options = SendOptions(
        concurrency={"apns": conc, "fcm": conc, "webpush": conc} if conc else {},
        rate=send_rate or None,
        max_attempts=profile.sender.max_attempts,
    )

    def on_finding(finding: Finding) -> None:
        terminal.json_line(finding_dict(finding))

    on_event = event_printer(terminal)

    progress = SendProgress(terminal, count_rows(audience, fmt) if terminal.interactive else None)
    async with progress.live():
        return await check_audience_online(
            audience,
            profile,
            fmt=fmt,
            apns_probe=apns_probe,
            send=options,
            password=password_source(profile, terminal),
            prune_list=prune_list,
            on_finding=on_finding if terminal.json else None,
            on_settled=progress.add,
            on_event=on_event,
            tally=metrics.metrics.tally if metrics is not None else None,
        )


def _present_online(terminal: Terminal, report: OnlineReport) -> None:
    from pushctl.checks import NOT_CHECKED_REASONS, OnlineFinding, finding_dict

    offline = report.offline
    if terminal.json:
        terminal.json_line(report.summary())
    else:
        # Offline findings first, then the services' answers, each in line order.
        ordered = sorted(report.findings, key=lambda f: (isinstance(f, OnlineFinding), f.line))
        shown = ordered[:TABLE_LIMIT]
        if shown:
            caption = None
            if report.findings_total > len(shown):
                caption = f"first {len(shown)} of {report.findings_total} findings; use --output json for all"
            rows = []
            for f in shown:
                d = finding_dict(f)
                verdict = "invalid" if f.invalid else "not checked" if d["check"] == "online" else "warning"
                rows.append((f.line or "", shorten(f.token), f.platform or "", d["check"], verdict,
                             d["reason"], f.message))
            terminal.table(["line", "token", "platform", "check", "verdict", "reason", "message"], rows,
                           title=f"Findings in {offline.source}", caption=caption)
        summary: list[tuple[str, object]] = [
            ("rows", offline.rows),
            ("devices (well-formed, unique)", offline.devices),
            *((f"  {name}", count) for name, count in offline.platforms.items() if count),
            ("invalid tokens", report.invalid),
            ("  found offline", offline.invalid),
            ("  found online", report.invalid_online),
            *((f"    {reason}", n) for reason, n in sorted(report.reasons.items())),
            *((name, n) for name, n in offline.counts.items() if n),
            ("checked online", report.checked),
            ("  valid", report.valid),
            *((label, n) for label, n in (("  check refused (rejected)", report.rejected),
                                          ("  no verdict (failed)", report.failed)) if n),
            *((NOT_CHECKED_REASONS.get(key, key), n) for key, n in report.not_checked.items()),
        ]
        terminal.table(["", "count"], summary, title="Summary")
    apns_skipped = report.not_checked.get("apns_no_dry_run", 0)
    if apns_skipped:
        terminal.info(f"{apns_skipped} APNs token(s) {APNS_NOT_CHECKED}")
    for key, n in report.not_checked.items():
        if key == "webpush_no_dry_run":
            terminal.info(f"{n} Web Push subscription(s) {NOT_CHECKED_REASONS[key]}")
        elif key != "apns_no_dry_run":
            terminal.warn(f"{n} token(s) {NOT_CHECKED_REASONS.get(key, key)}")
    if report.unchecked:
        terminal.warn(f"{report.unchecked} token(s) could not be checked (see the findings)")
    if offline.prune_list:
        terminal.info(f"{report.pruned} invalid token(s) written to {offline.prune_list}")
    if report.ok and not report.auth_failure:
        terminal.info(f"no invalid tokens ({report.valid} checked online and valid)")


def _print_tables(terminal: Terminal, report: TokenReport) -> None:
    shown: list[TokenFinding] = report.findings[:TABLE_LIMIT]
    if shown:
        caption = None
        if report.findings_total > len(shown):
            caption = f"first {len(shown)} of {report.findings_total} findings; use --output json for all"
        terminal.table(
            ["line", "token", "platform", "problem", "message"],
            (
                (f.line or "", shorten(f.token), f.platform or "", f.problem, f.message)
                for f in shown
            ),
            title=f"Findings in {report.source}",
            caption=caption,
        )
    summary = report.summary()
    rows: list[tuple[str, object]] = [
        ("rows", report.rows),
        ("devices (well-formed, unique)", report.devices),
        *((f"  {name}", count) for name, count in report.platforms.items() if count),
        ("invalid tokens", report.invalid),
        *((name, summary[name]) for name in report.counts),
    ]
    terminal.table(["", "count"], rows, title="Summary")
    if report.valid:
        terminal.info("no invalid tokens" + (" (see warnings above)" if report.findings_total else ""))


def register(app: typer.Typer) -> None:
    """Add the ``tokens`` command group to the root app."""
    app.add_typer(tokens_app, name="tokens")
