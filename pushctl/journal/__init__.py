"""The journal (SQLite): campaign runs, one row per device (in flight, then settled), resume,
the per-campaign lock and the reports (``runs list/show/export``) built from it; and, in the same
database, the device directory (user id -> devices) and the trigger rules' state (events seen,
pending delayed and digest sends, trigger sends).

A device is marked in flight before its request goes out, so a crash never sends it twice visibly.
"""

from pushctl.journal.directory import (
    Directory,
    DirectoryEntry,
    ImportStats,
)
from pushctl.journal.store import (
    FLUSH_ROWS,
    DeviceState,
    Journal,
    Run,
    collapse_id_for,
)
from pushctl.journal.trigger_status import (
    ConsumerInfo,
    RuleStatus,
    TriggerStatus,
)
from pushctl.journal.triggers import (
    Job,
    PendingSend,
    TriggerStore,
)

__all__ = [
    "FLUSH_ROWS",
    "ConsumerInfo",
    "DeviceState",
    "Directory",
    "DirectoryEntry",
    "ImportStats",
    "Job",
    "Journal",
    "PendingSend",
    "RuleStatus",
    "Run",
    "TriggerStatus",
    "TriggerStore",
    "collapse_id_for",
]
