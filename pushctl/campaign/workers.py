"""``send --workers N``: one campaign on N processes, one journal, one lock, one summary.

The parent opens the run (its row and its lock, as a single process would), then starts N
workers (:class:`pushctl.scale.WorkerPool`). Worker j reads the whole audience and keeps the
devices of part j of the campaign's shard (:meth:`pushctl.scale.Shard.split`: the one cut,
``blake2b(campaign id, token)``), so a token always lands in the same worker and duplicates
are still found; it renders, sends and journals them itself (SQLite WAL: the workers write
their batches into the same journal, each device marked in flight before it is sent, exactly
as one process does), and reports to the parent in batches: counts for the progress bar, the
JSON lines it formatted, results when a results file wants them, a copy of its metrics tally.

Why every worker reads the audience rather than the parent handing out rows: parsing a row costs
a few microseconds against ~100-200 µs to send it, and rows cross no pipe
(``benchmarks/README.md``, "--workers").

Resume stays exact: a worker's journal writes are those of a single process, and a ``kill -9``
of the parent takes the workers with it (``PR_SET_PDEATHSIG``), so the next run finds every
device either settled or in flight, whatever the number of workers then. Ctrl-C (once: finish
what is in flight; twice: abort) is the parent's, forwarded to the workers.

Budgets are the campaign's, shared: ``--concurrency`` and ``--rate`` are split between the
workers; ``--max-connections`` is per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pushctl.audience import AudienceReader, BadRow
from pushctl.campaign.pipeline import PipelineStats
from pushctl.campaign.run import CampaignReport, CampaignSpec, Hooks, _send, build_providers, run_campaign
from pushctl.delivery import Event, Sender, Summary
from pushctl.errors import InputError
from pushctl.journal import Journal, Run
from pushctl.message import Template
from pushctl.metrics import Tally
from pushctl.outcome import Result
from pushctl.providers import Provider
from pushctl.runtime import on_stop_signals
from pushctl.scale import Shard, WorkerContext, WorkerPool, usable_cores

__all__ = ["AUTO_ROWS_PER_WORKER", "run_scaled", "send_with_workers", "workers_for"]

AUTO_ROWS_PER_WORKER = 10_000
"""``--workers auto`` starts one worker per this many audience rows, up to the usable cores:
a worker costs a second or so to start (a fresh interpreter), which small sends never win back."""

_BATCH_SECONDS = 0.1
_BATCH_RESULTS = 2_000
_TALLY_SECONDS = 0.5


def workers_for(option: str, rows: int | None) -> int:
    """``--workers``: a number, or ``auto`` (one per usable core, one per
    :data:`AUTO_ROWS_PER_WORKER` rows at most; 1 for stdin, which can be read only once)."""
    text = option.strip().lower()
    if text == "auto":
        if rows is None:
            return 1
        return max(1, min(usable_cores(), rows // AUTO_ROWS_PER_WORKER))
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"--workers {option}: a number of processes (1 or more) or auto", field="--workers")
    count = int(text)
    if count > 1 and rows is None:
        raise InputError(
            "--workers reads the audience once per worker: it needs a file, not stdin",
            field="--workers",
            hint="save the audience to a file, or use --workers 1",
        )
    return count


@dataclass
class _Job:
    """What one worker needs (pickled to it)."""

    spec: CampaignSpec
    campaign_id: str
    part: Shard
    resumed: bool
    result_line: Callable[[Result], str] | None
    forward_results: bool
    tally: bool


@dataclass
class _WorkerReport:
    """What a worker hands back at the end."""

    this_run: Summary
    stats: PipelineStats
    bad_rows: list[BadRow]
    bad_row_count: int
    duplicates: int
    stopped_reason: str | None
    tally: Tally | None


@dataclass
class _Combined:
    """The workers' pipeline statistics, summed (what run_campaign reads as ``pipeline.stats``)."""

    stats: PipelineStats = field(default_factory=PipelineStats)


def _fixed(value: bytes | None) -> bytes | None:
    return value


def _share(spec: CampaignSpec, workers: int) -> CampaignSpec:
    """The campaign's spec for one of ``workers`` workers: its share of the concurrency and rate."""
    send = spec.send
    concurrency = {name: max(1, math.ceil(n / workers)) for name, n in send.concurrency.items()}
    rate = send.rate / workers if send.rate else send.rate
    password = spec.password
    # A key's password is asked once, here, not in every worker.
    fixed = functools.partial(_fixed, password()) if password is not None else None
    return dataclasses.replace(
        spec, send=dataclasses.replace(send, concurrency=concurrency, rate=rate), password=fixed, workers=1
    )


class _Feed:
    """A worker's side of the pipe: batches of results, events and tally copies for the parent."""

    def __init__(self, context: WorkerContext, job: _Job, tally: Tally | None) -> None:
        self.context = context
        self.line = job.result_line
        self.forward = job.forward_results
        self.tally = tally
        self.counts: Counter[str] = Counter()
        self.lines: list[str] = []
        self.results: list[tuple[Any, ...]] = []
        self.pending = 0
        self._tally_sent = 0.0

    def add(self, result: Result) -> None:
        self.counts[str(result.outcome)] += 1
        if self.line is not None:
            self.lines.append(self.line(result))
        if self.forward:
            self.results.append(dataclasses.astuple(result))
        self.pending += 1
        if self.pending >= _BATCH_RESULTS:
            self.flush()

    def event(self, event: Event) -> None:
        self.flush()
        self.context.send(("event", event.kind, event.message))

    @property
    def outputs(self) -> bool:
        """Whether the parent writes this worker's results anywhere (JSON lines, result files)."""
        return self.line is not None or self.forward

    def flush(self, *, final: bool = False, sync: bool = False) -> None:
        now = time.monotonic()
        tally = None
        if self.tally is not None and (final or now - self._tally_sent >= _TALLY_SECONDS):
            tally = self.tally.snapshot()
            self._tally_sent = now
        if not self.pending and tally is None and not sync:
            return
        batch = ("batch", dict(self.counts), "".join(self.lines), self.results, tally, sync)
        if sync:
            self.context.sync(batch)
        else:
            self.context.send(batch)
        self.counts = Counter()
        self.lines = []
        self.results = []
        self.pending = 0

    async def every(self) -> None:
        while True:
            await asyncio.sleep(_BATCH_SECONDS)
            self.flush()


async def _worker(context: WorkerContext, job: _Job) -> _WorkerReport:
    """One worker: its part of the campaign, sent and journaled (runs in the worker process)."""
    spec = job.spec
    template = Template.load(spec.template)
    bad_rows: list[BadRow] = []
    reader = AudienceReader(
        spec.audience, fmt=spec.audience_format, on_bad_row=spec.on_bad_row,
        on_skip=lambda row: bad_rows.append(row) if len(bad_rows) < 100 else None,
    )  # fmt: skip
    reader.keep = job.part.member(job.campaign_id)
    providers, missing = build_providers(spec)
    tally = Tally() if job.tally else None
    feed = _Feed(context, job, tally)
    this_run = Summary(campaign=job.campaign_id)

    def on_start(_campaign: str, _resumed: bool, sender: Sender | None) -> None:
        assert sender is not None

        def stop(presses: int) -> None:
            sender.stop() if presses == 1 else sender.abort()

        context.on_stop(stop)

    hooks = Hooks(on_result=feed.add, on_event=feed.event, on_start=on_start, tally=tally)
    if feed.outputs:
        # As in one process: stdout and the result files hold every device the journal settles,
        # even after a kill -9 (the parent has written them before this worker commits).
        hooks.flush = lambda: feed.flush(sync=True)
    ticker = asyncio.create_task(feed.every())
    try:
        with Journal(spec.journal_path) as journal:
            run = journal.join_run(job.campaign_id, resumed=job.resumed)
            try:
                stopped, pipeline = await _send(
                    spec, hooks, template, reader, providers, missing, journal, run, this_run, signals=False
                )
            finally:
                run.flush()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    feed.flush(final=True)
    return _WorkerReport(
        this_run=this_run, stats=pipeline.stats, bad_rows=bad_rows, bad_row_count=reader.stats.bad_rows,
        duplicates=reader.stats.duplicates, stopped_reason=stopped, tally=tally,
    )  # fmt: skip


def _add_summary(into: Summary, part: Summary) -> None:
    into.total += part.total
    into.retries += part.retries
    into.counts.update(part.counts)
    into.reasons.update(part.reasons)
    for name, counts in part.by_variant.items():
        into.by_variant.setdefault(name, Counter()).update(counts)
    for name, counts in part.by_platform.items():
        into.by_platform.setdefault(name, Counter()).update(counts)


def _stopped(reasons: list[str | None]) -> str | None:
    """The campaign's stop reason from its workers': a refused credential outranks an interruption."""
    given = [r for r in reasons if r]
    if "auth_failed" in given:
        return "auth_failed"
    return given[0] if given else None


async def send_with_workers(
    spec: CampaignSpec,
    hooks: Hooks,
    reader: AudienceReader,
    providers: dict[str, Provider],
    run: Run,
    this_run: Summary,
    bad_rows: list[BadRow],
) -> tuple[str | None, _Combined]:
    """Send the campaign whose run the caller opened with ``spec.workers`` worker processes;
    return the stop reason and the summed pipeline statistics (``reader`` and ``bad_rows``
    get the workers' row counts)."""
    for provider in providers.values():  # the parent's were only built to check the profile
        with contextlib.suppress(Exception):
            await provider.close()
    parts = spec.shard.split(spec.workers)
    share = _share(spec, spec.workers)
    jobs = [
        _Job(share, run.campaign_id, part, run.resumed, hooks.result_line, hooks.forward_results,
             hooks.tally is not None)
        for part in parts
    ]  # fmt: skip
    tallies: dict[int, Tally] = {}
    heard: set[tuple[str, str]] = set()
    pool: WorkerPool[_Job, _WorkerReport]

    def on_message(index: int, message: tuple[Any, ...]) -> None:
        if message[0] == "batch":
            _, counts, text, results, tally, sync = message
            if counts:
                hooks.on_counts(counts)
            if text:
                hooks.on_lines(text)
            for fields in results:
                hooks.on_result(Result(*fields))
            if sync:
                hooks.flush()  # the worker commits these results once we answer
            if tally is not None and hooks.tally is not None:
                tallies[index] = tally
                hooks.tally.replace(tallies.values())
        elif message[0] == "event":
            _, kind, text = message
            if (kind, text) in heard:  # every worker warns of the same thing: say it once
                return
            heard.add((kind, text))
            hooks.on_event(Event(kind, text))
            if kind == "auth_stop":
                pool.stop(2)  # the credentials are the same in every worker

    def interrupt(presses: int) -> None:
        if presses == 1:
            hooks.on_event(Event("info", "stopping: finishing requests in flight (Ctrl-C again to abort)"))
        else:
            hooks.on_event(Event("info", "aborting"))
        pool.stop(presses)

    pool = WorkerPool(_worker, jobs, on_message=on_message)
    hooks.on_start(run.campaign_id, run.resumed, None)
    with on_stop_signals(interrupt):
        reports = await pool.run()
    combined = _Combined()
    for index, report in enumerate(reports):
        _add_summary(this_run, report.this_run)
        stats = report.stats
        combined.stats.filtered += stats.filtered
        combined.stats.already_settled += stats.already_settled
        for reason, when in stats.deferred_until.items():
            known = combined.stats.deferred_until.get(reason)
            combined.stats.deferred_until[reason] = when if known is None else min(known, when)
        reader.stats.bad_rows += report.bad_row_count
        reader.stats.duplicates += report.duplicates
        bad_rows.extend(report.bad_rows[: max(0, 100 - len(bad_rows))])
        if report.tally is not None:
            tallies[index] = report.tally
    if hooks.tally is not None and tallies:
        hooks.tally.replace(tallies.values())
    return _stopped([r.stopped_reason for r in reports]), combined


async def run_scaled(spec: CampaignSpec, hooks: Hooks | None = None) -> CampaignReport:
    """:func:`run_campaign` on ``spec.workers`` worker processes when more than one."""
    if spec.workers <= 1:
        return await run_campaign(spec, hooks)
    return await run_campaign(spec, hooks, send_step=send_with_workers)
