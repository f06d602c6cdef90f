"""The scale-out side of ``pushctl send``: ``--workers`` and ``--shard``, their help, and how they
(and ``--metrics-file``) change a send's hooks."""

from __future__ import annotations

import dataclasses

from pushctl.campaign import AUTO_ROWS_PER_WORKER, CampaignSpec, Hooks
from pushctl.cli.console import Terminal
from pushctl.cli.progress import SendProgress
from pushctl.cli.results_view import result_json_text
from pushctl.delivery import InvalidTokenFile, ResultFile, Sender
from pushctl.metrics import MetricsFile
from pushctl.outcome import Result
from pushctl.scale import Shard

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
def devices_in(total: int | None, shard: Shard) -> int | None:
    """About how many of ``total`` audience rows a shard holds (for the bar and ``--spread``)."""
    if total is None or shard.whole:
        return total
    return -(-total // shard.count)


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
