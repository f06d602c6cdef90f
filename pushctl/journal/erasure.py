"""Erasure (``pushctl forget``) and retention (``runs prune``, ``journal.retention``) on a journal.

Both walk :data:`pushctl.journal.personal.PERSONAL_TABLES`, never a table by name, so a room that
registers its table gets both for free. In one transaction, rows about to go are first folded
into aggregates (each table's ``tally``), then deleted; ``secure_delete`` overwrites their bytes
in the pages that held them. ``VACUUM`` then rebuilds the file without free pages, and a
``TRUNCATE`` checkpoint empties the WAL, so the removed tokens are in neither file afterwards
(``sqlite3 J .dump`` cannot show them, nor can ``strings J``). ``VACUUM`` waits while another
process is sending into the same journal (it would hold that sender's writes for its whole
length); running the command again later finishes it.

The rows of a campaign being sent right now are left alone (its process would write them again):
``forget`` reports such campaigns, and retention only touches runs that have ended.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushctl.errors import CampaignLocked
from pushctl.journal.lock import CampaignLock, is_locked
from pushctl.journal.personal import PERSONAL_TABLES, PersonalTable

__all__ = ["ForgetReport", "PruneReport", "forget", "prune"]


@dataclass
class ForgetReport:
    """What ``forget`` removed from one journal."""

    journal: Path
    users: int = 0
    """User ids asked for."""
    tokens: int = 0
    """Tokens asked for, plus those linked to the users."""
    removed: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table."""
    campaigns: list[str] = field(default_factory=list)
    """Campaigns whose device rows were deleted (their totals are kept)."""
    running: list[str] = field(default_factory=list)
    """Campaigns being sent into this journal right now: their rows were left alone (the sender
    may still record these users); run forget again once they end."""
    vacuum: str = "not needed"
    """``done``, ``not needed`` or why it was put off."""

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "forget",
            "journal": str(self.journal),
            "users": self.users,
            "tokens": self.tokens,
            "removed": self.removed,
            "rows": self.total,
            "campaigns": self.campaigns,
            "running": self.running,
            "vacuum": self.vacuum,
        }


@dataclass
class PruneReport:
    """What retention removed from one journal."""

    journal: Path
    cutoff: float
    """Runs that ended before this (epoch seconds) lost their per-device rows."""
    runs: list[str] = field(default_factory=list)
    """Runs whose per-device rows were deleted now (their summaries are kept)."""
    removed: dict[str, int] = field(default_factory=dict)
    vacuum: str = "not needed"
    size_before: int = 0
    size_after: int = 0

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "prune",
            "journal": str(self.journal),
            "cutoff": self.cutoff,
            "runs": self.runs,
            "removed": self.removed,
            "rows": self.total,
            "vacuum": self.vacuum,
            "bytes_before": self.size_before,
            "bytes_after": self.size_after,
        }


def _present(conn: sqlite3.Connection) -> list[PersonalTable]:
    """The registered tables this journal has (an older or a shard journal may lack some)."""
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in PERSONAL_TABLES if t.table in names]


def _live_campaigns(conn: sqlite3.Connection, lock_dir: Path) -> list[str]:
    rows = conn.execute("SELECT campaign_id FROM runs WHERE status = 'running' ORDER BY campaign_id")
    return [cid for (cid,) in rows if is_locked(lock_dir / f"{cid}.lock")]


@contextmanager
def _maintenance(conn: sqlite3.Connection) -> Iterator[None]:
    # secure_delete: freed cells and pages are zeroed, not just unlinked. temp_store: the token
    # lists of a forget stay in memory, never in a temporary file.
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    try:
        yield
    finally:
        conn.execute("PRAGMA secure_delete = OFF")


def _delete(conn: sqlite3.Connection, table: PersonalTable, where: str, params: Sequence[Any]) -> int:
    if table.tally:
        conn.execute(table.tally.format(where=where), params)
    return conn.execute(f"DELETE FROM {table.table} WHERE {where}", params).rowcount


def _compact(conn: sqlite3.Connection, lock_dir: Path, removed: int) -> str:
    """VACUUM (when rows went or free pages remain) and empty the WAL; why not, if put off."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if not removed and not free:
        return "not needed"
    live = _live_campaigns(conn, lock_dir)
    if live:
        return f"put off: campaign {live[0]} is being sent into this journal; run this again later"
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return "done"


def _fill(conn: sqlite3.Connection, name: str, values: Iterable[str]) -> None:
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} (value TEXT PRIMARY KEY)")
    conn.execute(f"DELETE FROM temp.{name}")
    conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES (?)", ((v,) for v in values))


def forget(
    conn: sqlite3.Connection, path: Path, lock_dir: Path, *, users: Sequence[str], tokens: Sequence[str]
) -> ForgetReport:
    """Delete every registered row of ``users`` (and their tokens) and of ``tokens``; see the module."""
    report = ForgetReport(journal=path, users=len(set(users)))
    tables = _present(conn)
    # A campaign being sent is left alone whether or not its rows match yet: its process may
    # still hold this user's results in memory, or meet the user further down its audience.
    report.running = _live_campaigns(conn, lock_dir)
    with _maintenance(conn), ExitStack() as locks:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _fill(conn, "forget_users", users)
            _fill(conn, "forget_tokens", tokens)
            for t in tables:  # a user's tokens, from every table linking the two
                if t.user and t.token:
                    conn.execute(
                        f"INSERT OR IGNORE INTO temp.forget_tokens SELECT {t.token} FROM {t.table} "
                        f"WHERE {t.user} IN (SELECT value FROM temp.forget_users) "
                        # A row naming a user but no device (a user-level preference, a trigger job
                        # by user id) links no token: '' would match every other such row.
                        f"AND {t.token} IS NOT NULL AND {t.token} != ''"
                    )
            report.tokens = conn.execute("SELECT COUNT(*) FROM temp.forget_tokens").fetchone()[0]
            matches = {t.table: _matching(t) for t in tables}
            touched: set[str] = set()
            for t in tables:
                if t.run:
                    touched.update(c for (c,) in conn.execute(f"SELECT DISTINCT {t.run} FROM {t.table} "
                                                              f"WHERE {matches[t.table]}"))
            for campaign in sorted(touched - set(report.running)):
                try:  # hold each campaign's lock while its rows go, so no send starts meanwhile
                    locks.enter_context(_held(CampaignLock(lock_dir / f"{campaign}.lock", campaign)))
                    report.campaigns.append(campaign)
                except CampaignLocked:
                    report.running.append(campaign)
            _fill(conn, "forget_running", report.running)
            for t in tables:
                where = matches[t.table]
                if t.run:
                    where = f"({where}) AND {t.run} NOT IN (SELECT value FROM temp.forget_running)"
                count = _delete(conn, t, where, ())
                if count:
                    report.removed[t.table] = count
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for name in ("forget_users", "forget_tokens", "forget_running"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        report.vacuum = _compact(conn, lock_dir, report.total)
    return report


def _matching(t: PersonalTable) -> str:
    parts = []
    if t.token:
        parts.append(f"{t.token} IN (SELECT value FROM temp.forget_tokens)")
    if t.user:
        parts.append(f"{t.user} IN (SELECT value FROM temp.forget_users)")
    return " OR ".join(parts)


@contextmanager
def _held(lock: CampaignLock) -> Iterator[None]:
    try:
        yield
    finally:
        lock.release()


def prune(
    conn: sqlite3.Connection, path: Path, lock_dir: Path, *, cutoff: float, now: float, vacuum: bool = True
) -> PruneReport:
    """Delete the per-device rows of runs that ended before ``cutoff`` (and registered rows tied to
    no run older than it), keeping every run's summary; ``vacuum`` to shrink the file too."""
    report = PruneReport(journal=path, cutoff=cutoff, size_before=_size(path))
    tables = _present(conn)
    with _maintenance(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # A run has ended when it finished or stopped, or when nobody holds its lock any more
            # (the process died); it counts from when it ended, or else from when it started.
            ended = [
                cid
                for cid, status in conn.execute(
                    "SELECT campaign_id, status FROM runs WHERE COALESCE(finished_at, started_at) < ? "
                    "ORDER BY campaign_id",
                    (cutoff,),
                )
                if status != "running" or not is_locked(lock_dir / f"{cid}.lock")
            ]
            _fill(conn, "prune_runs", ended)
            for t in tables:
                if t.run:
                    where = f"{t.run} IN (SELECT value FROM temp.prune_runs)"
                elif t.at:
                    where = f"{t.at} < {float(cutoff)!r}"
                else:
                    continue  # current state (a device directory): erased on request only
                count = _delete(conn, t, where, ())
                if count:
                    report.removed[t.table] = count
            if report.removed:
                report.runs = [
                    cid
                    for (cid,) in conn.execute(
                        "SELECT campaign_id FROM runs WHERE pruned_at IS NULL "
                        "AND campaign_id IN (SELECT value FROM temp.prune_runs) ORDER BY campaign_id"
                    )
                ]
            conn.execute(
                "UPDATE runs SET pruned_at = ? WHERE pruned_at IS NULL "
                "AND campaign_id IN (SELECT value FROM temp.prune_runs)",
                (now,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("DROP TABLE IF EXISTS temp.prune_runs")
        if vacuum:
            report.vacuum = _compact(conn, lock_dir, report.total)
        elif report.total:
            report.vacuum = "not asked (the rows are zeroed; the file keeps its size)"
    report.size_after = _size(path)
    return report


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
