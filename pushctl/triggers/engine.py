"""The rule engine: events in, :class:`Firing` values out, every decision written to the journal.

Reading straight down for one event: seen before? (a redelivery does nothing) → cancels the
pending sends it matches (``cancel_on``) → for each rule it fires: event-level ``where`` →
``dedupe_key`` → a digest window, a pending job (``delay`` / ``send_at``), or a job fired now.
Firing a job: ``throttle`` → the user's devices (directory, or the event's token; invalid tokens
left out) → device ``where`` → ``cap`` (shared with campaigns) → quiet hours (the device is sent
when they end) → render (``event``, ``events``, ``event_count``) → one send *in flight* per
device, with a collapse id derived from the job.

Every method runs inside the caller's :meth:`TriggerStore.batch` transaction, so an event's
effects and its sends are committed together, before the source acknowledges it.

Preferences (the engagement issue) go in :meth:`Engine.allowed`: the one place that decides
whether a user may get a rule's ``category`` at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pushctl import clock
from pushctl.audience import infer_platform, parse_platform, token_problem
from pushctl.campaign import decide
from pushctl.errors import TemplateError
from pushctl.insights import Preferences
from pushctl.journal import Directory, DirectoryEntry, Job, PendingSend, TriggerStore
from pushctl.message import Notification
from pushctl.model import Device
from pushctl.outcome import Outcome
from pushctl.triggers.events import Event
from pushctl.triggers.rules import Rule, RuleSet

__all__ = ["Engine", "Firing", "Skip", "collapse_id_for_job"]

_NO_KEY = re.compile(r"'dict object' has no attribute '([^']+)'")
DIRECTORY_TTL = 5.0
DIRECTORY_CACHE = 50_000
CapCounts = Callable[[Sequence[str], float], dict[str, int]]


def collapse_id_for_job(job_key: str) -> str:
    """The collapse id of every send of a job: stable across restarts and processes, 27 bytes."""
    return "pt-" + hashlib.blake2b(job_key.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class Firing:
    """One device's notification from one job, ready for the sender (or to be printed)."""

    rule: Rule
    job: Job
    device: Device
    notification: Notification
    collapse_id: str


@dataclass(slots=True)
class Skip:
    """Something that did not become a send, and why (for the live panel and JSON lines)."""

    rule: str
    reason: str
    event_id: str = ""
    user_id: str = ""
    detail: str = ""


class Engine:
    """Applies a rule set to events; see the module docstring for the order of decisions."""

    def __init__(
        self,
        rules: RuleSet,
        store: TriggerStore,
        directory: Directory,
        *,
        cap_counts: CapCounts | None = None,
        on_skip: Callable[[Skip], None] | None = None,
        preferences: Preferences | None = None,
    ) -> None:
        self.rules = rules
        self.preferences = preferences
        self.store = store
        self.directory = directory
        self._cap_counts = cap_counts
        self._on_skip = on_skip
        self.next_due: float | None = None
        """Earliest due time of a waiting job or send (refreshed by :meth:`refresh_due`)."""
        self.totals: Counter[tuple[str, str, str]] = Counter()
        """``(rule, what, reason)`` counts of this process (the journal keeps all of them)."""
        self.recent_errors: deque[str] = deque(maxlen=5)
        self._directory_cache: dict[str, tuple[float, list[DirectoryEntry]]] = {}

    # -- bookkeeping -------------------------------------------------------------------------

    def count(self, rule: str, what: str, reason: str = "", n: int = 1) -> None:
        self.store.counts[(rule, what, reason)] += n
        self.totals[(rule, what, reason)] += n

    def skip(self, skip: Skip) -> None:
        self.count(skip.rule, "skipped", skip.reason)
        if self._on_skip is not None:
            self._on_skip(skip)

    def refresh_due(self) -> None:
        self.next_due = self.store.next_due()

    def _due(self, when: float) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when

    def allowed(self, rule: Rule, user_id: str, device: Device) -> str:
        """Why this user must not get this rule's notification (``""``: allowed): ``preference``
        when the user (or the device) opted out of the rule's category — the rule's ``category``,
        else its template's — unless the profile makes that category mandatory."""
        if self.preferences is None:
            return ""
        category = rule.category or rule.template.preference_category
        return self.preferences.reason(category, device, user_id or None)

    # -- events ------------------------------------------------------------------------------

    def process(self, event: Event, now: float) -> list[Firing]:
        """Apply the rules to one event at effective time ``now``; the sends it fires now."""
        store = self.store
        if not store.first_sight(event.id):
            self.count("", "redelivered")
            return []
        self.count("", "events")
        who = event.user_id or event.token
        for rule in self.rules.cancels.get(event.type, ()):
            cancelled = store.cancel(rule.name, self._group(rule, event, who))
            if cancelled:
                self.count(rule.name, "cancelled", n=cancelled)
        firings: list[Firing] = []
        for rule in self.rules.by_type.get(event.type, ()):
            self.count(rule.name, "matched")
            if rule.where is not None and rule.where_on_event and not rule.where.matches(event.flat()):
                self.count(rule.name, "filtered")
                continue
            if rule.dedupe_key is not None:
                key = rule.dedupe_key.text(event)
                if key and not store.first_dedupe(rule.name, key):
                    self.skip(Skip(rule.name, "duplicate", event.id, event.user_id, key))
                    continue
            if rule.digest is not None:
                self._digest(rule, event, who)
                continue
            job = self._job(rule, event, f"{self.rules.name}/{rule.name}/{event.id}", event.ts)
            if rule.delay is not None or rule.send_at is not None:
                due = self._delayed_due(rule, event)
                if due is None:
                    self.skip(
                        Skip(
                            rule.name,
                            "no_send_time",
                            event.id,
                            event.user_id,
                            f"{rule.send_at.expr.source if rule.send_at else ''} is not a time",
                        )
                    )
                    continue
                job.due_at, job.group_key = due, self._group(rule, event, who) if rule.cancel_on else ""
                if store.add_job(job):
                    self.count(rule.name, "scheduled")
                    self._due(due)
                continue
            firings.extend(self._fire(rule, job, now, [event], immediate=True))
        return firings

    def _job(self, rule: Rule, event: Event, key: str, due: float) -> Job:
        events = json.dumps([event.context()], ensure_ascii=False, separators=(",", ":"), default=str)
        return Job(key, rule.name, event.user_id, event.token, event.platform, "", events, 1, due)

    @staticmethod
    def _delayed_due(rule: Rule, event: Event) -> float | None:
        if rule.delay is not None:
            return event.ts + rule.delay.total_seconds()
        assert rule.send_at is not None
        return rule.send_at.due(event)

    @staticmethod
    def _group(rule: Rule, event: Event, who: str) -> str:
        key = rule.cancel_key if rule.digest is None else rule.digest.key
        return f"{who}|{key.text(event)}" if key is not None else who

    def _digest(self, rule: Rule, event: Event, who: str) -> None:
        assert rule.digest is not None
        group = self._group(rule, event, who)
        job = self.store.open_job(rule.name, group)
        if job is not None and event.ts < job.due_at:
            events = json.loads(job.events_json)
            events.append(event.context())
            events = events[-rule.digest.max_events :]
            payload = json.dumps(events, ensure_ascii=False, separators=(",", ":"), default=str)
            self.store.update_events(job.job_key, payload, job.event_count + 1)
            self.count(rule.name, "digested")
            return
        key = f"{self.rules.name}/{rule.name}/digest/{group}/{event.ts:.3f}"
        job = self._job(rule, event, key, event.ts + rule.digest.window.total_seconds())
        job.group_key = group
        if self.store.add_job(job):
            self.count(rule.name, "digested")
            self._due(job.due_at)

    # -- firing ------------------------------------------------------------------------------

    def fire_due(self, now: float) -> list[Firing]:
        """Fire every pending job due at ``now`` (delays, send_at, closed digest windows)."""
        if self.next_due is None or now < self.next_due:
            return []
        firings: list[Firing] = []
        while True:
            jobs = self.store.due_jobs(now)
            for job in jobs:
                rule = self.rules.rules.get(job.rule)
                if rule is None:
                    self.store.claim(job.job_key, now, state="skipped", reason="rule_removed")
                    continue
                events = [Event.from_context(ctx) for ctx in json.loads(job.events_json)]
                firings.extend(self._fire(rule, job, now, events, immediate=False))
            if len(jobs) < 500:
                break
        # Device sends that quiet hours deferred, now due.
        firings.extend(self.resume(self.store.sends(state="deferred", due=now)))
        self.refresh_due()
        return firings

    def _fire(
        self, rule: Rule, job: Job, now: float, events: list[Event], *, immediate: bool
    ) -> list[Firing]:
        store = self.store
        last = events[-1]
        if rule.throttle is not None and job.user_id:
            since = now - rule.throttle.window.total_seconds()
            if store.fired_since(rule.name, job.user_id, since) >= rule.throttle.count:
                if not immediate:
                    store.claim(job.job_key, now, state="skipped", reason="throttled")
                self.skip(Skip(rule.name, "throttled", last.id, job.user_id))
                return []
        devices, problem = self._devices(job)
        if problem:
            if not immediate:
                store.claim(job.job_key, now, state="skipped", reason=problem)
            self.skip(Skip(rule.name, problem, last.id, job.user_id or _short(job.token)))
            return []
        if immediate:
            if not store.add_job(job, fired_at=now):
                return []
        elif not store.claim(job.job_key, now):
            return []  # cancelled, or another process sharing the journal fired it
        self.count(rule.name, "fired")
        extra: dict[str, Any] = {
            "event": last.context(),
            "events": [e.context() for e in events],
            "event_count": job.event_count,
        }
        counts: dict[str, int] = {}
        if rule.cap is not None and self._cap_counts is not None:
            # Deliveries are stamped with the wall clock, so the cap's window is too.
            counts = self._cap_counts(
                [d.token for d in devices], clock.timestamp() - rule.cap.window.total_seconds()
            )
        collapse_id = collapse_id_for_job(job.job_key)
        firings: list[Firing] = []
        for device in devices:
            if rule.where is not None and not rule.where_on_event:
                row = {**device.attrs, "token": device.token, "platform": str(device.platform), **last.flat()}
                if not rule.where.matches(row):
                    self.count(rule.name, "filtered")
                    continue
            reason = self.allowed(rule, job.user_id, device)
            if not reason and rule.cap is not None and counts.get(device.token, 0) >= rule.cap.count:
                reason = "frequency_cap"
            if reason:
                store.add_send(
                    job,
                    device.token,
                    str(device.platform),
                    collapse_id,
                    state="settled",
                    outcome=Outcome.SKIPPED,
                    reason=reason,
                )
                self.skip(Skip(rule.name, reason, last.id, job.user_id))
                continue
            if rule.quiet_hours is not None:
                decision = decide(
                    device.attrs,
                    datetime.fromtimestamp(now, UTC),
                    local_time=None,
                    quiet_hours=rule.quiet_hours,
                    default_zone=self.rules.default_zone,
                    ignore_quiet_hours=rule.template.ignores_quiet_hours,
                )
                if decision.action == "defer" and decision.not_before is not None:
                    due = decision.not_before.timestamp()
                    store.add_send(
                        job, device.token, str(device.platform), collapse_id, state="deferred", due_at=due
                    )
                    self.count(rule.name, "deferred", decision.reason)
                    self._due(due)
                    continue
            firing = self.render(rule, job, device, extra, collapse_id)
            if firing is not None:
                store.add_send(job, device.token, str(device.platform), collapse_id)
                firings.append(firing)
        return firings

    def render(
        self, rule: Rule, job: Job, device: Device, extra: dict[str, Any], collapse_id: str
    ) -> Firing | None:
        """Render one device's notification; a template that fails for this event is a settled,
        rejected send with the reason (the stream goes on)."""
        try:
            notification = rule.template.render(device, extra=extra)
        except TemplateError as exc:
            field = f"field '{exc.field}': " if exc.field else ""
            what = exc.message.split(" for the device at ")[0]
            what = _NO_KEY.sub(r"missing '\1' (the event has no such field)", what)
            reason = f"template {field}{what}"
            self.store.add_send(
                job,
                device.token,
                str(device.platform),
                collapse_id,
                state="settled",
                outcome=Outcome.REJECTED,
                reason=reason,
            )
            self.count(rule.name, "skipped", "template_error")
            self.recent_errors.append(f"{rule.name}: {reason}")
            if self._on_skip is not None:
                self._on_skip(
                    Skip(rule.name, "template_error", str(extra["event"]["id"]), job.user_id, reason)
                )
            return None
        return Firing(rule, job, device, notification, collapse_id)

    def _devices(self, job: Job) -> tuple[list[Device], str]:
        """The devices a job goes to, or why there are none."""
        if job.token:
            device = self.directory.device(job.token)
            if device is None:
                platform = parse_platform(job.platform) if job.platform else infer_platform(job.token)
                if platform is None or token_problem(job.token, platform) is not None:
                    return [], "bad_token"
                device = Device(job.token, platform, {"user_id": job.user_id} if job.user_id else {}, "event")
            if self.directory.is_invalid([job.token]):
                return [], "invalid_token"
            return [device], ""
        entries = self._user_devices(job.user_id)
        if not entries:
            return [], "unknown_user"
        devices = [e.device for e in entries if not e.invalid_reason]
        return (devices, "") if devices else ([], "no_valid_devices")

    def _user_devices(self, user_id: str) -> list[DirectoryEntry]:
        # A short-lived cache: a busy user's events need not each query and decode the directory.
        # A token this process finds invalid is dropped at once (forget); another process's
        # marks and imports are seen within DIRECTORY_TTL seconds.
        now = time.monotonic()
        cached = self._directory_cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        entries = self.directory.devices(user_id, include_invalid=True)
        if len(self._directory_cache) >= DIRECTORY_CACHE:
            self._directory_cache.clear()
        self._directory_cache[user_id] = (now + DIRECTORY_TTL, entries)
        return entries

    def forget(self, user_id: str) -> None:
        """Drop the cached devices of a user (one of their tokens was just found invalid)."""
        self._directory_cache.pop(user_id, None)

    # -- sends to (re)start ------------------------------------------------------------------

    def resume(self, sends: list[PendingSend]) -> list[Firing]:
        """Firings for sends to start again (claimed for this process): in flight when a process
        died (same collapse id: invisible if the device already has it), or deferred and due."""
        firings: list[Firing] = []
        for send in sends:
            if not self.store.claim_send(send.job_key, send.token):
                continue
            job = self.store.job(send.job_key)
            rule = self.rules.rules.get(send.rule)
            device = self.directory.device(send.token)
            if device is None:
                platform = parse_platform(send.platform)
                device = Device(send.token, platform, {}, "journal") if platform else None
            if job is None or rule is None or device is None:
                why = "rule_removed" if rule is None else "device_removed"
                stub = Job(send.job_key, send.rule, send.user_id, "", "", "", "[]", 0, 0)
                self.store.add_send(
                    stub,
                    send.token,
                    send.platform,
                    send.collapse_id,
                    state="settled",
                    outcome=Outcome.SKIPPED,
                    reason=why,
                )
                self.count(send.rule, "skipped", why)
                continue
            events = json.loads(job.events_json) or [{}]
            extra = {"event": events[-1], "events": events, "event_count": job.event_count}
            firing = self.render(rule, job, device, extra, send.collapse_id)
            if firing is not None:
                firings.append(firing)
        return firings


def _short(token: str) -> str:
    return token if len(token) <= 17 else f"{token[:8]}…{token[-8:]}"
