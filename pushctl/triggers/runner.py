"""``trigger run`` without the CLI: source → engine → the campaign sender, until told to stop.

The engine is a new *source of work items* for :class:`pushctl.delivery.Sender` (same adapters,
retries, auth stop and outcomes as a campaign): an async generator reads a batch of events,
applies the rules inside one journal transaction, acknowledges the batch only after that
commit, and yields the sends it fired.

Time: with ``clock="wall"`` (default) a delayed send is due when the wall clock (``PUSHCTL_NOW``
honoured) passes its time *and* the stream has been read up to it: while a backlog is being read,
the stream's own time (the newest event's ``ts``) rules, so a purchase still waiting in the backlog
cancels its cart reminder instead of racing it. With ``clock="events"`` only event time moves the
clock, so delays are testable without waiting.

Stopping: the first Ctrl-C / SIGTERM stops reading (nothing unjournaled is acknowledged) and lets
every fired send finish; a second stops the sender (in-flight requests finish; buffered sends stay
in flight in the journal for the next run); a third aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

from pushctl import clock
from pushctl.audience import AudienceReader, Format
from pushctl.campaign import providers_for
from pushctl.config import Profile
from pushctl.delivery import Event as SenderEvent
from pushctl.delivery import Sender, SendOptions, WorkItem, prepare_item
from pushctl.errors import AuthRefused, ExitCode
from pushctl.insights import BadEvent, PreferenceFile, Preferences, engagement_kind, event_from_mapping
from pushctl.journal import EngagementEvent, ImportStats, Journal, TriggerStore
from pushctl.outcome import Outcome, Result
from pushctl.providers import Provider
from pushctl.runtime import on_stop_signals
from pushctl.triggers.engine import Engine, Firing, Skip
from pushctl.triggers.events import Event, parse_event, parse_line
from pushctl.triggers.record import EventSource, Record
from pushctl.triggers.rules import RuleSet

__all__ = ["SendRecord", "TriggerHooks", "TriggerReport", "TriggerSpec", "TriggerStats", "run_triggers"]

BATCH = 256
HEARTBEAT_SECONDS = 2.0
ClockMode = Literal["wall", "events"]


@dataclass
class TriggerSpec:
    """Everything ``trigger run`` needs, parsed and checked by the caller."""

    rules: RuleSet
    source: EventSource
    profile: Profile
    journal_path: Path
    devices: Path | None = None
    devices_format: Format | None = None
    clock: ClockMode = "wall"
    max_events: int | None = None
    until_idle: float | None = None
    """Stop after this many seconds with nothing to do; None: run until the source ends (or forever)."""
    dead_letter: Path | None = None
    send: SendOptions = field(default_factory=SendOptions)
    max_connections: int = 4
    retention: timedelta | None = timedelta(days=7)
    batch: int = BATCH
    preferences: Path | None = None
    """``--preferences FILE``; the journal's (``pushctl prefs import``) apply too."""


@dataclass(slots=True)
class SendRecord:
    """One finished send, as the hooks see it."""

    rule: str
    job_key: str
    user_id: str
    result: Result


@dataclass
class TriggerStats:
    """Live numbers of a run (the status panel reads them)."""

    started: float = field(default_factory=time.monotonic)
    records: int = 0
    malformed: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    pending: int = 0
    """Delayed and digest sends waiting in the journal (refreshed every couple of seconds)."""
    lag: int | None = None
    """What the source still holds unread (Redis: entries not yet delivered to the group plus
    unacknowledged ones; a file: bytes), refreshed with ``pending``; None when unknown."""
    totals: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def total(self, what: str) -> int:
        return sum(n for (_rule, w, _r), n in self.totals.items() if w == what)

    def skipped(self) -> Counter[str]:
        reasons: Counter[str] = Counter()
        for (_rule, what, reason), n in self.totals.items():
            if what == "skipped":
                reasons[reason] += n
        if self.malformed:
            reasons["malformed"] += self.malformed
        return reasons

    def events_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0


@dataclass
class TriggerHooks:
    """Front-end callbacks."""

    on_result: Callable[[SendRecord], None] = lambda _r: None
    on_skip: Callable[[Skip], None] = lambda _s: None
    on_dead_letter: Callable[[str, str], None] = lambda _where, _reason: None
    on_event: Callable[[SenderEvent], None] = lambda _e: None
    on_start: Callable[[TriggerStats, str], None] = lambda _stats, _consumer: None


@dataclass
class TriggerReport:
    """What a finished run hands back."""

    ruleset: str
    consumer: str
    source: str
    stats: TriggerStats
    pending: int
    deferred: int
    imported: ImportStats | None
    stopped_reason: str | None

    def exit_code(self) -> ExitCode:
        if self.stopped_reason == "auth_failed" or self.stats.sent[str(Outcome.AUTH_FAILED)]:
            return ExitCode.AUTH
        if self.stopped_reason == "interrupted":
            return ExitCode.INTERRUPTED
        if any(self.stats.sent[str(o)] for o in (Outcome.FAILED, Outcome.INVALID_TOKEN, Outcome.REJECTED)):
            return ExitCode.PARTIAL
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        elapsed = time.monotonic() - s.started
        return {
            "type": "summary",
            "ruleset": self.ruleset,
            "source": self.source,
            "consumer": self.consumer,
            "events": s.total("events"),
            "records": s.records,
            "malformed": s.malformed,
            "redelivered": s.total("redelivered"),
            "fired": s.total("fired"),
            "scheduled": s.total("scheduled"),
            "cancelled": s.total("cancelled"),
            "sent": {str(o): s.sent[str(o)] for o in Outcome},
            "skipped": dict(sorted(s.skipped().items())),
            "pending": self.pending,
            "deferred": self.deferred,
            "duration_s": round(elapsed, 3),
            "events_per_s": round(s.records / elapsed, 1) if elapsed > 0 else 0.0,
            "engagement": {r: n for (_rule, w, r), n in sorted(s.totals.items()) if w == "engagement"},
            "stopped": self.stopped_reason,
            "exit_code": int(self.exit_code()),
        }


async def run_triggers(spec: TriggerSpec, hooks: TriggerHooks | None = None) -> TriggerReport:
    """Run the rules over the source until it ends, goes idle, or a signal stops it."""
    hooks = hooks or TriggerHooks()
    rules, source = spec.rules, spec.source
    with Journal(spec.journal_path) as journal:
        lock = journal.trigger_lock(rules.name, source.consumer)
        try:
            imported = None
            if spec.devices is not None:
                reader = AudienceReader(spec.devices, fmt=spec.devices_format, on_bad_row="skip")
                imported = journal.directory().import_devices(reader)
            store = journal.trigger_store(rules.name, source.consumer)
            if spec.retention is not None:
                store.prune(clock.timestamp() - spec.retention.total_seconds())
            run = _Run(spec, hooks, journal, store)
            stopped = await run.run()
            report = TriggerReport(
                rules.name,
                source.consumer,
                source.name,
                run.stats,
                store.pending_count(),
                len(store.sends(state="deferred")),
                imported,
                stopped,
            )
        finally:
            lock.release()
    return report


class _Run:
    def __init__(self, spec: TriggerSpec, hooks: TriggerHooks, journal: Journal, store: TriggerStore) -> None:
        self.spec = spec
        self.hooks = hooks
        self.journal = journal
        self.store = store
        self.source = spec.source
        self.stats = TriggerStats()
        self.engine = Engine(
            spec.rules,
            store,
            journal.directory(),
            cap_counts=journal.delivered_counts_since,
            on_skip=self._skipped,
            preferences=Preferences(
                file=PreferenceFile.load(spec.preferences) if spec.preferences is not None else None,
                store=journal.preferences(),
                mandatory=spec.profile.preferences.mandatory,
            ),
        )
        self.engagement = journal.engagement()
        self.engagement.prepare()
        self.stats.totals = self.engine.totals
        self.watermark = 0.0
        self._refs: dict[int, tuple[str, str, str]] = {}
        self._next_ref = 0
        self._stop = asyncio.Event()
        self._signalled = False
        self._last_activity = time.monotonic()
        self._providers: dict[str, Provider] = {}
        self._missing: dict[str, str] = {}
        self._sender: Sender | None = None
        self._dead: IO[str] | None = None

    # -- the whole run -------------------------------------------------------------------------

    async def run(self) -> str | None:
        self._providers, self._missing = providers_for(
            self.spec.profile, max_connections=self.spec.max_connections
        )
        sender = self._sender = Sender(
            self._providers, self.spec.send, on_result=self._on_result, on_event=self.hooks.on_event
        )
        started = time.time()
        try:
            for provider in self._providers.values():
                await provider.start()
            await self.source.open()
            if self.spec.dead_letter is not None:
                self._dead = self.spec.dead_letter.open("a", encoding="utf-8")
            self.hooks.on_start(self.stats, self.source.consumer)
            with on_stop_signals(lambda presses: self._interrupt(sender, presses)):
                await sender.run(self._items())
        except AuthRefused:
            sender.stopped_reason = "auth_failed"
        finally:
            self.store.flush()
            with contextlib.suppress(Exception):
                await self._heartbeat(started, "stopped")
            with contextlib.suppress(Exception):
                await self.source.close()
            for provider in self._providers.values():
                with contextlib.suppress(Exception):
                    await provider.close()
            if self._dead is not None:
                self._dead.close()
        if self._signalled and sender.stopped_reason is None:
            return "interrupted"
        return sender.stopped_reason

    def _interrupt(self, sender: Sender, presses: int) -> None:
        self._signalled = True
        say = self.hooks.on_event
        if presses == 1:
            say(SenderEvent("info", "stopping: reading no more events; finishing the sends already "
                                    "journaled (Ctrl-C again to stop sooner)"))
            self._stop.set()
        elif presses == 2:
            say(SenderEvent("info", "stopping the sender: requests in flight finish, the rest stay "
                                    "in the journal for the next run"))
            sender.stop()
        else:
            say(SenderEvent("info", "aborting"))
            sender.abort()

    # -- the work-item source -------------------------------------------------------------------

    async def _items(self) -> AsyncIterator[WorkItem]:
        store, engine, source, spec = self.store, self.engine, self.source, self.spec
        started = time.time()
        with store.batch():
            firings = engine.resume(store.sends(state="inflight", owners=self._orphan_owners()))
        engine.refresh_due()
        for item in self._to_items(firings):
            yield item
        beat = 0.0
        while not self._stop.is_set():
            want = spec.batch
            if spec.max_events is not None:
                want = min(want, spec.max_events - self.stats.records)
                if want <= 0:
                    break
            records = await self._read(want, self._timeout())
            if records is None:
                break
            firings = []
            dead: list[tuple[Record, str]] = []
            engaged: list[EngagementEvent] = []
            with store.batch():
                for record in records:
                    event = self._parse(record)
                    if isinstance(event, str):
                        dead.append((record, event))
                        continue
                    if engagement_kind(event.type) is not None:
                        self._engagement(event, record, engaged)
                    self.watermark = max(self.watermark, event.ts)
                    now = self._now(caught_up=False)
                    firings.extend(engine.fire_due(now))
                    firings.extend(engine.process(event, now))
                firings.extend(engine.fire_due(self._now(caught_up=source.caught_up)))
                if engaged:
                    # Opens and conversions of earlier pushes (push_opened, push_converted...):
                    # recorded in the same transaction as the rest of the batch.
                    stats = self.engagement.record(engaged, in_transaction=True)
                    for what, n in stats.to_dict().items():
                        if isinstance(n, int) and n and what != "read":
                            engine.count("", "engagement", what, n)
                if dead:
                    self.engine.count("", "dead_letter", n=len(dead))
            for record, reason in dead:
                await self._dead_letter(record, reason)
            if records:
                await source.ack(records)  # only now: their effects are committed
                self.stats.records += len(records)
                self._last_activity = time.monotonic()
            if firings:
                self._last_activity = time.monotonic()
            for item in self._to_items(firings):
                yield item
            if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                beat = time.monotonic()
                await self._heartbeat(started, "running")
            if self._idle_done():
                break
            if not records and source.exhausted:
                await asyncio.sleep(0.02)  # a finished file returns at once: don't spin while sends finish

    def _engagement(self, event: Event, record: Record, into: list[EngagementEvent]) -> None:
        fields = {"id": event.id, "type": event.type, "ts": event.ts, "user_id": event.user_id,
                  "token": event.token, "data": event.data}  # fmt: skip
        try:
            into.append(event_from_mapping(fields, source=record.where))
        except BadEvent as exc:
            self.engine.count("", "engagement", "bad_event")
            self.engine.recent_errors.append(f"{record.where}: {exc.field}: {exc.message}")

    def _orphan_owners(self) -> list[str]:
        """Owners whose in-flight sends this process takes over: itself (a previous life) and
        consumers no live process holds."""
        rules = self.spec.rules.name
        return [
            owner
            for owner in self.store.inflight_owners()
            if owner == self.source.consumer or not self.journal.trigger_owner_alive(rules, owner)
        ]

    async def _read(self, want: int, timeout: float) -> list[Record] | None:
        """The next records, or None when a stop was asked for (the pending read is dropped:
        whatever it took from the source is unacknowledged, so it comes again)."""
        reader = asyncio.ensure_future(self.source.read(want, timeout))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        if reader in done and not reader.cancelled():
            return reader.result()
        return None

    def _parse(self, record: Record) -> Event | str:
        if record.problem:
            return record.problem
        text = record.text
        now = clock.timestamp()
        fields = self.spec.rules.fields
        if isinstance(text, dict):
            return parse_event(text, fields, now=now)
        return parse_line(text, fields, now=now)

    async def _dead_letter(self, record: Record, reason: str) -> None:
        self.stats.malformed += 1
        self.stats.errors.append(f"{record.where}: {reason}")
        del self.stats.errors[:-5]
        if self._dead is not None:
            import json

            raw = record.text.decode("utf-8", "replace") if isinstance(record.text, bytes) else record.text
            self._dead.write(
                json.dumps({"where": record.where, "reason": reason, "event": raw}, default=str) + "\n"
            )
            self._dead.flush()
        await self.source.dead_letter(record, reason)
        self.hooks.on_dead_letter(record.where, reason)

    def _now(self, *, caught_up: bool) -> float:
        if self.spec.clock == "events":
            return self.watermark
        wall = clock.timestamp()
        return wall if caught_up else min(self.watermark, wall)

    def _timeout(self) -> float:
        due = self.engine.next_due
        if due is None or self.spec.clock == "events":
            return 1.0
        return max(0.01, min(1.0, due - self._now(caught_up=True)))

    def _idle_done(self) -> bool:
        limit = self.spec.until_idle
        source = self.source
        if limit is None:
            if not source.finite:
                return False
            limit = 0.0
        if not source.caught_up or (source.finite and not source.exhausted and self.spec.until_idle is None):
            return False
        if self._refs:
            return False  # sends still waiting for an answer
        due = self.engine.next_due
        pinned = bool(os.environ.get(clock.ENV_VAR)) or self.spec.clock == "events"
        if due is not None and not pinned and due - self._now(caught_up=True) <= limit:
            return False  # something falls due within the idle limit: wait for it
        return time.monotonic() - self._last_activity >= limit

    async def _heartbeat(self, started: float, status: str) -> None:
        self.stats.pending = self.store.pending_count()
        lag = self.stats.lag = await self.source.lag()
        self.store.heartbeat(
            self.source.name,
            self.source.consumer,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=started,
            events=self.stats.records,
            lag=lag,
            status=status,
        )

    # -- firings to work items, results back to the journal ------------------------------------

    def _to_items(self, firings: list[Firing]) -> Iterator[WorkItem]:
        for firing in firings:
            device = firing.device
            provider = self._providers.get(device.platform.provider)
            if provider is None:
                reason = self._missing.get(
                    device.platform.provider, f"no_{device.platform.provider}_credentials"
                )
                self._settle(firing, Result(device.token, device.platform, Outcome.SKIPPED, reason))
                continue
            prepared = prepare_item(provider, device, firing.notification, collapse_id=firing.collapse_id)
            if isinstance(prepared, Result):
                self._settle(firing, prepared)
                continue
            self._next_ref += 1
            prepared.ref = self._next_ref
            self._refs[self._next_ref] = (firing.job.job_key, firing.job.user_id, firing.rule.name)
            self.stats.in_flight += 1
            yield prepared

    def _settle(self, firing: Firing, result: Result) -> None:
        self._record(firing.job.job_key, firing.job.user_id, firing.rule.name, result)

    def _on_result(self, result: Result) -> None:
        job_key, user_id, rule = self._refs.pop(result.ref)
        self.stats.in_flight -= 1
        self._last_activity = time.monotonic()
        self._record(job_key, user_id, rule, result)

    def _record(self, job_key: str, user_id: str, rule: str, result: Result) -> None:
        self.store.record(job_key, user_id, rule, result)
        if result.outcome is Outcome.INVALID_TOKEN:
            self.engine.forget(user_id)
        self.stats.sent[str(result.outcome)] += 1
        if not result.outcome.is_success:
            self.stats.errors.append(f"{rule}: {result.outcome} {result.reason}".rstrip())
            del self.stats.errors[:-5]
        self.hooks.on_result(SendRecord(rule, job_key, user_id, result))

    def _skipped(self, skip: Skip) -> None:
        if skip.reason in ("template_error", "bad_token"):
            self.stats.errors.append(f"{skip.rule}: {skip.reason} {skip.detail}".rstrip())
            del self.stats.errors[:-5]
        self.hooks.on_skip(skip)
