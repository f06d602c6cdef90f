"""A campaign from spec to summary: the spec and its run (:func:`run_campaign`), the pipeline that
turns audience rows into work items, and the controls on the way: schedule (``--at``, local time,
quiet hours, spread), frequency caps and suppression lists. Broadcasts (:func:`run_broadcast`: one
message to an FCM topic / condition or an APNs channel) are journaled as one-send campaigns; APNs
broadcast channels are managed with :class:`Channels`. :func:`run_scaled` runs a campaign (or
its ``--shard``) on ``--workers`` processes.

It feeds :mod:`pushctl.delivery` and records in :mod:`pushctl.journal`; it never talks to a
provider itself.
"""

from pushctl.campaign.ab import AB_HOLDOUT, AbPlan, parse_share
from pushctl.campaign.besttime import BestTime
from pushctl.campaign.broadcast import (
    BroadcastReport,
    BroadcastSpec,
    Channels,
    run_broadcast,
)
from pushctl.campaign.pipeline import (
    Controls,
    Pipeline,
)
from pushctl.campaign.run import (
    CampaignReport,
    CampaignSpec,
    Hooks,
    build_providers,
    check_start_time,
    derive_id,
    providers_for,
    run_campaign,
)
from pushctl.campaign.schedule import (
    Cap,
    Decision,
    LocalTimeSlot,
    QuietHours,
    Spreader,
    bad_zone_reason,
    decide,
    parse_at,
    parse_clock,
    parse_duration,
    zone_for,
)
from pushctl.campaign.suppression import (
    SuppressionList,
)
from pushctl.campaign.workers import (
    AUTO_ROWS_PER_WORKER,
    run_scaled,
    workers_for,
)

__all__ = [
    "AB_HOLDOUT",
    "AUTO_ROWS_PER_WORKER",
    "AbPlan",
    "BestTime",
    "BroadcastReport",
    "BroadcastSpec",
    "CampaignReport",
    "CampaignSpec",
    "Cap",
    "Channels",
    "Controls",
    "Decision",
    "Hooks",
    "LocalTimeSlot",
    "Pipeline",
    "QuietHours",
    "Spreader",
    "SuppressionList",
    "bad_zone_reason",
    "build_providers",
    "check_start_time",
    "decide",
    "derive_id",
    "parse_at",
    "parse_clock",
    "parse_duration",
    "parse_share",
    "providers_for",
    "run_broadcast",
    "run_campaign",
    "run_scaled",
    "workers_for",
    "zone_for",
]
