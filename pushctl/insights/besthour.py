"""Each user's best hour: the local hour of the day at which they most often open pushes.

Learnt from the opens in the journal (``pushctl engage import``, or ``push_opened`` events read by
``trigger run``) of the last 60 days, in the device's own time zone, as Airship's optimal send
time does. A user's hour is trusted only after a minimum number of opens (3 by default): with
fewer, the campaign's fallback slot is used. Ties go to the earlier hour.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["LOOKBACK", "MIN_OPENS", "BestHour", "best_hour", "local_hours"]

LOOKBACK = timedelta(days=60)
"""How far back opens are looked at."""
MIN_OPENS = 3
"""Opens a user needs before their own hour is trusted."""


@dataclass(frozen=True, slots=True)
class BestHour:
    """The hour (0-23, local) with the most opens, with the counts it rests on."""

    hour: int
    opens: int
    """Opens in that hour."""
    total: int
    """Opens looked at."""


def local_hours(times: Iterable[float], zone: ZoneInfo) -> list[int]:
    """The local hour of each epoch time in ``zone``."""
    return [datetime.fromtimestamp(t, UTC).astimezone(zone).hour for t in times]


def best_hour(hours: Iterable[int], min_opens: int = MIN_OPENS) -> BestHour | None:
    """The most frequent hour, or None with fewer than ``min_opens`` opens."""
    counts = Counter(hours)
    total = sum(counts.values())
    if total < max(1, min_opens):
        return None
    hour, opens = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
    return BestHour(hour, opens, total)
