"""The campaign journal (SQLite): runs, one row per device (in flight, then settled), resume,
the per-campaign lock, and the reports (``runs list/show/export``) built from it.

A device is marked in flight before its request leaves, so a crash never sends it twice visibly.
"""

from pushctl.journal.store import (
    FLUSH_ROWS,
    DeviceState,
    Journal,
    Run,
    collapse_id_for,
)

__all__ = [
    "FLUSH_ROWS",
    "DeviceState",
    "Journal",
    "Run",
    "collapse_id_for",
]
