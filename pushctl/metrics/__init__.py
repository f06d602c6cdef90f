"""Metrics a monitoring stack can scrape: what a run counts (:class:`Tally`: notifications by
provider, platform, outcome and reason, retries, latencies, in flight), its Prometheus families
(:class:`RunMetrics`, a prometheus_client collector), written as a textfile-collector file
(``--metrics-file``, :class:`MetricsFile`) or served over HTTP (``trigger run --metrics-port``,
:func:`serve_metrics`).
"""

from pushctl.metrics.families import (
    COMPLETED_EXIT_CODES,
    Extra,
    RunMetrics,
    family_values,
)
from pushctl.metrics.server import (
    DEFAULT_METRICS_HOST,
    serve_metrics,
)
from pushctl.metrics.tally import (
    LATENCY_BUCKETS,
    Tally,
    reason_label,
)
from pushctl.metrics.textfile import (
    DEFAULT_INTERVAL,
    MetricsFile,
    check_metrics_path,
)

__all__ = [
    "COMPLETED_EXIT_CODES",
    "DEFAULT_INTERVAL",
    "DEFAULT_METRICS_HOST",
    "LATENCY_BUCKETS",
    "Extra",
    "MetricsFile",
    "RunMetrics",
    "Tally",
    "check_metrics_path",
    "family_values",
    "reason_label",
    "serve_metrics",
]
