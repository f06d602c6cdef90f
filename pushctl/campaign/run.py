"""One campaign run: journal, providers, pipeline and sender wired together.

The CLI builds a :class:`CampaignSpec`, calls :func:`run_campaign` and presents what comes
back; everything here is plain Python (no Rich, no Typer) so tests and other front ends can
drive a campaign directly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pushctl import clock
from pushctl.audience import AudienceReader, BadRow
from pushctl.campaign.pipeline import Controls, Pipeline, PipelineStats
from pushctl.config import PROVIDER_SECTIONS, Profile
from pushctl.delivery import AUTH_STOP, INTERRUPTED_STOP, Event, Sender, SendOptions, Summary, WorkItem
from pushctl.errors import AuthRefused, CredentialFileError, InputError, PushctlError
from pushctl.journal import Journal, Run
from pushctl.message import Template
from pushctl.metrics import Tally
from pushctl.outcome import Outcome, Result
from pushctl.paths import exposure_warning
from pushctl.providers import Provider, get_provider_factory
from pushctl.runtime import on_stop_signals
from pushctl.scale import Shard


@dataclass
class CampaignSpec:
    """Everything a send needs, already parsed and validated by the caller."""

    template: Path
    audience: str
    profile: Profile
    journal_path: Path
    audience_format: Literal["csv", "jsonl", "text"] | None = None
    on_bad_row: Literal["fail", "skip"] = "fail"
    campaign_id: str | None = None
    force: bool = False
    send: SendOptions = field(default_factory=SendOptions)
    validate_only: bool = False
    max_connections: int = 4
    controls: Controls = field(default_factory=Controls)
    identity: dict[str, Any] = field(default_factory=dict)
    """Options that make a campaign a different campaign (they go into the derived id)."""
    password: Callable[[], bytes | None] | None = None
    shard: Shard = field(default_factory=Shard)
    """``send --shard I/N``: only the devices of shard I (recorded in the journal); 0/1 = all."""
    workers: int = 1
    """``send --workers N``: worker processes sharing the shard (see :mod:`.workers`)."""


@dataclass
class CampaignReport:
    """What a finished (or stopped) run hands back to its front end."""

    campaign_id: str
    resumed: bool
    this_run: Summary
    """Results of this invocation only."""
    campaign: Summary
    """The whole campaign so far, rebuilt from the journal (what ``runs show`` prints)."""
    pipeline: PipelineStats
    bad_rows: list[BadRow]
    bad_row_count: int
    duplicates: int
    stopped_reason: str | None


@dataclass
class Hooks:
    """Front-end callbacks: every result, every event, and a started-sending signal."""

    on_result: Callable[[Result], None] = lambda _r: None
    on_event: Callable[[Event], None] = lambda _e: None
    on_start: Callable[[str, bool, Sender | None], None] = lambda _id, _resumed, _sender: None
    """Sending starts: campaign id, resumed?, and the sender (None with worker processes)."""
    flush: Callable[[], None] = lambda: None
    """Write out what ``on_result`` buffered; called before the journal commits results."""
    tally: Tally | None = None
    """When given, every result is counted here too (for ``--metrics-file``), workers' included."""
    # With worker processes the parent hears of results in batches: counts for the progress bar,
    # JSON lines the workers formatted with ``result_line`` (a module-level function: it goes to
    # them by name), and the results themselves only when ``forward_results`` (a results file).
    result_line: Callable[[Result], str] | None = None
    on_lines: Callable[[str], None] = lambda _text: None
    on_counts: Callable[[dict[str, int]], None] = lambda _counts: None
    forward_results: bool = True


def derive_id(spec: CampaignSpec, template: Template, reader: AudienceReader) -> tuple[str, str]:
    """(campaign id, audience fingerprint). Piped audiences get a fresh id per run unless
    ``--campaign`` names one: a pipe cannot be fingerprinted before it is read."""
    if reader.source == "<stdin>":
        audience_fp = "stdin"
        if spec.campaign_id is None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            return f"c-{template.fingerprint[:8]}-{stamp}", audience_fp
    else:
        audience_fp = reader.fingerprint()
    if spec.campaign_id is not None:
        return spec.campaign_id, audience_fp
    return Journal.derive_campaign_id(template.fingerprint, audience_fp, spec.identity), audience_fp


def build_providers(spec: CampaignSpec) -> tuple[dict[str, Provider], dict[str, str]]:
    """Providers the profile has credentials for, and a skip reason for the ones it has not."""
    return providers_for(
        spec.profile, max_connections=spec.max_connections, validate_only=spec.validate_only,
        password=spec.password,
    )  # fmt: skip


def providers_for(
    profile: Profile,
    *,
    max_connections: int = 4,
    validate_only: bool = False,
    password: Callable[[], bytes | None] | None = None,
) -> tuple[dict[str, Provider], dict[str, str]]:
    """Providers ``profile`` has credentials for, and a skip reason for the ones it has not
    (any sender of work items uses this: campaigns and trigger rules alike)."""
    providers: dict[str, Provider] = {}
    missing: dict[str, str] = {}
    for name in PROVIDER_SECTIONS:
        if not getattr(profile, name).configured:
            missing[name] = f"no_{name}_credentials"
            continue
        factory = get_provider_factory(name)
        providers[name] = factory(
            profile, max_connections=max_connections, validate_only=validate_only, password=password
        )
    if not providers:
        raise CredentialFileError(
            "the profile has no credentials for any provider (APNs, FCM, Web Push or HMS)",
            field="profile",
            hint="run `pushctl config init`, or try `--emulator`",
        )
    return providers, missing


async def _start(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        await provider.start()


async def _close(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        with contextlib.suppress(Exception):
            await provider.close()


@contextlib.contextmanager
def _signals(sender: Sender, on_event: Callable[[Event], None]) -> Iterator[None]:
    """First Ctrl-C / SIGTERM: finish in-flight requests; second Ctrl-C: abort."""

    def interrupt(presses: int) -> None:
        if presses == 1:
            on_event(Event("info", "stopping: finishing requests in flight (Ctrl-C again to abort)"))
            sender.stop()
        else:
            on_event(Event("info", "aborting"))
            sender.abort()

    with on_stop_signals(interrupt):
        yield


SendStep = Callable[
    [CampaignSpec, "Hooks", AudienceReader, dict[str, Provider], Run, Summary, list[BadRow]],
    Awaitable[tuple[str | None, Any]],
]
"""Another way to send the devices of an opened run (``--workers``: :mod:`.workers`)."""


async def run_campaign(
    spec: CampaignSpec, hooks: Hooks | None = None, *, send_step: SendStep | None = None
) -> CampaignReport:
    """Send one campaign (or continue it) and report what happened."""
    hooks = hooks or Hooks()
    template = Template.load(spec.template)
    bad_rows: list[BadRow] = []
    reader = AudienceReader(
        spec.audience,
        fmt=spec.audience_format,
        on_bad_row=spec.on_bad_row,
        on_skip=lambda row: bad_rows.append(row) if len(bad_rows) < 100 else None,
    )
    campaign_id, audience_fp = derive_id(spec, template, reader)
    providers, missing = build_providers(spec)
    this_run = Summary(campaign=campaign_id)
    if warning := exposure_warning(Journal.files(spec.journal_path), "journal"):
        hooks.on_event(Event("warning", warning))
    with Journal(spec.journal_path) as journal:
        _apply_retention(spec, journal, hooks)
        run = journal.open_run(
            campaign_id,
            template_fp=template.fingerprint,
            audience_fp=audience_fp,
            options=spec.identity,
            force=spec.force,
            shard=None if spec.shard.whole else str(spec.shard),
        )
        stopped: str | None = None
        try:
            if send_step is not None:
                stopped, pipeline = await send_step(spec, hooks, reader, providers, run, this_run, bad_rows)
            else:
                reader.keep = None if spec.shard.whole else spec.shard.member(campaign_id)
                stopped, pipeline = await _send(
                    spec, hooks, template, reader, providers, missing, journal, run, this_run
                )
        except BaseException as exc:
            reason = AUTH_STOP if isinstance(exc, AuthRefused) else INTERRUPTED_STOP
            run.finish(stopped_reason=reason)
            raise
        run.finish(stopped_reason=stopped)
        this_run.finish(stopped_reason=stopped)
        campaign = journal.summary(campaign_id)
    return CampaignReport(
        campaign_id=campaign_id,
        resumed=run.resumed,
        this_run=this_run,
        campaign=campaign,
        pipeline=pipeline.stats,
        bad_rows=bad_rows,
        bad_row_count=reader.stats.bad_rows,
        duplicates=reader.stats.duplicates,
        stopped_reason=stopped,
    )


def _apply_retention(spec: CampaignSpec, journal: Journal, hooks: Hooks) -> None:
    """The profile's ``journal.retention``: before each send, drop the per-device rows of runs that
    ended longer ago (summaries stay). No VACUUM here: it would hold up the send; the freed pages
    are zeroed and reused, and ``pushctl runs prune`` shrinks the file."""
    setting = spec.profile.journal.retention
    period = spec.profile.journal.retention_period
    if period is None:
        return
    report = journal.prune(period, vacuum=False)
    if report.total:
        before = datetime.fromtimestamp(report.cutoff).isoformat(sep=" ", timespec="minutes")
        hooks.on_event(Event(
            "info",
            f"journal retention {setting}: removed {report.total:,} rows of {len(report.runs):,} "
            f"run(s) that ended before {before} (their summaries are kept)",
        ))


async def _send(
    spec: CampaignSpec,
    hooks: Hooks,
    template: Template,
    reader: AudienceReader,
    providers: dict[str, Provider],
    missing: dict[str, str],
    journal: Journal,
    run: Run,
    this_run: Summary,
    *,
    signals: bool = True,
) -> tuple[str | None, Pipeline]:
    tally = hooks.tally

    def emit(result: Result) -> None:
        hooks.on_result(result)  # before record(): a commit it triggers flushes this one too
        run.record(result)
        this_run.add(result)
        if tally is not None:
            tally.add(result)

    run.before_commit = hooks.flush

    try:
        await _start(providers)
        pipeline = Pipeline(
            template=template,
            providers=providers,
            campaign_id=run.campaign_id,
            emit=emit,
            now=clock.now(),
            controls=spec.controls,
            journal=journal,
            run=run,
            on_bad_row=spec.on_bad_row,
            missing_provider=missing,
        )
        sender = Sender(providers, spec.send, on_result=emit, on_event=hooks.on_event)
        if tally is not None:
            tally.in_flight_probe = lambda: sender.in_flight
        hooks.on_start(run.campaign_id, run.resumed, sender)
        items: Iterator[WorkItem] = pipeline.items(reader)
        # A worker process leaves signals to its parent (see pushctl.scale.pool).
        with _signals(sender, hooks.on_event) if signals else contextlib.nullcontext():
            await sender.run(items)
    finally:
        await _close(providers)
    if sender.stopped_reason is None and _auth_failed(this_run):
        return AUTH_STOP, pipeline
    return sender.stopped_reason, pipeline


def _auth_failed(summary: Summary) -> bool:
    return summary.counts.get(str(Outcome.AUTH_FAILED), 0) > 0


def check_start_time(at: datetime | None, *, allow_past: bool) -> None:
    """``--at`` in the past is refused unless ``--now`` says to send anyway."""
    if at is not None and at < clock.now() and not allow_past:
        raise InputError(
            f"--at {at.isoformat()} is in the past",
            field="--at",
            hint="use a future time, or add --now to send immediately",
        )


__all__ = ["CampaignReport", "CampaignSpec", "Hooks", "PushctlError", "run_campaign"]
