"""Automatic pushes: rules that turn a stream of user events into personalised notifications.

A rules file (:class:`RuleSet`) says which event types fire which templates, for whom and when
(``where``, ``delay`` / ``send_at`` with ``cancel_on``, ``throttle``, ``dedupe_key``, ``digest``,
per-rule quiet hours and caps shared with campaigns). Events come from JSON Lines (a file, stdin,
or a growing file) or a Redis stream read by a consumer group; the :class:`Engine` records every
decision in the journal before the source acknowledges an event, and its sends go through the
campaign sender (:mod:`pushctl.delivery`) as one more source of work items.
"""

from pushctl.triggers.engine import (
    Engine,
    Firing,
    Skip,
    collapse_id_for_job,
)
from pushctl.triggers.events import (
    Event,
    EventExpr,
    FieldMap,
    parse_event,
    parse_line,
    parse_time,
)
from pushctl.triggers.record import (
    EventSource,
    Record,
)
from pushctl.triggers.rules import (
    Digest,
    Rule,
    RuleSet,
)
from pushctl.triggers.runner import (
    SendRecord,
    TriggerHooks,
    TriggerReport,
    TriggerSpec,
    TriggerStats,
    run_triggers,
)
from pushctl.triggers.sources import (
    FileSource,
    StdinSource,
    open_source,
)

__all__ = [
    "Digest",
    "Engine",
    "Event",
    "EventExpr",
    "EventSource",
    "FieldMap",
    "FileSource",
    "Firing",
    "Record",
    "Rule",
    "RuleSet",
    "SendRecord",
    "Skip",
    "StdinSource",
    "TriggerHooks",
    "TriggerReport",
    "TriggerSpec",
    "TriggerStats",
    "collapse_id_for_job",
    "open_source",
    "parse_event",
    "parse_line",
    "parse_time",
    "run_triggers",
]
