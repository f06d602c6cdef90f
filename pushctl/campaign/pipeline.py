"""From audience rows to work items: the per-device decisions made before anything is sent.

Reading straight down for one device: audience row → ``--where`` → journal state (settled
devices are not sent again) → held back for an A/B winner → suppression / the user's preferences /
known-invalid / frequency cap → schedule (local time or the user's best hour, quiet hours) →
variant → render → provider payload → marked *in flight* in the journal → handed to the sender.
Devices that end here (skipped, deferred, rejected) get their result at once; the rest leave as
:class:`~pushctl.delivery.sender.WorkItem`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

from pushctl.audience import Segment
from pushctl.campaign.ab import AB_HOLDOUT, AbPlan
from pushctl.campaign.besttime import BestTime
from pushctl.campaign.schedule import Cap, LocalTimeSlot, QuietHours, bad_zone_reason, decide
from pushctl.campaign.suppression import SuppressionList
from pushctl.delivery import WorkItem, prepare_item
from pushctl.errors import TemplateError
from pushctl.insights import Preferences
from pushctl.journal import DeviceState, Journal, Run
from pushctl.message import Template
from pushctl.model import Device
from pushctl.outcome import Outcome, Result
from pushctl.providers import Provider

CHUNK = 256
"""Devices looked up in the journal (and marked in flight) per transaction."""


@dataclass
class Controls:
    """Who gets the campaign now (issue: campaign controls)."""

    where: Segment | None = None
    suppression: SuppressionList | None = None
    skip_known_invalid: bool = False
    cap: Cap | None = None
    quiet_hours: QuietHours | None = None
    local_time: LocalTimeSlot | None = None
    default_zone: ZoneInfo | None = None
    best_time: BestTime | None = None
    """``--local-time best``: each device at its user's best hour, else the fallback slot."""
    preferences: Preferences | None = None
    """Users' choices per category (``--preferences``, ``pref_<category>`` columns, the journal)."""
    ab: AbPlan | None = None
    """``--ab-test`` / ``--winner-of``: the slice gets the variants, the rest waits or gets the winner."""


@dataclass
class PipelineStats:
    """Devices that never became results in this run, for the summary line."""

    filtered: int = 0
    """Excluded by ``--where`` (not part of the campaign)."""
    already_settled: int = 0
    """Settled by an earlier run of the same campaign."""
    deferred_until: dict[str, datetime] = field(default_factory=dict)
    """Earliest ``not_before`` per deferral reason, to tell the user when to run again."""


def chunked(devices: Iterable[Device], size: int = CHUNK) -> Iterator[list[Device]]:
    it = iter(devices)
    while chunk := list(islice(it, size)):
        yield chunk


class Pipeline:
    """Turns a device stream into work items, emitting the results decided on the way."""

    def __init__(
        self,
        *,
        template: Template,
        providers: Mapping[str, Provider],
        campaign_id: str,
        emit: Callable[[Result], None],
        now: datetime,
        controls: Controls | None = None,
        journal: Journal | None = None,
        run: Run | None = None,
        on_bad_row: Literal["fail", "skip"] = "fail",
        missing_provider: Mapping[str, str] | None = None,
        collapse_id: str | None = None,
    ) -> None:
        self.template = template
        self.providers = providers
        self.campaign_id = campaign_id
        self.emit = emit
        self.now = now
        self.controls = controls or Controls()
        self.journal = journal
        self.run = run
        self.on_bad_row = on_bad_row
        self.missing_provider = dict(missing_provider or {})
        self.stats = PipelineStats()
        self.collapse_id = run.collapse_id if run is not None else collapse_id
        self._rendered_any = False
        prefs = self.controls.preferences
        if prefs is not None and prefs.store is None and journal is not None:
            prefs.store = journal.preferences()
        self._category = template.preference_category
        self._slots: dict[str, LocalTimeSlot] = {}
        if self.controls.ab is not None and journal is not None and run is not None:
            self.controls.ab = self.controls.ab.recorded(journal.ab_tests(), campaign_id, resumed=run.resumed)

    def _skip(self, device: Device, outcome: Outcome, reason: str, variant: str = "") -> None:
        self.emit(Result(device.token, device.platform, outcome, reason, variant=variant, line=device.line))

    def items(self, devices: Iterable[Device]) -> Iterator[WorkItem]:
        """Work items for the devices that are to be sent now (lazily, chunk by chunk)."""
        where = self.controls.where
        if where is not None:
            devices = self._filtered(devices, where)
        for chunk in chunked(devices):
            yield from self._chunk(chunk)

    def _filtered(self, devices: Iterable[Device], where: Segment) -> Iterator[Device]:
        for device in devices:
            if where.matches_device(device):
                yield device
            else:
                self.stats.filtered += 1

    def _chunk(self, chunk: list[Device]) -> list[WorkItem]:
        c = self.controls
        tokens = [d.token for d in chunk]
        states = self.run.lookup(tokens) if self.run is not None else {}
        invalid: set[str] = set()
        counts: dict[str, int] = {}
        if self.journal is not None:
            if c.skip_known_invalid:
                invalid = self.journal.known_invalid(tokens)
            if c.cap is not None:
                counts = self.journal.delivered_counts_since(tokens, c.cap.since(self.now).timestamp())
        if c.preferences is not None and c.preferences.applies(self._category):
            c.preferences.prefetch(self._category or "", chunk)
        if c.best_time is not None:
            self._slots = self._best_slots(c.best_time, chunk, tokens)
        if self.run is not None:
            # Who each device belongs to, so `pushctl forget --user` can find it (only when the
            # audience has a user_id column; written with the chunk's in-flight marks).
            users = [(d.token, uid) for d in chunk if (uid := d.attrs.get("user_id"))]
            if users:
                self.run.note_users(users)
        items: list[WorkItem] = []
        for device in chunk:
            if states.get(device.token) is DeviceState.SETTLED:
                self.stats.already_settled += 1
                continue
            item = self._one(device, invalid, counts)
            if item is not None:
                items.append(item)
        if items and self.run is not None:
            # Durable before the first request leaves: a crash now re-sends these devices with
            # the campaign's collapse id, which the device shows as one notification.
            self.run.mark_inflight(
                [(i.device.token, i.device.platform, i.device.line, i.variant) for i in items]
            )
        return items

    def _best_slots(self, best: BestTime, chunk: list[Device], tokens: list[str]) -> dict[str, LocalTimeSlot]:
        """Each device's slot: the one a run of this campaign chose before, else a new choice (journaled)."""
        known = self.journal.ab_tests().slots(self.campaign_id, tokens) if self.journal and self.run else {}
        fresh = [d for d in chunk if d.token not in known]
        if fresh:
            store = self.journal.engagement() if self.journal is not None else None
            c = self.controls
            chosen = best.choose(fresh, store, now=self.now, default_zone=c.default_zone, quiet=c.quiet_hours)
            if self.run is not None:
                self.run.note_slots([(t, s.slot, s.basis, s.opens) for t, s in chosen.items()])
            known = {**known, **chosen}
        return {token: best.slot(choice) for token, choice in known.items()}

    def _one(self, device: Device, invalid: set[str], counts: dict[str, int]) -> WorkItem | None:
        c = self.controls
        forced_variant = None
        if c.ab is not None and not c.ab.in_slice(self.campaign_id, device.token):
            if c.ab.winner is None:
                # Held back, not judged: suppression, caps and the schedule apply when it is sent.
                self._skip(device, Outcome.DEFERRED, AB_HOLDOUT)
                return None
            forced_variant = c.ab.winner
        if c.suppression is not None and (reason := c.suppression.reason_for(device)):
            self._skip(device, Outcome.SKIPPED, reason)
            return None
        if c.preferences is not None and (reason := c.preferences.reason(self._category, device)):
            self._skip(device, Outcome.SKIPPED, reason)
            return None
        if device.token in invalid:
            self._skip(device, Outcome.SKIPPED, "known_invalid")
            return None
        if c.cap is not None and counts.get(device.token, 0) >= c.cap.count:
            self._skip(device, Outcome.SKIPPED, "frequency_cap")
            return None
        if c.local_time is not None or c.quiet_hours is not None or c.best_time is not None:
            zone_name = device.attrs.get("timezone", "")
            if zone_name and bad_zone_reason(zone_name):
                # A typo must not silently move a device into another zone's morning.
                self._skip(device, Outcome.SKIPPED, "bad_timezone")
                return None
            decision = decide(
                device.attrs,
                self.now,
                local_time=self._slots.get(device.token, c.local_time) if c.best_time else c.local_time,
                quiet_hours=c.quiet_hours,
                default_zone=c.default_zone,
                ignore_quiet_hours=self.template.ignores_quiet_hours,
            )
            if decision.action == "defer":
                if decision.not_before is not None:
                    known = self.stats.deferred_until.get(decision.reason)
                    if known is None or decision.not_before < known:
                        self.stats.deferred_until[decision.reason] = decision.not_before
                self._skip(device, Outcome.DEFERRED, decision.reason)
                return None
            if decision.action == "skip":
                self._skip(device, Outcome.SKIPPED, decision.reason)
                return None
        name = device.platform.provider
        provider = self.providers.get(name)
        if provider is None:
            self._skip(device, Outcome.SKIPPED, self.missing_provider.get(name, f"no_{name}_credentials"))
            return None
        variant = forced_variant or self.template.choose_variant(device.token, self.campaign_id) or ""
        try:
            notification = self.template.render(device, variant=variant or None)
        except TemplateError as exc:
            if not self._rendered_any:
                # Nothing rendered yet: most likely the template itself is wrong. Stop before
                # the first send (exit 2) rather than reject the whole audience device by device.
                raise
            # One row lacks what the template needs: that device's message is wrong, the
            # campaign goes on (the row is in the result's line, the field in its reason).
            field = f"field '{exc.field}': " if exc.field else ""
            what = exc.message.split(" for the device at ")[0]
            self._skip(device, Outcome.REJECTED, f"template {field}{what}", variant)
            return None
        self._rendered_any = True
        prepared = prepare_item(provider, device, notification, collapse_id=self.collapse_id, variant=variant)
        if isinstance(prepared, Result):
            self.emit(prepared)
            return None
        return prepared
