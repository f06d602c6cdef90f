"""`pushctl tokens`: offline checks of an audience's device tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pushctl.cli.console import Terminal
from pushctl.cli.state import get_state
from pushctl.errors import ExitCode
from pushctl.tokencheck import TokenFinding, TokenReport, check_audience

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


@tokens_app.command("check")
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
) -> None:
    """Check an audience offline: malformed, duplicate, wrong-platform and odd-length tokens.

    Exits 1 when any token is invalid (malformed or wrong platform); duplicates and
    warnings alone exit 0.
    """
    terminal = get_state().terminal
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
