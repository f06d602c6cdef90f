"""`pushctl runs report`: a campaign's funnel, rates with 95% intervals, and its A/B verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from pushctl.cli.console import Terminal
from pushctl.cli.state import get_state

if TYPE_CHECKING:
    from pushctl.insights import CampaignReport, Funnel, Rate

REPORT_HELP = """A campaign's funnel and A/B verdict: targeted, sent, delivered, opened, converted.

Per platform and per variant, with open and conversion rates and their Wilson 95% intervals; for
two variants a two-proportion z-test, for more a chi-squared test: the p-value, the lift of the
leader with its interval, and a sentence (or how many more deliveries per variant would detect a
10% lift). Opens and conversions come from `pushctl engage import`. --output json gives the same
figures; --html writes one self-contained page with charts (needs pip install 'pushctl[report]').
"""


def report_cmd(
    campaign_id: Annotated[str, typer.Argument(metavar="ID", help="Campaign id (see `pushctl runs list`).")],
    metric: Annotated[
        Literal["opens", "conversions"], typer.Option("--metric", help="What the A/B verdict compares.")
    ] = "opens",
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report with charts here.")
    ] = None,
    journal_opt: Annotated[
        Path | None,
        typer.Option(
            "--journal", envvar="PUSHCTL_JOURNAL", help="Journal database (default: user data dir)."
        ),
    ] = None,
) -> None:
    from pushctl.cli.journals import resolve_journals
    from pushctl.insights import build_report
    from pushctl.journal import Journal

    state = get_state()
    terminal = state.terminal
    path = resolve_journals(str(journal_opt) if journal_opt is not None else None, state)[0]
    with Journal(path) as journal:
        data = journal.engagement_data(campaign_id)
    report = build_report(data, metric)
    if html is not None:
        from pushctl.insights import write_html

        write_html(report, html)
        terminal.info(f"wrote the HTML report to {html}")
    if terminal.json:
        terminal.json_line(report.to_dict())
        return
    show_report(terminal, report)


def _rate(rate: Rate) -> tuple[str, str]:
    from pushctl.insights import percent

    if not rate.trials:
        return "–", ""
    low, high = rate.interval
    return percent(rate.value), f"{percent(low)}–{percent(high)}"


def _groups(report: CampaignReport) -> list[list[Funnel]]:
    groups = [[report.total, *report.platforms] if len(report.platforms) > 1 else [report.total]]
    if report.variants:
        groups.append(report.variants)
    if report.rollout is not None:
        groups.append([report.rollout])
    return groups


def _label(report: CampaignReport, funnel: Funnel) -> str:
    return f"variant {funnel.label}" if funnel in report.variants else funnel.label


def show_report(terminal: Terminal, report: CampaignReport) -> None:
    """The report as tables and sentences on stdout (80 columns: counts, then rates)."""
    out = terminal.out
    counts = Table(title=f"Funnel: campaign {report.campaign_id}", title_justify="left", show_edge=False)
    rates = Table(title="Rates (Wilson 95% intervals)", title_justify="left", show_edge=False)
    counts.add_column("devices")
    for name in ("targeted", "sent", "delivered", "opened", "converted"):
        counts.add_column(name, justify="right")
    rates.add_column("devices")
    for name in ("delivered", "open rate", "95% CI", "conversion", "95% CI"):
        rates.add_column(name, justify="right")
    for i, group in enumerate(_groups(report)):
        if i:
            counts.add_section()
            rates.add_section()
        for f in group:
            label = Text(_label(report, f))
            counts.add_row(
                label, *(f"{n:,}" for n in (f.targeted, f.sent, f.delivered, f.opened, f.converted))
            )
            rates.add_row(label, f"{f.delivered:,}", *_rate(f.open_rate), *_rate(f.conversion_rate))
    out.print(counts)
    out.print(rates)
    if report.total.dismissed:
        out.print(Text(f"dismissed: {report.total.dismissed:,} devices"))
    if report.ab_test:
        ab = report.ab_test
        line = f"A/B test: {100 * ab['fraction']:g}% of the devices got the variants"
        line += (
            f"; winner `{ab['winner']}` sent to the rest" if ab["winner"] else "; the rest wait for a winner"
        )
        out.print(Text(line))
    if report.verdict is not None:
        out.print(Text(f"Verdict: {report.verdict.sentence}"))
    elif report.variants:
        out.print(Text("Verdict: one variant only was delivered: nothing to compare"))


def register(runs_app: typer.Typer) -> None:
    """Add ``runs report`` to the runs group."""
    runs_app.command("report", help=REPORT_HELP)(report_cmd)
