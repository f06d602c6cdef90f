"""The metrics options of the commands: ``send`` and ``tokens check --online`` ``--metrics-file``,
``trigger run --metrics-port`` / ``--metrics-host``, and the exit code their last write holds."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pushctl.errors import ExitCode, PushctlError
from pushctl.metrics import DEFAULT_METRICS_HOST, Extra, MetricsFile, RunMetrics, Tally, serve_metrics
from pushctl.scale import Shard

if TYPE_CHECKING:
    from pushctl.checks import OnlineReport
    from pushctl.triggers import SendRecord, TriggerHooks, TriggerStats

T = TypeVar("T")

METRICS_FILE_HELP = (
    "Write Prometheus metrics (text format, atomically) to this .prom file as the run goes and at "
    "the end, for node_exporter's textfile collector."
)
METRICS_PORT_HELP = "Serve Prometheus metrics at http://HOST:PORT/metrics while running (e.g. 9464)."
METRICS_HOST_HELP = f"Address for --metrics-port ({DEFAULT_METRICS_HOST}: this machine only)."


def send_metrics(path: Path | None, shard: Shard) -> MetricsFile | None:
    """The ``--metrics-file`` of a send (labelled with its shard; the campaign once known)."""
    if path is None:
        return None
    return MetricsFile(path, RunMetrics("send", Tally(), shard="all" if shard.whole else str(shard)))


def exit_code_of(exc: BaseException) -> int:
    """The exit code an exception ends the command with (for the metrics written last)."""
    if isinstance(exc, PushctlError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return int(ExitCode.INTERRUPTED)
    code = getattr(exc, "exit_code", None)  # typer.Exit
    return int(code) if isinstance(code, int) else int(ExitCode.UNAVAILABLE)


async def with_metrics(metrics: MetricsFile | None, run: Coroutine[Any, Any, T], code_of: Any = None) -> T:
    """Await ``run`` while ``metrics`` is rewritten every few seconds; the last write holds the
    exit code (``code_of(result)``, else the exception's)."""
    if metrics is None:
        return await run
    async with metrics.running():
        try:
            result = await run
        except BaseException as exc:
            metrics.metrics.finish(exit_code_of(exc))
            raise
        metrics.metrics.finish(int(code_of(result)) if code_of is not None else 0)
        return result



def tokens_metrics(path: Path | None, audience: str) -> MetricsFile | None:
    """The ``--metrics-file`` of ``tokens check --online`` (its campaign label: the audience's name)."""
    if path is None:
        return None
    name = "stdin" if audience == "-" else Path(audience).name
    return MetricsFile(path, RunMetrics("tokens_check", Tally(), campaign=name))


def online_exit_code(report: OnlineReport) -> int:
    """The exit code ``tokens check --online`` ends with (see its ``--help``)."""
    if report.auth_failure:
        return int(ExitCode.AUTH)
    return int(ExitCode.OK if report.ok else ExitCode.PARTIAL)


@contextlib.contextmanager
def trigger_metrics(
    port: int | None, host: str, ruleset: str, consumer: str, say: Callable[[str], None]
) -> Iterator[RunMetrics | None]:
    """``trigger run --metrics-port``: the run's metrics served while the body runs (campaign =
    the rule set, shard = the consumer); the families gain the trigger's own once it starts
    (:func:`watch_trigger`)."""
    if port is None:
        yield None
        return
    metrics = RunMetrics("trigger", Tally(), campaign=ruleset, shard=consumer)
    with serve_metrics(metrics, port, host) as bound:
        shown = f"[{host}]" if ":" in host else host
        say(f"metrics at http://{shown}:{bound}/metrics")
        try:
            yield metrics
        finally:
            metrics.finish(0 if metrics.exit_code is None else metrics.exit_code)


def watch_trigger(metrics: RunMetrics, stats: TriggerStats) -> None:
    """Add the trigger run's families: events consumed, rule decisions, lag, pending sends."""
    metrics.tally.in_flight_probe = lambda: stats.in_flight

    def extra() -> list[Extra]:
        decisions = [
            ({"rule": rule, "decision": what, "reason": reason}, float(n))
            for (rule, what, reason), n in sorted(stats.totals.items())
        ]
        families: list[Extra] = [
            ("counter", "pushctl_trigger_events", "Events consumed from the source.",
             [({}, float(stats.records))]),
            ("counter", "pushctl_trigger_malformed_events", "Events that could not be read (dead letters).",
             [({}, float(stats.malformed))]),
            ("counter", "pushctl_trigger_decisions", "What the rules did: fired, scheduled, cancelled, "
             "skipped (with a reason)...", decisions),
            ("gauge", "pushctl_trigger_pending_delayed_sends",
             "Delayed and digest sends waiting in the journal.", [({}, float(stats.pending))]),
        ]  # fmt: skip
        if stats.lag is not None:
            families.append(("gauge", "pushctl_trigger_consumer_lag",
                             "Unread: Redis entries not yet delivered to the group plus unacknowledged ones "
                             "(a file: bytes).", [({}, float(stats.lag))]))  # fmt: skip
        return families

    metrics.extra = extra


def metered_trigger_hooks(hooks: TriggerHooks, metrics: RunMetrics | None) -> TriggerHooks:
    """``hooks`` that also count every send in ``metrics`` and give it the run's live numbers."""
    if metrics is None:
        return hooks
    on_result, on_start = hooks.on_result, hooks.on_start

    def counted(record: SendRecord) -> None:
        metrics.tally.add(record.result)
        on_result(record)

    def started(stats: TriggerStats, consumer: str) -> None:
        watch_trigger(metrics, stats)
        on_start(stats, consumer)

    return dataclasses.replace(hooks, on_result=counted, on_start=started)
