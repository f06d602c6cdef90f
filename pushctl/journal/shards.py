"""Shards of a campaign in the journal: recording them, and ``runs merge`` combining them.

``send --shard I/N`` records ``"I/N"`` in its run's row and takes the shard's own lock, so the
shards of one campaign can keep their journals side by side in one directory (a shared volume)
or each on its machine's disk. A journal holds one shard of a campaign or all of it, never a
mix: :func:`check_shard` refuses the mix-ups (another shard, another N, a shard on top of the
whole campaign).

:func:`merge` copies the shards' rows into one journal as one campaign. It refuses shards of
different campaigns, templates, audiences or options, two journals claiming the same shard,
and any device that is not in the shard its journal says (the cut is
:func:`pushctl.scale.shard_of`); it says which shards are missing or unfinished, and the merged
run's status is then ``partial``. Merging again replaces the earlier merge.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pushctl.journal.reports as reports
from pushctl.errors import InputError
from pushctl.journal.lock import is_locked
from pushctl.scale import Shard, shard_of

__all__ = ["MergeReport", "ShardRun", "check_shard", "lock_name", "merge", "shard_runs"]

Transaction = Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]

# Tables merged by summing (the per-run counts of removed rows), and the run rows themselves.
_SUMMED = "run_tallies"
_SPECIAL = {"runs", _SUMMED}


def lock_name(campaign_id: str, shard: str | None) -> str:
    """The lock file of a campaign (``C.lock``) or of one of its shards (``C.shard-2-of-4.lock``)."""
    if shard is None:
        return f"{campaign_id}.lock"
    index, count = shard.split("/")
    return f"{campaign_id}.shard-{index}-of-{count}.lock"


def check_shard(
    path: Path, campaign_id: str, *, recorded: str | None, requested: str | None, merged: bool
) -> None:
    """Refuse to continue ``campaign_id`` as ``requested`` when the journal holds another part of it."""
    if recorded == requested:
        return
    where = f"the journal {path}"
    if recorded is None:
        what = "a merge of its shards" if merged else "the whole campaign"
        raise InputError(
            f"{where} holds {what} {campaign_id}, not shard {requested}",
            field="--shard",
            hint="give each shard its own --journal, or continue the whole campaign without --shard",
        )
    if requested is None:
        raise InputError(
            f"{where} holds shard {recorded} of campaign {campaign_id}",
            field="--shard",
            hint=f"continue it with --shard {recorded}, or combine the shards first: pushctl runs merge",
        )
    raise InputError(
        f"{where} holds shard {recorded} of campaign {campaign_id}, not shard {requested}",
        field="--shard",
        hint="give each shard its own --journal",
    )


@dataclass(slots=True)
class ShardRun:
    """One shard journal's run of the campaign being merged."""

    journal: Path
    shard: Shard
    info: reports.RunInfo

    @property
    def finished(self) -> bool:
        """Completed, with no device left in flight."""
        return self.info.status == "completed" and self.info.inflight == 0

    def state(self) -> str:
        """``completed``, or what keeps it from being finished (``abandoned, 12 in flight``)."""
        info = self.info
        text = info.status if not info.stopped_reason else f"{info.status} ({info.stopped_reason})"
        return text + (f", {info.inflight:,} in flight" if info.inflight else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": str(self.shard),
            "journal": str(self.journal),
            "status": self.info.status,
            "stopped": self.info.stopped_reason,
            "devices": self.info.total,
            "inflight": self.info.inflight,
            "finished_at": self.info.finished_at,
        }


@dataclass
class MergeReport:
    """What ``runs merge`` combined, and what it could not vouch for."""

    campaign_id: str
    into: Path
    count: int
    shards: list[ShardRun]
    missing: list[int] = field(default_factory=list)
    devices: int = 0

    @property
    def unfinished(self) -> list[ShardRun]:
        return [s for s in self.shards if not s.finished]

    @property
    def complete(self) -> bool:
        """Every shard present and finished."""
        return not self.missing and not self.unfinished

    def problems(self) -> list[str]:
        """One line per missing or unfinished shard (empty when complete)."""
        lines = []
        if self.missing:
            names = ", ".join(f"{i}/{self.count}" for i in self.missing)
            lines.append(
                f"missing: shard{'s' if len(self.missing) > 1 else ''} {names} (no journal given holds it)"
            )
        lines.extend(f"unfinished: shard {s.shard} in {s.journal}: {s.state()}" for s in self.unfinished)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "merge",
            "campaign": self.campaign_id,
            "into": str(self.into),
            "count": self.count,
            "shards": [s.to_dict() for s in self.shards],
            "missing": [f"{i}/{self.count}" for i in self.missing],
            "unfinished": [str(s.shard) for s in self.unfinished],
            "complete": self.complete,
            "devices": self.devices,
        }


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT 1 FROM runs LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a pushctl journal: {exc}", file=path) from None
    try:
        yield conn
    finally:
        conn.close()


def shard_runs(path: Path) -> list[tuple[str, str | None, bool]]:
    """``(campaign, shard or None, is a merge)`` for every run in the journal at ``path``."""
    with _read_only(path) as conn:
        rows = conn.execute("SELECT campaign_id, shard, merged_from IS NOT NULL FROM runs").fetchall()
    return [(cid, shard, bool(merged)) for cid, shard, merged in rows]


def _pick_campaign(sources: Sequence[Path], campaign_id: str | None) -> str:
    held = {path: {cid: shard for cid, shard, _ in shard_runs(path)} for path in sources}
    if campaign_id is not None:
        return campaign_id
    sharded = [{cid for cid, shard in runs.items() if shard is not None} for runs in held.values()]
    common = set.intersection(*sharded) if sharded else set()
    if len(common) == 1:
        return common.pop()
    if len(common) > 1:
        raise InputError(
            f"the journals hold shards of several campaigns ({', '.join(sorted(common))})",
            field="--campaign",
            hint="name the one to merge with --campaign",
        )
    listing = "; ".join(
        f"{path}: " + (", ".join(f"{shard} of {cid}" for cid, shard in runs.items() if shard) or "no shard")
        for path, runs in held.items()
    )
    raise InputError(
        f"these journals hold no shards of one same campaign ({listing})",
        hint="merge the shard journals of one campaign (send --shard I/N)",
    )


def _read_shard(path: Path, campaign_id: str) -> ShardRun:
    with _read_only(path) as conn:
        info = reports.run_info(conn, campaign_id)
    if info.shard is None:
        what = "a merge of its shards" if info.merged_from else "the whole campaign"
        raise InputError(
            f"{path} holds {what} {campaign_id}, not one shard", hint="merge shard journals only"
        )
    if info.status == "running" and not is_locked(path.parent / "locks" / lock_name(campaign_id, info.shard)):
        info.status = "abandoned"
    index, count = (int(x) for x in info.shard.split("/"))
    return ShardRun(path, Shard(index, count), info)


def _plan(sources: Sequence[Path], campaign_id: str | None) -> tuple[str, list[ShardRun], int]:
    if not sources:
        raise InputError("no shard journals to merge", hint="pushctl runs merge J1 J2 ... --into J")
    campaign = _pick_campaign(sources, campaign_id)
    runs = [_read_shard(path, campaign) for path in sources]
    first = runs[0]
    for run in runs[1:]:
        for what, a, b in (
            ("shard count", first.shard.count, run.shard.count),
            ("template", first.info.template_fp, run.info.template_fp),
            ("audience", first.info.audience_fp, run.info.audience_fp),
            ("options", first.info.options, run.info.options),
        ):
            if a != b:
                shown = (a, b) if what in ("shard count", "options") else (str(a)[:12], str(b)[:12])
                raise InputError(
                    f"shards of {campaign} with a different {what}: {first.journal} has {shown[0]}, "
                    f"{run.journal} has {shown[1]}",
                    hint="every shard must be the same campaign: same template, audience, options and N",
                )
    seen: dict[int, Path] = {}
    for run in runs:
        if run.shard.index in seen:
            raise InputError(
                f"shard {run.shard} of {campaign} is in both {seen[run.shard.index]} and {run.journal}",
                hint="give each shard journal once",
            )
        seen[run.shard.index] = run.journal
    return campaign, sorted(runs, key=lambda r: r.shard.index), first.shard.count


def _campaign_tables(conn: sqlite3.Connection, schema: str) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")]
    found = {}
    for table in tables:
        columns = [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]
        if "campaign_id" in columns:
            found[table] = columns
    return found


def _clear(conn: sqlite3.Connection, campaign_id: str) -> None:
    for table in _campaign_tables(conn, "main"):
        conn.execute(f"DELETE FROM main.{table} WHERE campaign_id = ?", (campaign_id,))


def _copy(conn: sqlite3.Connection, run: ShardRun, campaign_id: str) -> int:
    """Copy one shard's rows (in a transaction of the caller's); return its device rows."""
    shard = run.shard
    wrong, example = conn.execute(
        "SELECT COUNT(*), MIN(token) FROM src.devices "
        "WHERE campaign_id = ? AND pushctl_shard_of(?, token, ?) != ?",
        (campaign_id, campaign_id, shard.count, shard.index),
    ).fetchone()
    if wrong:
        raise InputError(
            f"{wrong:,} devices in {run.journal} are not in shard {shard} of {campaign_id} "
            f"(e.g. {example[:4]}…{example[-4:]})",
            hint="was this journal sent with another campaign id or shard count?",
        )
    ours = _campaign_tables(conn, "main")
    copied = 0
    for table, columns in _campaign_tables(conn, "src").items():
        if table in _SPECIAL or table not in ours:
            continue
        cols = ", ".join(c for c in columns if c in ours[table])
        before = conn.total_changes
        conn.execute(
            f"INSERT OR IGNORE INTO main.{table} ({cols}) "
            f"SELECT {cols} FROM src.{table} WHERE campaign_id = ?",
            (campaign_id,),
        )
        if table == "devices":
            copied = conn.total_changes - before
            (present,) = conn.execute(
                "SELECT COUNT(*) FROM src.devices WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
            if copied != present:
                raise InputError(
                    f"{present - copied:,} devices of {run.journal} are also in another shard's journal",
                    hint="every device belongs to exactly one shard: were the shards cut differently?",
                )
    if _SUMMED in ours:
        conn.execute(
            f"INSERT INTO main.{_SUMMED} (campaign_id, outcome, reason, variant, platform, devices, retries) "
            f"SELECT campaign_id, outcome, reason, variant, platform, devices, retries FROM src.{_SUMMED} "
            "WHERE campaign_id = ? ON CONFLICT (campaign_id, outcome, reason, variant, platform) "
            "DO UPDATE SET devices = devices + excluded.devices, retries = retries + excluded.retries",
            (campaign_id,),
        )
    return copied


def _run_row(campaign_id: str, runs: list[ShardRun], count: int, missing: list[int]) -> tuple[Any, ...]:
    infos = [r.info for r in runs]
    complete = not missing and all(r.finished for r in runs)
    finished = [i.finished_at for i in infos]
    reasons = [i.stopped_reason for i in infos if i.stopped_reason]
    stopped = "auth_failed" if "auth_failed" in reasons else (reasons[0] if reasons else None)
    pruned = [i.pruned_at for i in infos if i.pruned_at is not None]
    merged_from = {"count": count, "shards": [r.to_dict() for r in runs], "missing": missing}
    first = infos[0]
    return (
        campaign_id,
        first.template_fp,
        first.audience_fp,
        json.dumps(first.options, sort_keys=True, default=str),
        min(i.created_at for i in infos),
        min(i.started_at for i in infos),
        None if None in finished or not complete else max(f for f in finished if f is not None),
        "completed" if complete else "partial",
        stopped,
        max(i.runs_count for i in infos),
        max(pruned) if pruned else None,
        None,
        json.dumps(merged_from),
    )


def merge(
    conn: sqlite3.Connection,
    transaction: Transaction,
    into: Path,
    sources: Sequence[Path],
    campaign_id: str | None = None,
) -> MergeReport:
    """Combine the shard journals ``sources`` into the journal open on ``conn`` (at ``into``)."""
    sources = [Path(s) for s in sources]
    target = into.resolve()
    for path in sources:
        if path.resolve() == target:
            raise InputError(
                f"{path} is both a shard and the merge target",
                field="--into",
                hint="merge into a new journal",
            )
    campaign, runs, count = _plan(sources, campaign_id)
    existing = conn.execute("SELECT merged_from FROM runs WHERE campaign_id = ?", (campaign,)).fetchone()
    if existing is not None and existing[0] is None:
        raise InputError(
            f"{into} already holds campaign {campaign} (sent there, not merged): merging would mix them",
            field="--into",
            hint="merge into a new journal",
        )
    conn.create_function("pushctl_shard_of", 3, shard_of, deterministic=True)
    report = MergeReport(campaign, into, count, runs)
    report.missing = sorted(set(range(count)) - {r.shard.index for r in runs})
    with transaction():
        _clear(conn, campaign)
    try:
        for run in runs:
            conn.execute("ATTACH DATABASE ? AS src", (str(run.journal),))
            try:
                with transaction():
                    report.devices += _copy(conn, run, campaign)
            finally:
                conn.execute("DETACH DATABASE src")
        with transaction():
            conn.execute(
                f"INSERT INTO runs ({reports._RUN_COLUMNS}) VALUES ({','.join('?' * 13)})",
                _run_row(campaign, runs, count, report.missing),
            )
    except BaseException:
        # No half merge left behind: rows without their run row would look like a lost campaign.
        with transaction():
            _clear(conn, campaign)
        raise
    return report
