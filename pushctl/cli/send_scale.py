"""The scale-out side of ``pushctl send`` (and the metrics file of ``tokens check``):
``--workers``, ``--shard`` and ``--metrics-file``, their help, and how they change a send's hooks."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pushctl.campaign import AUTO_ROWS_PER_WORKER, CampaignSpec, Hooks
from pushctl.cli.console import Terminal
from pushctl.cli.progress import SendProgress
from pushctl.cli.results_view import result_json_text
from pushctl.delivery import InvalidTokenFile, ResultFile, Sender
from pushctl.errors import ExitCode, PushctlError
from pushctl.metrics import MetricsFile, RunMetrics, Tally
from pushctl.outcome import Result
from pushctl.scale import Shard

T = TypeVar("T")

WORKERS_HELP = (
    "Worker processes sharing the send (one journal, one summary): a number, or auto = one per "
    f"usable core, at most one per {AUTO_ROWS_PER_WORKER:,} audience rows; 1 = this process alone. "
    "--concurrency and --rate are shared between them."
)
SHARD_HELP = (
    "Send only shard I of N (each device's shard: hash of campaign id and token), recorded as such "
    "in its journal: give each shard its own --journal, then `pushctl runs merge`. auto/N takes I "
    "from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or $SLURM_ARRAY_TASK_ID."
)
METRICS_FILE_HELP = (
    "Write Prometheus metrics (text format, atomically) to this .prom file as the run goes and at "
    "the end, for node_exporter's textfile collector."
)


def devices_in(total: int | None, shard: Shard) -> int | None:
    """About how many of ``total`` audience rows a shard holds (for the bar and ``--spread``)."""
    if total is None or shard.whole:
        return total
    return -(-total // shard.count)


def send_metrics(path: Path | None, shard: Shard) -> MetricsFile | None:
    """The ``--metrics-file`` of a send (labelled with its shard; the campaign once known)."""
    if path is None:
        return None
    return MetricsFile(path, RunMetrics("send", Tally(), shard="all" if shard.whole else str(shard)))


def scale_hooks(
    hooks: Hooks,
    spec: CampaignSpec,
    terminal: Terminal,
    progress: SendProgress,
    files: list[ResultFile | InvalidTokenFile],
    metrics: MetricsFile | None,
) -> Hooks:
    """``hooks`` for ``spec``: fed to the metrics file, and, with worker processes, fed in batches
    (counts for the bar, JSON lines the workers encoded, results only for the results files)."""
    if metrics is not None:
        started = hooks.on_start

        def on_start(campaign_id: str, resumed: bool, sender: Sender | None) -> None:
            metrics.metrics.campaign = campaign_id
            metrics.write()
            started(campaign_id, resumed, sender)

        hooks = dataclasses.replace(hooks, on_start=on_start, tally=metrics.metrics.tally)
    if spec.workers <= 1:
        return hooks

    def on_result(result: Result) -> None:
        for f in files:
            f.write(result)

    def flush() -> None:
        for f in files:
            f.flush()

    return dataclasses.replace(
        hooks,
        on_result=on_result,
        flush=flush,
        on_counts=progress.add_counts,
        on_lines=terminal.json_text,
        result_line=result_json_text if terminal.json else None,
        forward_results=bool(files),
    )


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
