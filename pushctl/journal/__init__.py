"""The journal (SQLite): campaign runs, one row per device (in flight, then settled), resume,
the per-campaign lock, the shards of a campaign (``send --shard``, ``runs merge``) and the
reports (``runs list/show/export``) built from it; in the same database, the device directory
(user id -> devices) and the trigger rules' state (events seen, pending delayed and digest sends,
trigger sends), engagement (opens, conversions, dismissals attributed to sends), users'
preferences, A/B tests and ``--local-time best`` slots; and the removal of personal data:
``forget`` (erasure on request) and ``prune`` (retention).

A device is marked in flight before its request goes out, so a crash never sends it twice visibly.
Every table holding personal data is registered in :data:`PERSONAL_TABLES` (see
:mod:`pushctl.journal.personal`): erasure and retention walk that registry.
"""

from pushctl.journal.abtests import AbTest, AbTests, SlotChoice, in_ab_slice
from pushctl.journal.directory import (
    Directory,
    DirectoryEntry,
    ImportStats,
)
from pushctl.journal.engagement import (
    ATTRIBUTION_WINDOW,
    KINDS,
    AttributionStats,
    EngagementEvent,
    EngagementStore,
)
from pushctl.journal.engagement_reports import EngagementData, FunnelCounts, FunnelRow
from pushctl.journal.erasure import ForgetReport, PruneReport
from pushctl.journal.personal import PERSONAL_TABLES, PersonalTable
from pushctl.journal.preferences import PreferenceRow, PreferenceStore
from pushctl.journal.shards import MergeReport, ShardRun, lock_name, shard_runs
from pushctl.journal.store import (
    FLUSH_ROWS,
    DeviceState,
    Journal,
    Run,
    RunInfo,
    collapse_id_for,
    validate_campaign_id,
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
    "ATTRIBUTION_WINDOW",
    "FLUSH_ROWS",
    "KINDS",
    "PERSONAL_TABLES",
    "AbTest",
    "AbTests",
    "AttributionStats",
    "ConsumerInfo",
    "DeviceState",
    "Directory",
    "DirectoryEntry",
    "EngagementData",
    "EngagementEvent",
    "EngagementStore",
    "ForgetReport",
    "FunnelCounts",
    "FunnelRow",
    "ImportStats",
    "Job",
    "Journal",
    "MergeReport",
    "PendingSend",
    "PersonalTable",
    "PreferenceRow",
    "PreferenceStore",
    "PruneReport",
    "RuleStatus",
    "Run",
    "RunInfo",
    "ShardRun",
    "SlotChoice",
    "TriggerStatus",
    "TriggerStore",
    "collapse_id_for",
    "in_ab_slice",
    "lock_name",
    "shard_runs",
    "validate_campaign_id",
]
