"""Online token checks: the offline rules first, then the service's own verdict per token.

One pass over the audience: every row goes through :class:`~pushctl.checks.tokens_offline.OfflineChecker`;
a device that passes (not malformed, not on the wrong platform, not a duplicate) becomes a
:class:`~pushctl.delivery.sender.WorkItem` for the same concurrent :class:`~pushctl.delivery.sender.Sender` a
campaign uses (in-flight bound, rate limit, retries, stop on refused credentials):

* FCM (Android and web tokens): a ``validate_only: true`` message -- FCM's dry run, nothing
  is delivered.
* HMS: a ``validate_only`` message too, 1,000 tokens a request; the illegal ones are listed.
* Web Push has no dry run: subscriptions are checked offline only (counted as not checked online).
* APNs (iOS tokens): APNs has no dry run. Only with ``apns_probe`` does each token get a
  real silent background push (``content-available: 1``, ``apns-push-type: background``,
  priority 5, no alert); otherwise iOS tokens are counted as not checked online.

Nothing is journaled. Invalid tokens (offline and online) are streamed to the prune list;
only the first ``max_findings`` findings are kept in memory.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pushctl.audience import AudienceReader, BadRow, Format
from pushctl.checks.tokens_offline import OfflineChecker, Problem, TokenFinding, TokenReport, open_prune_csv
from pushctl.config import Profile
from pushctl.delivery import Event, Sender, SendOptions, WorkItem, prepare_item
from pushctl.message import Notification
from pushctl.metrics import Tally
from pushctl.model import Device, Platform
from pushctl.outcome import Outcome, Result
from pushctl.providers import Provider, get_provider_factory, started

APNS_NOT_CHECKED = (
    "not checked online (APNs has no dry run; use --apns-probe, which sends a real silent push)"
)
"""What an iOS token is without ``--apns-probe`` (also the ``--help`` text)."""

WEBPUSH_NOT_CHECKED = (
    "not checked online (Web Push has no dry run: any push to a subscription reaches the browser)"
)
NOT_CHECKED_REASONS = {
    "apns_no_dry_run": APNS_NOT_CHECKED,
    "webpush_no_dry_run": WEBPUSH_NOT_CHECKED,
    "no_apns_credentials": "not checked online: the profile has no APNs credentials",
    "no_fcm_credentials": "not checked online: the profile has no FCM credentials",
    "no_hms_credentials": "not checked online: the profile has no HMS credentials",
}

PRUNE_FIELDS = ("token", "platform", "line", "check", "problem", "reason", "message")

# What an invalid-token answer means, per provider reason (the fact sheet's tables).
_REASON_TEXT = {
    "Unregistered": "no longer registered: the app was uninstalled or the token expired",
    "ExpiredToken": "the token expired",
    "BadDeviceToken": "APNs does not know this token (malformed, or from the other sandbox/production "
    "environment)",
    "DeviceTokenNotForTopic": "the token belongs to another app (not {topic})",
    "UNREGISTERED": "no longer registered with FCM: the app was uninstalled or the token expired",
    "SENDER_ID_MISMATCH": "the token belongs to another Firebase project (not {project})",
    "INVALID_ARGUMENT": "FCM says this is not a valid registration token",
    "80100000 illegal token": "Huawei says this token is not valid for the app (illegal_tokens)",
    "80300007 all tokens invalid": "Huawei says this token is not valid for the app",
}


@dataclass(slots=True, frozen=True)
class OnlineFinding:
    """The service's verdict on one token that passed the offline checks (valid ones are not kept).

    ``problem`` is ``invalid_token`` (prune it), ``rejected`` (the check request itself was
    refused, e.g. a wrong topic: fix the profile) or ``failed`` (no answer after every retry).
    """

    line: int
    token: str
    platform: Platform
    problem: str
    reason: str
    status: int | None
    message: str

    @property
    def invalid(self) -> bool:
        return self.problem == "invalid_token"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``type: finding``, ``check: online``)."""
        return {
            "type": "finding",
            "check": "online",
            "line": self.line,
            "token": self.token,
            "platform": str(self.platform),
            "problem": self.problem,
            "reason": self.reason,
            "status": self.status,
            "invalid": self.invalid,
            "message": self.message,
        }


Finding = TokenFinding | OnlineFinding


def finding_dict(finding: Finding) -> dict[str, Any]:
    """The JSON Lines object of any finding (offline ones get ``check`` and ``reason`` too)."""
    if isinstance(finding, OnlineFinding):
        return finding.to_dict()
    data = finding.to_dict()
    return {"type": "finding", "check": "offline", **data, "reason": str(finding.problem)}


@dataclass
class OnlineReport:
    """The offline report plus what the services answered."""

    offline: TokenReport
    apns_probe: bool = False
    checked: int = 0
    """Tokens that got a final answer from APNs / FCM."""
    valid: int = 0
    invalid_online: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Invalid-token answers per provider reason (``Unregistered``, ``UNREGISTERED``...)."""
    not_checked: dict[str, int] = field(default_factory=dict)
    """Tokens that passed offline but were not checked online, per reason key."""
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    pruned: int = 0
    stopped_reason: str | None = None
    auth_failure: str = ""
    """``"<provider> refused the credentials (<reason>)"`` when a check was refused."""

    @property
    def invalid(self) -> int:
        """Invalid tokens, offline and online (what the prune list holds)."""
        return self.offline.invalid + self.invalid_online

    @property
    def unchecked(self) -> int:
        """Tokens whose online check did not come to a verdict (rejected request / retries ran out)."""
        return self.rejected + self.failed

    @property
    def ok(self) -> bool:
        """True when no token is invalid and every attempted check reached a verdict."""
        return self.invalid == 0 and self.unchecked == 0 and self.stopped_reason is None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict (``type: summary``)."""
        base = self.offline.summary()
        base.update(
            invalid=self.invalid,
            invalid_offline=self.offline.invalid,
            invalid_online=self.invalid_online,
            findings=self.findings_total,
            pruned=self.pruned,
            online={
                "apns_probe": self.apns_probe,
                "checked": self.checked,
                "valid": self.valid,
                "invalid": self.invalid_online,
                "rejected": self.rejected,
                "failed": self.failed,
                "reasons": dict(self.reasons),
                "not_checked": dict(self.not_checked),
            },
            stopped_reason=self.stopped_reason,
        )
        return base


def silent_notification(*, probe: bool) -> Notification:
    """The check message: for APNs (``probe``) a silent background push that is never stored
    for later (``apns-expiration: 0``); for FCM a bare ``{"token": ...}`` message."""
    return Notification(
        title=None, subtitle=None, body=None, media=None, sound=None, badge=None, data={},
        category=None, thread_id=None, collapse_id=None, priority=None, ttl=0 if probe else None,
        push_type="background", content_available=probe, interruption_level=None,
        relevance_score=None, locale=None, variant=None, apns={}, fcm={},
    )


def build_providers(
    profile: Profile,
    *,
    apns_probe: bool,
    max_connections: int = 4,
    password: Callable[[], bytes | None] | None = None,
) -> tuple[dict[str, Provider], dict[str, str]]:
    """The providers the check uses, and a not-checked reason key for the ones it cannot."""
    providers: dict[str, Provider] = {}
    missing: dict[str, str] = {}
    if not apns_probe:
        missing["apns"] = "apns_no_dry_run"
    elif profile.apns.configured:
        providers["apns"] = get_provider_factory("apns")(
            profile, max_connections=max_connections, password=password
        )
    else:
        missing["apns"] = "no_apns_credentials"
    if profile.fcm.configured:
        providers["fcm"] = get_provider_factory("fcm")(
            profile, max_connections=max_connections, validate_only=True
        )
    else:
        missing["fcm"] = "no_fcm_credentials"
    if profile.hms.configured:
        # validate_only, batched like a send: 1,000 tokens per request.
        providers["hms"] = get_provider_factory("hms")(
            profile, max_connections=max_connections, validate_only=True
        )
    else:
        missing["hms"] = "no_hms_credentials"
    missing["webpush"] = "webpush_no_dry_run"
    return providers, missing


class _Run:
    """The state of one online check: counts, kept findings, the prune writer."""

    def __init__(
        self,
        report: OnlineReport,
        providers: Mapping[str, Provider],
        missing: Mapping[str, str],
        writer: Any,
        max_findings: int,
        on_finding: Callable[[Finding], None] | None,
        on_settled: Callable[[str], None] | None,
        tally: Tally | None = None,
    ) -> None:
        self.report = report
        self.tally = tally
        self.providers = providers
        self.missing = missing
        self.writer = writer
        self.max_findings = max_findings
        self.on_finding = on_finding
        self.on_settled = on_settled
        self.notifications = {
            "apns": silent_notification(probe=True),
            "fcm": silent_notification(probe=False),
            # HMS wants something to send: a data message (validate_only delivers nothing).
            "hms": dataclasses.replace(silent_notification(probe=False), data={"pushctl": "token-check"}),
        }
        self.context = {
            "topic": getattr(providers.get("apns"), "topic", None) or "this profile's topic",
            "project": getattr(providers.get("fcm"), "project_id", None) or "this profile's project",
        }

    def _settled(self, outcome: str) -> None:
        if self.on_settled is not None:
            self.on_settled(outcome)

    def add(self, finding: Finding) -> None:
        report = self.report
        report.findings_total += 1
        if len(report.findings) < self.max_findings:
            report.findings.append(finding)
        if isinstance(finding, TokenFinding):
            report.offline.findings_total += 1
            report.offline.counts[str(finding.problem)] += 1
            if finding.invalid:
                report.offline.invalid += 1
                if self.tally is not None:
                    platform = str(finding.platform) if finding.platform else ""
                    provider = finding.platform.provider if finding.platform else ""
                    self.tally.count(provider, platform, "invalid_token", f"offline:{finding.problem}")
        # Streamed: the invalid tokens of a huge audience never sit in memory.
        if finding.invalid and finding.token and self.writer is not None:
            check = "online" if isinstance(finding, OnlineFinding) else "offline"
            reason = finding.reason if isinstance(finding, OnlineFinding) else str(finding.problem)
            platform = str(finding.platform) if finding.platform else ""
            self.writer.writerow([finding.token, platform, finding.line, check, str(finding.problem),
                                  reason, finding.message])
            report.pruned += 1
        if self.on_finding is not None:
            self.on_finding(finding)

    def items(self, reader: AudienceReader, checker: OfflineChecker) -> Iterator[WorkItem]:
        """Offline findings as rows stream by; a work item for each device that passed."""
        pending: deque[BadRow] = deque()
        # Bad rows arrive through a callback while the reader looks for the next device:
        # queue them so findings stay in line order (as tokencheck.iter_findings does).
        reader.on_skip = pending.append
        for device in reader:
            while pending:
                self.add(checker.bad_row(pending.popleft()))
                self._settled("skipped")
            findings = checker.device(device)
            for finding in findings:
                self.add(finding)
            if any(f.invalid or f.problem is Problem.DUPLICATE for f in findings):
                self._settled("skipped")
                continue
            item = self._item(device)
            if item is not None:
                yield item
        while pending:
            self.add(checker.bad_row(pending.popleft()))
            self._settled("skipped")
        for finding in checker.finish():
            self.add(finding)

    def _item(self, device: Device) -> WorkItem | None:
        name = device.platform.provider
        provider = self.providers.get(name)
        if provider is None:
            key = self.missing.get(name, f"no_{name}_credentials")
            self.report.not_checked[key] = self.report.not_checked.get(key, 0) + 1
            if self.tally is not None:
                self.tally.count(name, str(device.platform), "skipped", key)
            self._settled("skipped")
            return None
        item = prepare_item(provider, device, self.notifications[name])
        if isinstance(item, Result):  # the check message broke a protocol rule: not the token's fault
            self.result(item)
            return None
        return item

    def result(self, result: Result) -> None:
        """One answer from the sender."""
        report = self.report
        if self.tally is not None:
            self.tally.add(result)
        self._settled(str(result.outcome))
        outcome = result.outcome
        if outcome is Outcome.AUTH_FAILED:
            if not report.auth_failure:
                report.auth_failure = f"{result.platform.provider} refused the credentials ({result.reason})"
            return
        report.checked += 1
        if outcome is Outcome.DELIVERED:
            report.valid += 1
            return
        if outcome is Outcome.INVALID_TOKEN:
            report.invalid_online += 1
            report.reasons[result.reason] = report.reasons.get(result.reason, 0) + 1
            text = _REASON_TEXT.get(result.reason, "the service says this token is invalid")
            finding = OnlineFinding(result.line, result.token, result.platform, "invalid_token",
                                    result.reason, result.status, text.format(**self.context))
        elif outcome is Outcome.REJECTED:
            report.rejected += 1
            finding = OnlineFinding(
                result.line, result.token, result.platform, "rejected", result.reason, result.status,
                f"the check request was refused ({result.reason}): a profile or request problem, "
                "not the token's",
            )
        else:
            report.failed += 1
            finding = OnlineFinding(
                result.line, result.token, result.platform, "failed", result.reason, result.status,
                f"no verdict after {result.attempts} attempt(s) ({result.reason or 'no answer'})",
            )
        self.add(finding)


async def check_audience_online(
    path: str | Path,
    profile: Profile,
    *,
    fmt: Format | None = None,
    stdin: IO[str] | None = None,
    apns_probe: bool = False,
    send: SendOptions | None = None,
    max_connections: int = 4,
    password: Callable[[], bytes | None] | None = None,
    prune_list: str | Path | None = None,
    max_findings: int = 10_000,
    on_finding: Callable[[Finding], None] | None = None,
    on_settled: Callable[[str], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    tally: Tally | None = None,
) -> OnlineReport:
    """Run the offline checks over an audience and check the surviving tokens online.

    ``on_finding`` sees every finding as it is found; ``on_settled`` is called once per row
    with an outcome value (``skipped`` for rows not checked online), for a progress bar; ``tally``
    counts the checks by provider, platform, outcome and reason (``--metrics-file``).
    Credentials refused while checking stop the run (``report.auth_failure`` says why);
    credentials refused up front raise AuthRefused. Unreadable files raise AudienceError.
    """
    reader = AudienceReader(path, fmt=fmt, on_bad_row="skip", stdin=stdin, dedupe=False)
    report = OnlineReport(offline=TokenReport(source=reader.source), apns_probe=apns_probe)
    checker = OfflineChecker()
    providers, missing = build_providers(
        profile, apns_probe=apns_probe, max_connections=max_connections, password=password
    )
    with ExitStack() as stack:
        writer = None
        if prune_list is not None:
            writer = open_prune_csv(stack, prune_list, list(PRUNE_FIELDS))
            report.offline.prune_list = str(prune_list)
        run = _Run(report, providers, missing, writer, max_findings, on_finding, on_settled, tally)
        async with started(providers.values()):
            sender = Sender(providers, send or SendOptions(), on_result=run.result, on_event=on_event)
            if tally is not None:
                tally.in_flight_probe = lambda: sender.in_flight
            await sender.run(run.items(reader, checker))
        report.stopped_reason = sender.stopped_reason
    offline = report.offline
    offline.platforms = dict(checker.platforms)
    offline.rows = reader.stats.rows
    offline.devices = reader.stats.devices - offline.counts[str(Problem.DUPLICATE)]
    offline.pruned = report.pruned
    offline.fingerprint = reader.fingerprint()
    return report
