"""A testable clock: ``now()`` honours ``PUSHCTL_NOW``.

Setting ``PUSHCTL_NOW`` to an ISO 8601 timestamp with a UTC offset (``2026-12-01T08:55:00Z``,
``2026-12-01T09:00+08:00``) freezes pushctl's idea of the current time, so scheduling
(``--at``, ``--local-time``, quiet hours, frequency caps) can be rehearsed and tested::

    PUSHCTL_NOW=2026-12-01T08:55:00Z pushctl send --local-time 09:00 ...

The value is fixed: it does not advance with real time. Durations that must really elapse
(timeouts, retry back-off, pacing) use :func:`monotonic`, which is never overridden.
"""

from __future__ import annotations

import functools
import os
import time
from datetime import UTC, datetime

from pushctl.errors import InputError

ENV_VAR = "PUSHCTL_NOW"


def parse_now(text: str) -> datetime:
    """Parse a ``PUSHCTL_NOW`` value into an aware UTC datetime (InputError naming the variable)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"not an ISO 8601 timestamp: {text!r}",
            field=ENV_VAR,
            hint="e.g. 2026-12-01T08:55:00Z",
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(
            f"timestamp has no UTC offset: {text!r}", field=ENV_VAR, hint="add a UTC offset like +08:00 or Z"
        )
    return value.astimezone(UTC)


def now() -> datetime:
    """The current time as an aware UTC datetime, or the fixed ``PUSHCTL_NOW`` if it is set."""
    override = os.environ.get(ENV_VAR)
    # An empty value counts as unset so `PUSHCTL_NOW= pushctl ...` can clear an exported one.
    if override:
        return parse_now(override)
    return datetime.now(UTC)


def timestamp() -> float:
    """``now()`` as UNIX seconds; cheap enough for per-device journal stamps."""
    override = os.environ.get(ENV_VAR)
    if override:
        return _pinned(override)
    return time.time()


@functools.lru_cache(maxsize=4)
def _pinned(text: str) -> float:
    return parse_now(text).timestamp()


def monotonic() -> float:
    """Seconds on a monotonic clock, for measuring elapsed time (never affected by ``PUSHCTL_NOW``)."""
    return time.monotonic()
