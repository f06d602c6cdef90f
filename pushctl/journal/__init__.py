"""journal"""

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
