"""`pushctl runs`: list, show, export and prune-list the campaigns in the journal; prune old ones."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.table import Table
from rich.text import Text

from pushctl.cli.console import OutputFormat
from pushctl.cli.journals import (
    JournalsOption,
    expand_journals,
    open_campaign,
    require_journal_file,
    resolve_journals,
)
from pushctl.cli.results_view import result_json_line, show_results
from pushctl.cli.send_insights import explain
from pushctl.cli.state import get_state
from pushctl.delivery import RESULT_FIELDS
from pushctl.errors import InputError
from pushctl.journal import Journal, RunInfo
from pushctl.outcome import Outcome
from pushctl.paths import default_journal_file, exposure_warning, open_private

runs_app = typer.Typer(
    name="runs",
    help="Inspect campaign runs recorded in the journal.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OutOption = Annotated[Path | None, typer.Option("--out", help="Write to FILE instead of stdout.")]


class ShowChoice(StrEnum):
    ALL = "all"
    FAILURES = "failures"
    NONE = "none"


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


EXPORT_COLUMNS = RESULT_FIELDS
_COUNT_COLUMNS = ("devices", "delivered", "invalid", "failed", "other")


def journal_path(option: str | Path | None) -> Path:
    """``--journal``, else ``$PUSHCTL_JOURNAL`` (via Typer's envvar), else the default file."""
    return Path(option) if option is not None else default_journal_file()


@contextlib.contextmanager
def _journal(option: str | Path | None) -> Iterator[Journal | None]:
    # Reading must not create a journal where none was (a typo in --journal would otherwise
    # leave an empty database behind and report "no runs").
    path = journal_path(option)
    if not path.exists():
        yield None
        return
    require_journal_file(path)
    if warning := exposure_warning(Journal.files(path), "journal"):
        get_state().terminal.warn(warning)
    with Journal(path) as journal:
        yield journal


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@runs_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    journal_opt: JournalsOption = None,
) -> None:
    """Recent runs with their status and counts per outcome (of every journal a glob matches)."""
    terminal = get_state().terminal
    infos = []
    if journal_opt is not None and glob.has_magic(journal_opt):
        for path in expand_journals([journal_opt]):
            with _journal(str(path)) as journal:
                infos.extend(journal.list_runs(limit) if journal is not None else [])
        infos = sorted(infos, key=lambda i: i.started_at, reverse=True)[:limit]
    else:
        with _journal(journal_opt) as journal:
            infos = journal.list_runs(limit) if journal is not None else []
    if terminal.json:
        for info in infos:
            terminal.json_line(info.to_dict())
        return
    if not infos:
        terminal.info("no runs yet")
        return
    table = Table(title="Runs", title_justify="left")
    for name in ("campaign", "status", "started"):
        table.add_column(name, overflow="fold")
    for name in _COUNT_COLUMNS:
        table.add_column(name, justify="right")
    for info in infos:
        delivered = info.counts.get(Outcome.DELIVERED, 0)
        invalid = info.counts.get(Outcome.INVALID_TOKEN, 0)
        failed = sum(info.counts.get(o, 0) for o in (Outcome.FAILED, Outcome.REJECTED, Outcome.AUTH_FAILED))
        other = info.total - delivered - invalid - failed
        status = info.status if not info.stopped_reason else f"{info.status} ({info.stopped_reason})"
        if info.shard:
            status += f", shard {info.shard}"
        counts = (info.total, delivered, invalid, failed, other)
        started = _when(info.started_at)
        table.add_row(Text(info.campaign_id), Text(status), started, *(f"{n:,}" for n in counts))
    terminal.out.print(table)


@runs_app.command("show")
def show_cmd(
    campaign_id: Annotated[str, typer.Argument(metavar="ID", help="Campaign id (see `pushctl runs list`).")],
    show: Annotated[
        ShowChoice, typer.Option("--show", help="Which devices to list (failures first).")
    ] = ShowChoice.ALL,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most rows in the device table.")] = 50,
    journal_opt: JournalsOption = None,
) -> None:
    """The same per-device and summary view as the end of a send (of shard journals: their merge)."""
    terminal = get_state().terminal
    with open_campaign(journal_opt, campaign_id, terminal) as journal:
        info = journal.run_info(campaign_id)
        _say_shards(info)
        summary = journal.summary(campaign_id)
        if info.removed:
            why = f"pruned on {_when(info.pruned_at)}" if info.pruned_at else "forgotten"
            terminal.info(
                f"{info.removed:,} devices' rows were removed ({why}): counted in the summary, not listed"
            )
        explain(terminal, journal, campaign_id)
        if info.inflight:
            terminal.warn(
                f"{info.inflight:,} devices were in flight when the run stopped; "
                "resume the send with the same --campaign to finish them"
            )
        show_results(
            terminal,
            journal.results(campaign_id, failures_first=True),
            summary,
            show=show.value,
            limit=limit,
            campaign_id=campaign_id,
        )


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        stream = get_state().terminal.out.file
        yield stream
        stream.flush()
        return
    # Device tokens: a new file is private (0600) whatever the umask.
    with open_private(out, "w", encoding="utf-8", newline="") as handle:
        yield handle


@runs_app.command("export")
def export_cmd(
    campaign_id: Annotated[str, typer.Argument(metavar="ID", help="Campaign id.")],
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", "-f", help="csv or jsonl (default: from --out, else jsonl)."),
    ] = None,
    out: OutOption = None,
    journal_opt: JournalsOption = None,
) -> None:
    """Every settled device of a run, streamed as CSV or JSON Lines."""
    if fmt is None:
        fmt = ExportFormat.CSV if out is not None and out.suffix.lower() == ".csv" else ExportFormat.JSONL
    count = 0
    terminal = get_state().terminal
    with open_campaign(journal_opt, campaign_id, terminal) as journal, _output(out) as stream:
        _say_shards(journal.run_info(campaign_id))
        results = journal.results(campaign_id)
        if fmt is ExportFormat.CSV:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
            for result in results:
                row = result.to_dict()
                writer.writerow(["" if row[c] is None else row[c] for c in EXPORT_COLUMNS])
                count += 1
        else:
            for result in results:
                stream.write(json.dumps(result_json_line(result), ensure_ascii=False) + "\n")
                count += 1
    if out is not None:
        get_state().terminal.info(f"wrote {count:,} rows to {out}")


@runs_app.command("prune-list")
def prune_list_cmd(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(metavar="ID", help="Campaign id.")],
    out: OutOption = None,
    journal_opt: JournalsOption = None,
) -> None:
    """The run's invalid tokens, one per line, for your backend to delete.

    Plain text even when stdout is not a terminal (it is meant for files and pipes); with an
    explicit ``--output json`` each line is ``{"token": ...}`` instead.
    """
    explicit_json = ctx.find_root().params.get("output") == OutputFormat.JSON and out is None
    count = 0
    terminal = get_state().terminal
    with open_campaign(journal_opt, campaign_id, terminal) as journal, _output(out) as stream:
        _say_shards(journal.run_info(campaign_id))
        for token in journal.prune_list(campaign_id):
            stream.write(json.dumps({"token": token}) + "\n" if explicit_json else token + "\n")
            count += 1
    if out is not None:
        get_state().terminal.info(f"wrote {count:,} invalid tokens to {out}")


@runs_app.command("prune")
def prune_cmd(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Runs that ended longer ago than this (36h, 90d, 12w). "
            "Default: the profile's journal.retention.",
        ),
    ] = None,
    journal_opt: JournalsOption = None,
) -> None:
    """Delete the per-device rows of old runs, keeping their summaries; then shrink the file.

    Runs that ended (finished, stopped, or abandoned by a dead process) longer ago than AGE lose
    their per-device rows and user links (every table registered as personal data); runs list /
    runs show keep their counts. A run being sent is never touched. VACUUM then rewrites the file
    without the deleted data. Running it again removes nothing more. With journal.retention set
    in the profile, every pushctl send does the same first (without the VACUUM).
    """
    from pushctl.config import parse_age, resolve_profile

    state = get_state()
    terminal = state.terminal
    profile = resolve_profile(state.config_path, state.profile)
    if older_than is not None:
        age = parse_age(older_than, field="--older-than")
    elif profile.journal.retention_period is not None:
        age = profile.journal.retention_period
    else:
        raise InputError(
            "how old must a run be to lose its device rows?",
            field="--older-than",
            hint="give --older-than 90d, or set it once: pushctl config set journal.retention 90d",
        )
    reports = []
    for path in resolve_journals(journal_opt, state, profile):
        with Journal(path) as journal:
            reports.append(journal.prune(age))
    if terminal.json:
        for report in reports:
            terminal.json_line(report.to_dict())
        return
    terminal.table(
        ["journal", "runs pruned", "rows removed", "vacuum", "bytes"],
        [
            (r.journal, len(r.runs), r.total, r.vacuum, f"{r.size_before:,} -> {r.size_after:,}")
            for r in reports
        ],
        title=f"Pruned: runs that ended before {_when(reports[0].cutoff)}",
        caption="run summaries are kept (runs list / runs show)",
    )


def _say_shards(info: RunInfo) -> None:
    """What a shard's or a merge's run is a part of (stderr)."""
    terminal = get_state().terminal
    if info.shard:
        terminal.info(f"this journal holds shard {info.shard} of campaign {info.campaign_id} "
                      "(combine the shards with `pushctl runs merge`)")
    merged = info.merged_from
    if merged:
        count = merged.get("count", 0)
        shards = merged.get("shards", [])
        terminal.info(f"merged from {len(shards)} of {count} shard journals")
        missing = merged.get("missing") or []
        if missing:
            terminal.warn("missing: " + ", ".join(f"shard {i}/{count}" for i in missing))
        for shard in shards:
            if shard.get("status") != "completed" or shard.get("inflight"):
                terminal.warn(f"unfinished: shard {shard['shard']} in {shard['journal']}: {shard['status']}")


def register(app: typer.Typer) -> None:
    """Add the ``runs`` command group."""
    from pushctl.cli import runs_merge, runs_report

    runs_report.register(runs_app)
    runs_merge.register(runs_app)
    app.add_typer(runs_app, name="runs")
