"""The results view shared by the end of ``pushctl send`` and ``pushctl runs show``.

Table mode: a per-device table (failures first, capped), then summary tables and one line of
duration and throughput. JSON mode: one ``{"type": "result"}`` object per device, then the
``{"type": "summary"}`` object, and nothing else on stdout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from rich.table import Table
from rich.text import Text

from pushctl.cli.console import Terminal
from pushctl.delivery import Summary
from pushctl.outcome import Outcome, Result
from pushctl.runtime import dumps_compact

Show = Literal["all", "failures", "none"]

OUTCOME_STYLES: dict[str, str] = {
    Outcome.DELIVERED: "green",
    Outcome.INVALID_TOKEN: "yellow",
    Outcome.REJECTED: "red",
    Outcome.FAILED: "red",
    Outcome.AUTH_FAILED: "bold red",
    Outcome.SKIPPED: "dim",
    Outcome.DEFERRED: "cyan",
}

# Summary rows list failures before successes, each group in enum order.
_OUTCOME_ORDER = {str(o): (o.is_success, i) for i, o in enumerate(Outcome)}


def short_token(token: str) -> str:
    """``abcd…1234`` for long tokens; short ones unchanged."""
    return token if len(token) <= 12 else f"{token[:4]}…{token[-4:]}"


def result_json_line(result: Result) -> dict[str, Any]:
    """The JSON object for one device (``Result.to_dict()`` plus ``"type": "result"``)."""
    return {"type": "result", **result.to_dict()}


def result_json_text(result: Result) -> str:
    """:func:`result_json_line` encoded, with its newline (what a ``--workers`` worker sends up)."""
    return dumps_compact(result_json_line(result)).decode() + "\n"  # as pushctl.cli.result_sink


def _outcome_text(outcome: str) -> Text:
    return Text(outcome, style=OUTCOME_STYLES.get(outcome, ""))


def show_results(
    terminal: Terminal,
    results: Iterable[Result],
    summary: Summary,
    *,
    show: Show = "failures",
    limit: int = 50,
    campaign_id: str | None = None,
) -> None:
    """Print the per-device results and the summary, as a table or as JSON Lines.

    ``results`` may be in any order and arbitrarily long: table mode keeps at most ``limit``
    rows of each kind in memory. JSON mode writes every device unless ``show`` is ``none``
    (scripts want the full record; ``--show`` only trims what a person reads).
    """
    if terminal.json:
        if show != "none":
            for result in results:
                terminal.json_line(result_json_line(result))
        terminal.json_line(summary.to_dict())
        return
    if show != "none":
        _device_table(terminal, results, show=show, limit=limit, campaign_id=campaign_id or summary.campaign)
    write_summary(terminal, summary)


def _device_table(
    terminal: Terminal, results: Iterable[Result], *, show: Show, limit: int, campaign_id: str | None
) -> None:
    failures: list[Result] = []
    successes: list[Result] = []
    eligible = 0
    for result in results:
        failed = not result.outcome.is_success
        if not failed and show == "failures":
            continue
        eligible += 1
        bucket = failures if failed else successes
        if len(bucket) < limit:
            bucket.append(result)
    rows = (failures + successes)[:limit]
    if not rows:
        terminal.print("no failures" if show == "failures" else "no devices")
        return
    # No outer edge and short numeric headers ("tries", "ms" = latency in milliseconds): the
    # longest reason (DeviceTokenNotForTopic) then fits unbroken on an 80-column terminal.
    title = "Failures" if show == "failures" else "Devices"
    table = Table(title=title, title_justify="left", show_edge=False)
    for name in ("token", "platform", "outcome", "reason", "tries", "ms"):
        justify: Literal["left", "right"] = "right" if name in ("tries", "ms") else "left"
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        table.add_row(
            Text(short_token(r.token)),
            Text(str(r.platform)),
            _outcome_text(str(r.outcome)),
            Text(r.reason),
            str(r.attempts),
            f"{r.latency_ms:,.0f}",
        )
    terminal.out.print(table)
    more = eligible - len(rows)
    if more > 0:
        where = f"pushctl runs export {campaign_id}" if campaign_id else "pushctl runs export ID"
        terminal.out.print(Text(f"… {more:,} more rows: see `{where}`"))


def write_summary(terminal: Terminal, summary: Summary) -> None:
    """The summary alone: tables and a totals line, or the final JSON object."""
    if terminal.json:
        terminal.json_line(summary.to_dict())
        return
    table = Table(title="Summary", title_justify="left")
    table.add_column("outcome")
    table.add_column("reason", overflow="fold")
    table.add_column("devices", justify="right")
    table.add_column("%", justify="right")
    total = summary.total or 1
    for (outcome, reason), count in sorted(
        summary.reasons.items(), key=lambda kv: (_OUTCOME_ORDER.get(kv[0][0], (True, 99)), -kv[1], kv[0][1])
    ):
        table.add_row(_outcome_text(outcome), Text(reason), f"{count:,}", f"{100 * count / total:.1f}")
    if summary.reasons:
        terminal.out.print(table)
    if len(summary.by_platform) > 1:
        _breakdown_table(terminal, "By platform", "platform", summary.by_platform)
    if summary.by_variant:
        _breakdown_table(terminal, "By variant", "variant", summary.by_variant)
    terminal.out.print(Text(_totals_line(summary)))


def _breakdown_table(terminal: Terminal, title: str, label: str, groups: dict[str, Counter[str]]) -> None:
    present = sorted({o for c in groups.values() for o in c}, key=lambda o: _OUTCOME_ORDER[o])
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    table.add_column("devices", justify="right")
    for outcome in present:
        table.add_column(outcome, justify="right")
    for name, counts in sorted(groups.items()):
        table.add_row(Text(name), f"{sum(counts.values()):,}", *(f"{counts[o]:,}" for o in present))
    terminal.out.print(table)


def _totals_line(summary: Summary) -> str:
    timing = f"in {summary.duration():.1f} s ({summary.throughput():,.0f}/s)"
    if summary.session_total is None or summary.session_total == summary.total:
        totals = f"{summary.total:,} devices {timing}"
    else:  # a resumed campaign: the time is the last run's, and so must be the count it is divided into
        totals = f"{summary.total:,} devices; the last run settled {summary.session_total:,} {timing}"
    parts = [totals, f"{summary.retries:,} retries"]
    if summary.campaign:
        parts.insert(0, f"campaign {summary.campaign}")
    if summary.stopped_reason:
        parts.append(f"stopped: {summary.stopped_reason}")
    return ", ".join(parts)
