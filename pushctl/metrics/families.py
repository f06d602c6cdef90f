"""A run's metric families, for prometheus_client's registry and exposition.

Every family is labelled ``command`` (``send``, ``tokens_check``, ``trigger``), ``campaign`` and
``shard`` (``I/N``, or ``all``):

=============================================  =========  ==================================================
``pushctl_notifications_total``                counter    devices by ``provider``, ``platform``, ``outcome``,
                                                          ``reason`` (a token check counts its checks here)
``pushctl_retries_total``                      counter    attempts beyond the first, by ``provider``
``pushctl_send_latency_seconds``               histogram  first attempt to final answer, by ``provider``
``pushctl_in_flight``                          gauge      requests on the wire now
``pushctl_run_start_timestamp_seconds``        gauge      when this run started
``pushctl_run_duration_seconds``               gauge      how long it has run (until it ended)
``pushctl_run_running``                        gauge      1 while it runs, 0 once it ended
``pushctl_run_exit_code``                      gauge      the command's exit code (once it ended)
``pushctl_last_success_timestamp_seconds``     gauge      when a run last completed (exit 0 or 1: every
                                                          device answered), carried over from the previous
                                                          file when this run did not
=============================================  =========  ==================================================

``trigger run`` adds its own families through ``extra`` (events consumed, decisions of its rules,
consumer lag, pending delayed sends); there ``campaign`` is the rule set and ``shard`` the consumer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal

from pushctl.metrics.tally import LATENCY_BUCKETS, Tally

if TYPE_CHECKING:  # imported when metrics are written: a send without them never loads it
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["COMPLETED_EXIT_CODES", "Extra", "RunMetrics", "family_values"]

COMPLETED_EXIT_CODES = (0, 1)
"""Exit codes of a run that completed (every device answered, some perhaps not delivered)."""

_BASE = ("command", "campaign", "shard")

Extra = tuple[Literal["counter", "gauge"], str, str, list[tuple[dict[str, str], float]]]
"""A family of a command's own: kind, name, help, and ``(labels, value)`` samples."""


def _bucket_bound(bound: float) -> str:
    return f"{bound:g}"


class RunMetrics:
    """The metrics of one run: a prometheus_client collector over a :class:`Tally`."""

    def __init__(
        self, command: str, tally: Tally | None = None, *, campaign: str = "", shard: str = "all"
    ) -> None:
        self.command = command
        self.tally = tally if tally is not None else Tally()
        self.campaign = campaign
        self.shard = shard
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.last_completed = 0.0
        """Epoch seconds of the last completed run (this one once it completes, else carried over)."""
        self.extra: Callable[[], Iterable[Extra]] | None = None
        """More families (``trigger run``), read at each collection."""

    def finish(self, exit_code: int) -> None:
        """The run ended with ``exit_code``."""
        self.finished_at = time.time()
        self.exit_code = exit_code
        if exit_code in COMPLETED_EXIT_CODES:
            self.last_completed = self.finished_at

    def registry(self) -> CollectorRegistry:
        """A registry holding just these metrics."""
        from prometheus_client.registry import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        base = [self.command, self.campaign, self.shard]
        tally = self.tally
        notifications = CounterMetricFamily(
            "pushctl_notifications",
            "Devices by provider, platform, outcome and reason.",
            labels=[*_BASE, "provider", "platform", "outcome", "reason"],
        )
        for (provider, platform, outcome, reason), n in sorted(tally.notifications.items()):
            notifications.add_metric([*base, provider, platform, outcome, reason], n)
        yield notifications
        retries = CounterMetricFamily(
            "pushctl_retries", "Attempts beyond the first, by provider.", labels=[*_BASE, "provider"]
        )
        for provider, n in sorted(tally.retries.items()):
            retries.add_metric([*base, provider], n)
        yield retries
        latency = HistogramMetricFamily(
            "pushctl_send_latency_seconds",
            "From a device's first attempt to its final answer.",
            labels=[*_BASE, "provider"],
        )
        for provider, counts in sorted(tally.latency.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*map(_bucket_bound, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            latency.add_metric([*base, provider], buckets, tally.latency_sum[provider])
        yield latency
        yield from self._gauges(base)
        if self.extra is not None:
            for kind, name, documentation, samples in self.extra():
                family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                names = sorted({key for labels, _value in samples for key in labels})
                family = family_type(name, documentation, labels=[*_BASE, *names])
                for labels, value in samples:
                    family.add_metric([*base, *(labels.get(key, "") for key in names)], value)
                yield family

    def _gauges(self, base: list[str]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        end = self.finished_at if self.finished_at is not None else time.time()
        values: list[tuple[str, str, float | None]] = [
            ("pushctl_in_flight", "Requests on the wire now.", self.tally.in_flight),
            ("pushctl_run_start_timestamp_seconds", "When this run started.", self.started_at),
            (
                "pushctl_run_duration_seconds",
                "How long this run has run, until it ended.",
                end - self.started_at,
            ),
            (
                "pushctl_run_running",
                "1 while the run goes on, 0 once it ended.",
                float(self.finished_at is None),
            ),
            ("pushctl_run_exit_code", "The command's exit code, once it ended.", self.exit_code),
            (
                "pushctl_last_success_timestamp_seconds",
                "When a run last completed (exit 0 or 1: every device answered).",
                self.last_completed or None,
            ),
        ]
        for name, documentation, value in values:
            family = GaugeMetricFamily(name, documentation, labels=list(_BASE))
            if value is not None:
                family.add_metric(base, float(value))
            yield family


def family_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of every sample of ``name`` in a text exposition (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: list[tuple[dict[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found
