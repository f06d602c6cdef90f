"""The campaign journal: one SQLite database of runs and per-device rows, for resume and reports.

Exactly-once-visible delivery rests on three rules:

1. A device is marked *in flight* (one committed transaction per batch, :meth:`Run.mark_inflight`)
   before its request goes out, and settled when the answer comes (:meth:`Run.record`).
2. A resumed run skips settled devices and re-sends in-flight ones with the campaign's
   :attr:`Run.collapse_id`, so a device that got the first copy still shows one notification.
3. One process per campaign: an ``flock`` on ``<journal dir>/locks/<campaign>.lock``.

Durability: WAL with ``synchronous=NORMAL`` makes every commit survive the *process* dying
(``kill -9``, OOM, Ctrl-C): the commit is in the WAL file in the OS page cache. Only an OS crash or
power loss can drop the last commits, which is not the failure we guard against, and ``FULL``
would cost an fsync per batch on the event loop.

Writes never limit throughput: results are buffered and written with ``executemany`` in one
transaction per batch (≥ 500 rows or every 0.2 s), a few milliseconds each.

The price of batching, after ``kill -9``: the devices sent twice on the wire (invisibly: same
collapse id) are those still in flight in the journal that had reached the provider, that is at
most the requests in flight (the sender's concurrency) plus the results not yet written (under
``FLUSH_ROWS``; the pipeline's ``mark_inflight`` writes them every chunk too). A graceful stop
(Ctrl-C, SIGTERM) writes every answer, so its resume sends no device twice.
(tests/test_resume_kill.py and tests/test_resume_interrupt.py measure both.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import pushctl.journal.engagement_reports as engagement_reports
import pushctl.journal.erasure as erasure
import pushctl.journal.reports as reports
import pushctl.journal.schema as schema
from pushctl import clock
from pushctl.delivery import Summary
from pushctl.errors import InputError
from pushctl.inputs import check_regular_file
from pushctl.journal.abtests import AB_SCHEMA, AbTests, register_functions
from pushctl.journal.directory import DIRECTORY_SCHEMA, Directory
from pushctl.journal.engagement import ENGAGEMENT_SCHEMA, EngagementStore
from pushctl.journal.engagement_reports import EngagementData
from pushctl.journal.erasure import ForgetReport, PruneReport
from pushctl.journal.lock import CampaignLock, is_locked
from pushctl.journal.preferences import PREFERENCES_SCHEMA, PreferenceStore
from pushctl.journal.reports import RunInfo
from pushctl.journal.shards import MergeReport, check_shard, lock_name
from pushctl.journal.shards import merge as merge_shards
from pushctl.journal.trigger_status import TriggerStatus, trigger_status
from pushctl.journal.triggers import TRIGGER_SCHEMA, TriggerStore
from pushctl.model import Platform
from pushctl.outcome import Result
from pushctl.paths import create_private

__all__ = ["DeviceState", "Journal", "Run", "RunInfo", "validate_campaign_id"]

FLUSH_ROWS = 500
FLUSH_SECONDS = 0.2
CAMPAIGN_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
COLLAPSE_ID_MAX = 64  # bytes: APNs' limit on apns-collapse-id

class DeviceState(StrEnum):
    """Where a device stands in a campaign, as :meth:`Run.lookup` reports it."""

    INFLIGHT = "inflight"
    """Sent (or about to be) without a recorded answer: re-send on resume."""
    SETTLED = "settled"
    """Has a final outcome: never send again in this campaign."""
    DEFERRED = "deferred"
    """Not sent for now — its time slot had not come, or the credentials were refused
    (``auth_failed``): a later run considers it again."""


def validate_campaign_id(campaign_id: str) -> str:
    """Return ``campaign_id`` if it is ``[A-Za-z0-9._-]{1,64}``, else raise ``InputError``."""
    if not CAMPAIGN_ID_RE.fullmatch(campaign_id):
        raise InputError(
            f"invalid campaign id {campaign_id!r}",
            field="--campaign",
            hint="1-64 characters among letters, digits, '.', '_' and '-'",
        )
    return campaign_id


def collapse_id_for(campaign_id: str) -> str:
    cid = f"pushctl-{campaign_id}"
    if len(cid.encode()) <= COLLAPSE_ID_MAX:
        return cid
    # Long ids: keep a readable prefix plus a hash, so distinct campaigns stay distinct.
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:16]
    return f"pushctl-{campaign_id[: COLLAPSE_ID_MAX - 8 - 17]}-{digest}"


class Journal:
    """The journal database. Use from one thread (the sender's event loop) at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            # Private before SQLite touches it: SQLite gives the -wal and -shm files it creates
            # the database file's mode, so all three are 0600 whatever the umask.
            if self.path.exists():  # a directory or a device: say so, not "disk I/O error"
                check_regular_file(self.path, what="the journal", hint="point --journal at a file")
            create_private(self.path)
            # Autocommit mode: transactions are explicit (one BEGIN ... COMMIT per batch).
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # durable across kill -9: see module doc
            # Tokens are random, so each batch of devices dirties pages all over the devices
            # table: with SQLite's defaults (2 MB of cache, a checkpoint every 4 MB of WAL) a
            # 100,000-device send spent ~45% of its CPU in COMMIT. 16 MB of cache and a checkpoint
            # every 64 MB of WAL cut that by a third (benchmarks/README.md, "random tokens").
            self._conn.execute("PRAGMA cache_size = -16384")
            self._conn.execute("PRAGMA wal_autocheckpoint = 16384")
            schema.create(self._conn)
            self._conn.executescript(
                DIRECTORY_SCHEMA + TRIGGER_SCHEMA + ENGAGEMENT_SCHEMA + PREFERENCES_SCHEMA + AB_SCHEMA
            )
            register_functions(self._conn)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise InputError(
                f"cannot open the journal: {exc}", file=self.path, field="--journal",
                hint="point --journal (or PUSHCTL_JOURNAL) at a pushctl journal, or a new file",
            ) from None
        self._open_runs: list[Run] = []

    @staticmethod
    def files(path: Path) -> list[Path]:
        """The database at ``path`` and the ``-wal`` / ``-shm`` files SQLite keeps beside it."""
        path = Path(path)
        return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]

    @property
    def lock_dir(self) -> Path:
        return self.path.parent / "locks"

    def close(self) -> None:
        """Flush unfinished runs, release their locks and close the database."""
        for run in list(self._open_runs):
            run.abandon()
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @staticmethod
    def derive_campaign_id(template_fp: str, audience_fp: str, options: Mapping[str, Any]) -> str:
        """A stable id for a campaign without ``--campaign``: same inputs, same id."""
        canonical = json.dumps(
            {"template": template_fp, "audience": audience_fp, "options": dict(options)},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return "c-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def open_run(
        self,
        campaign_id: str,
        *,
        template_fp: str,
        audience_fp: str,
        options: Mapping[str, Any],
        force: bool = False,
        shard: str | None = None,
    ) -> Run:
        """Start or resume ``campaign_id`` and take its lock.

        Raises ``CampaignLocked`` when a live process holds the campaign, and ``InputError``
        when the campaign was started with another template or audience (unless ``force``).
        ``shard`` (``"I/N"``, ``send --shard``) is recorded; a journal holds one shard of a
        campaign, or all of it, never a mix (the lock is the shard's: shards may share a directory).
        """
        validate_campaign_id(campaign_id)
        lock = CampaignLock(self.lock_dir / lock_name(campaign_id, shard), campaign_id)
        try:
            resumed = self._start_row(campaign_id, template_fp, audience_fp, options, force, shard)
        except BaseException:
            lock.release()
            raise
        run = Run(self, campaign_id, resumed=resumed, lock=lock)
        self._open_runs.append(run)
        return run

    def join_run(self, campaign_id: str, *, resumed: bool) -> Run:
        """The device rows of a run whose lock another process holds: a ``send --workers`` worker
        writes its devices through this while the parent keeps the lock and the run's row (so the
        worker only flushes; it never finishes the run)."""
        run = Run(self, campaign_id, resumed=resumed, lock=None)
        self._open_runs.append(run)
        return run

    def _start_row(
        self, campaign_id: str, template_fp: str, audience_fp: str, options: Mapping[str, Any], force: bool,
        shard: str | None = None,
    ) -> bool:
        now = clock.timestamp()
        options_json = json.dumps(dict(options), sort_keys=True, default=str)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT template_fp, audience_fp, pruned_at, shard, merged_from FROM runs "
                "WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO runs (campaign_id, template_fp, audience_fp, options_json, created_at, "
                    "started_at, status, runs_count, shard) VALUES (?, ?, ?, ?, ?, ?, 'running', 1, ?)",
                    (campaign_id, template_fp, audience_fp, options_json, now, now, shard),
                )
                return False
            check_shard(self.path, campaign_id, recorded=row[3], requested=shard, merged=row[4] is not None)
            if row[2] is not None and not force:
                # Its device rows are gone: continuing it would send every device again.
                when = datetime.fromtimestamp(row[2]).isoformat(sep=" ", timespec="minutes")
                raise InputError(
                    f"campaign {campaign_id} ended long ago and its device rows were pruned on {when} "
                    "(journal retention): continuing it would send to every device again",
                    field="--campaign",
                    hint="use a new --campaign id, or --force to send it again",
                )
            for what, old, new in (("template", row[0], template_fp), ("audience", row[1], audience_fp)):
                if old != new and not force:
                    raise InputError(
                        f"campaign {campaign_id} was started with a different {what} "
                        f"(fingerprint {old[:12]}, now {new[:12]})",
                        field="--campaign",
                        hint="use a new --campaign id, or --force",
                    )
            conn.execute(
                "UPDATE runs SET template_fp = ?, audience_fp = ?, options_json = ?, started_at = ?, "
                "finished_at = NULL, status = 'running', stopped_reason = NULL, pruned_at = NULL, "
                "runs_count = runs_count + 1 WHERE campaign_id = ?",
                (template_fp, audience_fp, options_json, now, campaign_id),
            )
            return True

    def merge_shards(self, sources: Sequence[Path], campaign_id: str | None = None) -> MergeReport:
        """Combine the shard journals ``sources`` of one campaign into this journal (``runs merge``);
        see :mod:`pushctl.journal.shards` for what it refuses and reports."""
        self._flush_open_runs()
        return merge_shards(self._conn, self._transaction, self.path, sources, campaign_id)

    # -- triggers and the device directory (see pushctl.journal.triggers / .directory) ------

    def directory(self) -> Directory:
        """The device directory kept in this journal (user id -> devices)."""
        return Directory(self._conn, self._transaction)

    def trigger_store(self, ruleset: str, owner: str = "") -> TriggerStore:
        """The trigger state of one rule set; ``owner`` names this process's consumer."""
        return TriggerStore(self._conn, self._transaction, ruleset, owner)

    def trigger_lock(self, ruleset: str, consumer: str) -> CampaignLock:
        """Lock one consumer of a rule set (a second ``trigger run`` as the same consumer exits 5)."""
        return CampaignLock(self.trigger_lock_path(ruleset, consumer), f"{ruleset} (consumer {consumer})")

    def trigger_lock_path(self, ruleset: str, consumer: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", consumer)[:80]
        return self.lock_dir / f"trigger-{ruleset}-{safe}.lock"

    def trigger_owner_alive(self, ruleset: str, consumer: str) -> bool:
        """Whether a live process holds that consumer's lock."""
        return is_locked(self.trigger_lock_path(ruleset, consumer))

    def trigger_status(self, ruleset: str | None = None) -> TriggerStatus:
        """Pending delayed sends, counters per rule and consumers, for ``trigger status``."""
        return trigger_status(self._conn, ruleset)

    # -- engagement, preferences, A/B tests (see pushctl.journal.engagement / .preferences / .abtests)

    def engagement(self) -> EngagementStore:
        """Opens, conversions and dismissals, attributed to sends."""
        self._flush_open_runs()
        return EngagementStore(self._conn, self._transaction)

    def preferences(self) -> PreferenceStore:
        """Users' imported notification preferences."""
        return PreferenceStore(self._conn, self._transaction)

    def ab_tests(self) -> AbTests:
        """A/B tests with a winner for the rest, and ``--local-time best`` slots."""
        self._flush_open_runs()
        return AbTests(self._conn, self._transaction)

    def engagement_data(self, campaign_id: str) -> EngagementData:
        """What ``runs report`` needs about a campaign; ``InputError`` if unknown."""
        self._flush_open_runs()
        self.run_info(campaign_id)
        return engagement_reports.report_data(self._conn, campaign_id)

    def _flush_open_runs(self) -> None:
        for run in self._open_runs:
            run.flush()

    # -- reports (see pushctl.journal.reports) -----------------------------

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        """The ``limit`` most recently started runs, newest first, with their counts."""
        self._flush_open_runs()
        return [self._with_liveness(info) for info in reports.list_runs(self._conn, limit)]

    def run_info(self, campaign_id: str) -> RunInfo:
        """One run's metadata and counts; ``InputError`` (with close matches) if unknown."""
        self._flush_open_runs()
        return self._with_liveness(reports.run_info(self._conn, campaign_id))

    def _with_liveness(self, info: RunInfo) -> RunInfo:
        # "running" in the table but nobody holds the lock: the process died mid-run.
        lock = self.lock_dir / lock_name(info.campaign_id, info.shard)
        if info.status == "running" and not is_locked(lock):
            info.status = "abandoned"
        return info

    def results(self, campaign_id: str, *, failures_first: bool = False) -> Iterator[Result]:
        """The campaign's settled results, streamed; in audience order, or failures first."""
        self._flush_open_runs()
        self.run_info(campaign_id)
        return reports.results(self._conn, campaign_id, failures_first=failures_first)

    def prune_list(self, campaign_id: str) -> Iterator[str]:
        """Tokens with outcome ``invalid_token`` in this campaign."""
        self._flush_open_runs()
        self.run_info(campaign_id)
        return reports.prune_list(self._conn, campaign_id)

    def summary(self, campaign_id: str) -> Summary:
        """The campaign's summary, rebuilt from the device rows and run metadata."""
        self._flush_open_runs()
        return reports.summary(self._conn, campaign_id)

    def delivered_counts_since(self, tokens: Sequence[str], since: float) -> dict[str, int]:
        """Deliveries per token since ``since`` (epoch s) across all campaigns, for frequency caps."""
        self._flush_open_runs()
        return reports.delivered_counts_since(self._conn, tokens, since)

    # -- erasure and retention (see pushctl.journal.erasure) ------------------

    def forget(self, *, users: Sequence[str] = (), tokens: Sequence[str] = ()) -> ForgetReport:
        """Delete every registered row of these users (and their tokens) and tokens; run totals stay."""
        self._flush_open_runs()
        return erasure.forget(self._conn, self.path, self.lock_dir, users=users, tokens=tokens)

    def prune(self, older_than: timedelta, *, vacuum: bool = True) -> PruneReport:
        """Delete per-device rows of runs that ended more than ``older_than`` ago; summaries stay."""
        self._flush_open_runs()
        now = clock.timestamp()
        cutoff = now - older_than.total_seconds()
        return erasure.prune(self._conn, self.path, self.lock_dir, cutoff=cutoff, now=now, vacuum=vacuum)

    def known_invalid(self, tokens: Sequence[str]) -> set[str]:
        """The tokens some run (any campaign) found invalid."""
        self._flush_open_runs()
        return reports.known_invalid(self._conn, tokens)


class Run:
    """One session of a campaign, holding its lock until :meth:`finish`."""

    def __init__(
        self, journal: Journal, campaign_id: str, *, resumed: bool, lock: CampaignLock | None
    ) -> None:
        self.campaign_id = campaign_id
        self.resumed = resumed
        """True when the campaign already existed (this session continues it)."""
        self.collapse_id = collapse_id_for(campaign_id)
        """Default ``apns-collapse-id`` / FCM ``collapse_key``: stable per campaign, ≤ 64 bytes."""
        self._journal = journal
        self._conn = journal._conn
        self._lock = lock
        self._buffer: list[tuple[Any, ...]] = []
        self._users: list[tuple[str, str, str]] = []
        self._slots: list[tuple[str, str, str, str, int]] = []
        # token -> state of buffered results, so lookup() sees them before they are flushed.
        self._pending: dict[str, DeviceState] = {}
        self._last_flush = time.monotonic()
        self.finished = False
        self.before_commit: Callable[[], None] | None = None
        """Called before buffered results are committed (so outputs written from the same
        results, such as ``--results`` files, are never behind the journal after a crash)."""

    def lookup(self, tokens: Sequence[str]) -> dict[str, DeviceState]:
        """States of the tokens this campaign has seen; unseen tokens are absent."""
        states: dict[str, DeviceState] = {}
        for part in reports.chunks(tokens):
            rows = self._conn.execute(
                "SELECT token, state FROM devices "
                f"WHERE campaign_id = ? AND token IN ({','.join('?' * len(part))})",
                (self.campaign_id, *part),
            )
            states.update((token, DeviceState(state)) for token, state in rows)
        if self._pending:
            for token in tokens:
                if token in self._pending:
                    states[token] = self._pending[token]
        return states

    def mark_inflight(self, items: Sequence[tuple[str, Platform, int, str]]) -> None:
        """Mark ``(token, platform, line, variant)`` rows in flight; committed when this returns.

        Buffered results are written in the same transaction: one commit instead of two.
        """
        now = clock.timestamp()
        rows = [
            (self.campaign_id, token, str(platform), line, variant, now)
            for token, platform, line, variant in items
        ]
        with self._journal._transaction() as conn:
            self._write_buffer(conn)
            conn.executemany(schema.MARK_SQL, rows)

    def note_users(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Remember ``(token, user_id)`` pairs of this campaign's audience (written with the next
        batch), so ``pushctl forget --user`` can find the user's devices later."""
        self._users.extend((self.campaign_id, token, user_id) for token, user_id in pairs)

    def note_slots(self, slots: Sequence[tuple[str, str, str, int]]) -> None:
        """Remember ``(token, slot, basis, opens)`` chosen by ``--local-time best`` (written with the
        next batch; a device's first slot is kept)."""
        self._slots.extend((self.campaign_id, *slot) for slot in slots)

    def record(self, result: Result) -> None:
        """Buffer one device's result; written when 500 are buffered or 0.2 s have passed.

        The age check runs on each call (and ``mark_inflight`` writes the buffer too); a caller
        whose results can pause for long may also call :meth:`flush` from a timer.
        """
        now = clock.timestamp()
        state = DeviceState.SETTLED if result.outcome.is_final else DeviceState.DEFERRED
        sent_at = now - result.latency_ms / 1000 if result.attempts else None
        self._buffer.append(
            (
                self.campaign_id, result.token, str(result.platform), result.line, result.variant,
                str(state), str(result.outcome), result.reason, result.status, result.attempts,
                result.latency_ms, result.provider_id, sent_at, now,
            )
        )  # fmt: skip
        self._pending[result.token] = state
        if len(self._buffer) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write buffered results in one transaction."""
        if self._buffer or self._users or self._slots:
            with self._journal._transaction() as conn:
                self._write_buffer(conn)
        self._last_flush = time.monotonic()

    def _write_buffer(self, conn: sqlite3.Connection) -> None:
        if self._users:
            conn.executemany(schema.USER_SQL, self._users)
            self._users.clear()
        if self._slots:
            AbTests.write_slots(conn, self._slots)
            self._slots.clear()
        if self._buffer:
            if self.before_commit is not None:
                self.before_commit()
            conn.executemany(schema.RECORD_SQL, self._buffer)
            self._buffer.clear()
            self._pending.clear()

    def finish(self, *, stopped_reason: str | None = None) -> None:
        """Flush, stamp the run finished (``completed`` or ``stopped``) and release the lock."""
        if self.finished:
            return
        status = "stopped" if stopped_reason else "completed"
        try:
            with self._journal._transaction() as conn:
                self._write_buffer(conn)
                conn.execute(
                    "UPDATE runs SET finished_at = ?, status = ?, stopped_reason = ? WHERE campaign_id = ?",
                    (clock.timestamp(), status, stopped_reason, self.campaign_id),
                )
        finally:
            self._release()

    def abandon(self) -> None:
        """Flush and release the lock without marking the run finished (it shows as abandoned)."""
        if self.finished:
            return
        try:
            self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        self.finished = True
        if self._lock is not None:
            self._lock.release()
        with contextlib.suppress(ValueError):
            self._journal._open_runs.remove(self)
