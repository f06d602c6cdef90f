"""The registry of journal tables that hold personal data: what ``forget`` and retention walk.

**A new table holding personal data must register here** (one line in :data:`PERSONAL_TABLES`):
any table with a device token, a user id, a device's attributes, preferences or engagement
events. ``tests/test_personal_registry.py`` fails when a ``CREATE TABLE`` anywhere in ``pushctl/``
has a token- or user-like column and no entry here, so a room cannot forget to.

Each entry says

* which column holds a device **token** and/or a **user** id: ``pushctl forget --token T`` deletes
  the rows whose token column is ``T``; ``--user U`` first collects the tokens linked to ``U`` in
  every table that has both columns, then deletes the rows with those tokens *or* that user id;
* whether rows belong to a **run** (the column naming the campaign): ``runs prune`` / the profile's
  ``journal.retention`` delete them with the per-device data of runs that ended before the window,
  and ``forget`` leaves alone the rows of a campaign being sent right now;
* or, for rows tied to no run (engagement events, trigger state), the **at** column (epoch
  seconds) retention compares with the window; rows with neither (a device directory: current
  state, not history) are only erased on request;
* how **aggregates** survive: ``tally`` is SQL run just before the rows go, with ``{where}``
  selecting them, that folds them into counts kept elsewhere (``run_tallies`` for the device
  rows, so ``runs show`` totals do not change); None when no report is built from the rows.

The deleting itself is :mod:`pushctl.journal.erasure`; it never needs to know the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushctl.journal.engagement import ENGAGEMENT_TALLY

__all__ = ["PERSONAL_TABLES", "PersonalTable"]


@dataclass(frozen=True, slots=True)
class PersonalTable:
    """One journal table with personal data, and how erasure and retention treat its rows."""

    table: str
    token: str | None = None
    """Column holding a device token."""
    user: str | None = None
    """Column holding a user id."""
    run: str | None = None
    """Column naming the campaign the row belongs to (pruned with that run's device rows)."""
    at: str | None = None
    """For rows tied to no run: the epoch-seconds column retention compares with its window."""
    tally: str | None = None
    """SQL folding the rows about to be deleted (``{where}``) into aggregates kept elsewhere."""

    def __post_init__(self) -> None:
        if self.token is None and self.user is None:
            raise ValueError(f"{self.table}: a personal-data table names its token or user column")


# Per-device rows of a run -> per-run counts by outcome, reason, variant and platform (what
# `runs show` and the summary read besides the remaining device rows). '' = still in flight.
DEVICES_TALLY = """
INSERT INTO run_tallies (campaign_id, outcome, reason, variant, platform, devices, retries)
SELECT campaign_id, COALESCE(outcome, ''), COALESCE(reason, ''), variant, platform, COUNT(*),
       SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END)
FROM devices WHERE {where}
GROUP BY campaign_id, COALESCE(outcome, ''), COALESCE(reason, ''), variant, platform
ON CONFLICT (campaign_id, outcome, reason, variant, platform) DO UPDATE SET
    devices = devices + excluded.devices, retries = retries + excluded.retries
"""

PERSONAL_TABLES: tuple[PersonalTable, ...] = (
    PersonalTable("devices", token="token", run="campaign_id", tally=DEVICES_TALLY),
    PersonalTable("device_users", token="token", user="user_id", run="campaign_id"),
    # The device directory and the invalid marks are current state, not history: erased on
    # request only. Trigger jobs and sends age out with retention; their counters live in
    # trigger_counts (no personal data), so `trigger status` totals survive.
    PersonalTable("directory", token="token", user="user_id"),
    PersonalTable("invalid_tokens", token="token", user="user_id"),
    PersonalTable("trigger_jobs", token="token", user="user_id", at="created_at"),
    PersonalTable("trigger_sends", token="token", user="user_id", at="created_at"),
    # Engagement (issue 13): raw events age out with retention (best hours read the last 60 days);
    # the per-device summary of a campaign goes with its run, folded into engagement_tallies so
    # `runs report` keeps its totals. Preferences are current state: erased on request only.
    PersonalTable("engagement_events", token="token", user="user_id", at="occurred_at"),
    PersonalTable("engagement_devices", token="token", run="campaign_id", tally=ENGAGEMENT_TALLY),
    PersonalTable("device_slots", token="token", run="campaign_id"),
    PersonalTable("preferences", token="token", user="user_id"),
)
