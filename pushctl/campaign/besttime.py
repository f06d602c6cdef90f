"""``--local-time best``: each device at its user's best hour (local time), else a fallback slot.

The slot chosen for a device is journaled (``device_slots``) the first time a run of the campaign
sees it, and reused by every later run: a cron job that runs the same command every 30 minutes
(or one ``--wait``) sends each device once, in its slot, even when opens imported in between would
now point at another hour. A best hour entirely inside the quiet hours is not used: the fallback
is (a device must not wait for a slot that quiet hours always cover).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pushctl.campaign.schedule import LocalTimeSlot, QuietHours, parse_clock, zone_for
from pushctl.insights import LOOKBACK, MIN_OPENS, best_hour, local_hours
from pushctl.journal import EngagementStore, SlotChoice
from pushctl.model import Device

__all__ = ["BestTime"]


@dataclass(frozen=True)
class BestTime:
    """The options of ``--local-time best``."""

    fallback: time
    """``--best-fallback``: the slot of devices whose user has too few opens."""
    window: timedelta = timedelta(hours=1)
    min_opens: int = MIN_OPENS
    lookback: timedelta = LOOKBACK

    def slot(self, choice: SlotChoice) -> LocalTimeSlot:
        return self.slot_at(parse_clock(choice.slot))

    def slot_at(self, at: time) -> LocalTimeSlot:
        return LocalTimeSlot(at, self.window)

    def choose(
        self,
        devices: Sequence[Device],
        store: EngagementStore | None,
        *,
        now: datetime,
        default_zone: ZoneInfo | None,
        quiet: QuietHours | None,
    ) -> dict[str, SlotChoice]:
        """A slot for each device: its user's best hour from the opens in ``store``, else the fallback."""
        fallback = SlotChoice(self.fallback.strftime("%H:%M"), "fallback")
        # event id -> time, per user and per token (an open naming both counts once).
        by_user: dict[str, dict[str, float]] = defaultdict(dict)
        by_token: dict[str, dict[str, float]] = defaultdict(dict)
        if store is not None:
            users = sorted({d.attrs["user_id"] for d in devices if d.attrs.get("user_id")})
            tokens = [d.token for d in devices]
            since = (now - self.lookback).timestamp()
            for event_id, (user, token, at) in store.open_times(users, tokens, since).items():
                if at > now.timestamp():
                    continue  # a rehearsal's pinned clock: what has not happened yet does not count
                if user:
                    by_user[user][event_id] = at
                if token:
                    by_token[token][event_id] = at
        chosen: dict[str, SlotChoice] = {}
        for device in devices:
            zone = zone_for(device.attrs, default_zone)
            user = device.attrs.get("user_id", "")
            opens = list(({**by_token.get(device.token, {}), **by_user.get(user, {})}).values())
            best = best_hour(local_hours(opens, zone), self.min_opens) if zone is not None and opens else None
            if best is None:
                chosen[device.token] = fallback
                continue
            choice = SlotChoice(f"{best.hour:02d}:00", "history", best.total)
            if quiet is not None and self.slot(choice).blocked_by(quiet):
                choice = SlotChoice(fallback.slot, "fallback", best.total)
            chosen[device.token] = choice
        return chosen
