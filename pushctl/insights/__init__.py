"""Measure and optimise: engagement (opens, conversions, dismissals) read from files or event
streams and attributed to sends, funnels with Wilson intervals, A/B verdicts (two-proportion and
chi-squared tests, lift, the deliveries still needed), the winner of an A/B test for the rest,
each user's best hour from their opens, users' preferences per category, and the HTML report.

It sits above :mod:`pushctl.journal` (where the data lives) and below :mod:`pushctl.campaign` and
:mod:`pushctl.triggers`, which ask it whom to send to, which variant, and when.
"""

from pushctl.insights.besthour import LOOKBACK, MIN_OPENS, BestHour, best_hour, local_hours
from pushctl.insights.events import (
    EVENT_TYPES,
    BadEvent,
    EngagementReader,
    ReadStats,
    engagement_kind,
    event_from_mapping,
    parse_timestamp,
)
from pushctl.insights.html_report import render_html, write_html
from pushctl.insights.preferences import (
    PREFERENCE,
    PreferenceFile,
    PreferenceReadStats,
    Preferences,
    parse_opted_in,
    read_preferences,
)
from pushctl.insights.report import CampaignReport, Funnel, Rate, build_report
from pushctl.insights.stats import (
    TestResult,
    chi_squared_sf,
    chi_squared_test,
    relative_lift,
    sample_size,
    two_proportion_test,
    wilson,
)
from pushctl.insights.verdict import METRICS, VariantStat, Verdict, decide_verdict, format_p, percent
from pushctl.insights.winner import WinnerChoice, choose_winner

__all__ = [
    "EVENT_TYPES",
    "LOOKBACK",
    "METRICS",
    "MIN_OPENS",
    "PREFERENCE",
    "BadEvent",
    "BestHour",
    "CampaignReport",
    "EngagementReader",
    "Funnel",
    "PreferenceFile",
    "PreferenceReadStats",
    "Preferences",
    "Rate",
    "ReadStats",
    "TestResult",
    "VariantStat",
    "Verdict",
    "WinnerChoice",
    "best_hour",
    "build_report",
    "chi_squared_sf",
    "chi_squared_test",
    "choose_winner",
    "decide_verdict",
    "engagement_kind",
    "event_from_mapping",
    "format_p",
    "local_hours",
    "parse_opted_in",
    "parse_timestamp",
    "percent",
    "read_preferences",
    "relative_lift",
    "render_html",
    "sample_size",
    "two_proportion_test",
    "wilson",
    "write_html",
]
