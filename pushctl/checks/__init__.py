"""Proofs against the services: token checks (offline shape rules and online dry runs) and
online credential checks (APNs, FCM, Web Push VAPID, HMS).

They sit above :mod:`pushctl.providers` (an online check *is* a send that delivers nothing),
which keeps :mod:`pushctl.credentials` free of network code.
"""

from pushctl.checks.credentials_platforms import (
    check_online,
)
from pushctl.checks.tokens_offline import (
    Problem,
    TokenFinding,
    TokenReport,
    check_audience,
)
from pushctl.checks.tokens_online import (
    APNS_NOT_CHECKED,
    NOT_CHECKED_REASONS,
    WEBPUSH_NOT_CHECKED,
    Finding,
    OnlineFinding,
    OnlineReport,
    check_audience_online,
    finding_dict,
)

__all__ = [
    "APNS_NOT_CHECKED",
    "NOT_CHECKED_REASONS",
    "WEBPUSH_NOT_CHECKED",
    "Finding",
    "OnlineFinding",
    "OnlineReport",
    "Problem",
    "TokenFinding",
    "TokenReport",
    "check_audience",
    "check_audience_online",
    "check_online",
    "finding_dict",
]
