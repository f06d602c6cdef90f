"""The campaign journal (SQLite): runs, one row per device (in flight, then settled), resume,
the per-campaign lock, the reports (``runs list/show/export``) built from it, and the removal of
personal data: ``forget`` (erasure on request) and ``prune`` (retention).

A device is marked in flight before its request leaves, so a crash never sends it twice visibly.
Every table holding personal data is registered in :data:`PERSONAL_TABLES` (see
:mod:`pushctl.journal.personal`): erasure and retention walk that registry.
"""

from pushctl.journal.erasure import ForgetReport, PruneReport
from pushctl.journal.personal import PERSONAL_TABLES, PersonalTable
from pushctl.journal.store import (
    FLUSH_ROWS,
    DeviceState,
    Journal,
    Run,
    collapse_id_for,
)

__all__ = [
    "FLUSH_ROWS",
    "PERSONAL_TABLES",
    "DeviceState",
    "ForgetReport",
    "Journal",
    "PersonalTable",
    "PruneReport",
    "Run",
    "collapse_id_for",
]
