"""Offline token checks: stream an audience and report tokens that are malformed,
duplicated, on the wrong platform, or of a suspicious length (Web Push subscriptions: endpoint
and key shapes, and that ``p256dh`` is a point on P-256).

The per-device rules live in :class:`OfflineChecker` so a later online mode can run the
same checks and then validate the surviving devices against the service. Findings are
streamed (:func:`iter_findings`); :func:`check_audience` keeps only the first
``max_findings`` of them in memory but counts all, and writes the prune list as it goes.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from pushctl.audience import (
    MIN_INFERABLE_LENGTH,
    P256DH,
    AudienceReader,
    BadRow,
    Format,
    TokenSet,
    b64url_decode,
    is_fcm_shaped,
    is_hex,
    parse_platform,
)
from pushctl.errors import AudienceError
from pushctl.model import Device, Platform
from pushctl.paths import open_private

APNS_USUAL_LENGTH = 64
ENVIRONMENT_COLUMNS = ("environment", "apns_environment")
_ENVIRONMENTS = {"sandbox": "sandbox", "development": "sandbox", "production": "production"}


class Problem(StrEnum):
    """What is wrong with a token (or, for ``environment_mix``, with the audience)."""

    MALFORMED = "malformed"
    WRONG_PLATFORM = "wrong_platform"
    DUPLICATE = "duplicate"
    UNUSUAL_LENGTH = "unusual_length"
    ENVIRONMENT_MIX = "environment_mix"

    @property
    def invalid(self) -> bool:
        """True if a token with this problem cannot be delivered and belongs in the prune list."""
        return self in (Problem.MALFORMED, Problem.WRONG_PLATFORM)


@dataclass(slots=True, frozen=True)
class TokenFinding:
    """One problem found with one row (``line`` 0 and no token for audience-wide findings)."""

    line: int
    token: str
    platform: Platform | None
    problem: Problem
    message: str

    @property
    def invalid(self) -> bool:
        return self.problem.invalid

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``type: finding``)."""
        return {
            "type": "finding",
            "line": self.line,
            "token": self.token,
            "platform": str(self.platform) if self.platform else None,
            "problem": str(self.problem),
            "invalid": self.invalid,
            "message": self.message,
        }


def looks_like_fcm(token: str) -> bool:
    """An FCM registration token's shape: its alphabet and the ``:`` APNs tokens never have."""
    return ":" in token and is_fcm_shaped(token)


def curve_problem(p256dh: str) -> str | None:
    """Why a Web Push ``p256dh`` key (already of the right shape) is not a point on P-256, or None.

    The reader checks lengths only; a key with a flipped byte passes that and fails every send.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(p256dh))
    except ValueError:
        return "p256dh is not a point on the P-256 curve: the subscription's key is corrupted"
    return None


class OfflineChecker:
    """The offline rules, one device (or bad row) at a time; keeps only flat state."""

    def __init__(self) -> None:
        self._seen = TokenSet()
        self.environments: dict[str, int] = {}
        self.platforms: dict[str, int] = {str(p): 0 for p in Platform}

    def bad_row(self, bad: BadRow) -> TokenFinding:
        """The finding for a row the reader rejected."""
        declared = parse_platform(bad.platform) if bad.platform else None
        if declared is Platform.IOS and looks_like_fcm(bad.token):
            return TokenFinding(
                bad.line, bad.token, declared, Problem.WRONG_PLATFORM,
                "declared ios but this is an FCM registration token",
            )
        where = f"field '{bad.field}': " if bad.field and bad.field != "token" else ""
        return TokenFinding(bad.line, bad.token, declared, Problem.MALFORMED, where + bad.message)

    def device(self, device: Device) -> list[TokenFinding]:
        """Findings for one device the reader accepted (usually none)."""
        token, platform, line = device.token, device.platform, device.line
        findings: list[TokenFinding] = []
        if not self._seen.add(token, line):
            first = self._seen.first_line(token)
            findings.append(
                TokenFinding(line, token, platform, Problem.DUPLICATE, f"same token as line {first}")
            )
            return findings
        self.platforms[platform] += 1
        if platform is not Platform.IOS and len(token) >= MIN_INFERABLE_LENGTH and is_hex(token):
            findings.append(
                TokenFinding(
                    line, token, platform, Problem.WRONG_PLATFORM,
                    f"declared {platform} but this is an APNs (hex) device token",
                )
            )
        elif platform is Platform.IOS and len(token) != APNS_USUAL_LENGTH:
            findings.append(
                TokenFinding(
                    line, token, platform, Problem.UNUSUAL_LENGTH,
                    f"APNs token of {len(token)} hex characters (usually {APNS_USUAL_LENGTH}): "
                    "probably malformed",
                )
            )
        elif platform is Platform.WEBPUSH:
            problem = curve_problem(device.attrs.get(P256DH, ""))
            if problem is not None:
                findings.append(TokenFinding(line, token, platform, Problem.MALFORMED, problem))
        elif platform is Platform.HMS and looks_like_fcm(token):
            findings.append(
                TokenFinding(
                    line, token, platform, Problem.WRONG_PLATFORM,
                    "declared hms but this is an FCM registration token (it has FCM's ':APA91' part)",
                )
            )
        elif platform is not Platform.IOS and len(token) < MIN_INFERABLE_LENGTH:
            kind = "HMS" if platform is Platform.HMS else "FCM"
            findings.append(
                TokenFinding(
                    line, token, platform, Problem.UNUSUAL_LENGTH,
                    f"{kind} token of {len(token)} characters (real ones are over 100): probably malformed",
                )
            )
        for column in ENVIRONMENT_COLUMNS:
            value = device.attrs.get(column)
            if value is not None:
                env = _ENVIRONMENTS.get(value.strip().lower(), value.strip().lower())
                self.environments[env] = self.environments.get(env, 0) + 1
                break
        return findings

    def finish(self) -> list[TokenFinding]:
        """Audience-wide findings, once every row has been seen."""
        sandbox = self.environments.get("sandbox", 0)
        production = self.environments.get("production", 0)
        if sandbox and production:
            message = (
                f"the audience mixes APNs environments: {sandbox} sandbox and {production} production "
                "tokens; a token only works in its own environment, so send each with its own profile"
            )
            return [TokenFinding(0, "", Platform.IOS, Problem.ENVIRONMENT_MIX, message)]
        return []


@dataclass(slots=True)
class TokenReport:
    """Counts of one check, the first ``max_findings`` findings, and where the prune list went."""

    source: str = ""
    rows: int = 0
    devices: int = 0
    """Rows that are well-formed and not duplicates (before wrong-platform/length findings)."""
    counts: dict[str, int] = field(default_factory=lambda: {str(p): 0 for p in Problem})
    platforms: dict[str, int] = field(default_factory=lambda: {str(p): 0 for p in Platform})
    invalid: int = 0
    findings: list[TokenFinding] = field(default_factory=list)
    findings_total: int = 0
    prune_list: str | None = None
    pruned: int = 0
    fingerprint: str = ""

    @property
    def valid(self) -> bool:
        """True when no token is invalid (duplicates and warnings do not count)."""
        return self.invalid == 0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict (``type: summary``)."""
        return {
            "type": "summary",
            "source": self.source,
            "rows": self.rows,
            "devices": self.devices,
            "invalid": self.invalid,
            **self.counts,
            "platforms": dict(self.platforms),
            "findings": self.findings_total,
            "prune_list": self.prune_list,
            "pruned": self.pruned,
            "fingerprint": self.fingerprint,
        }


def iter_findings(reader: AudienceReader, checker: OfflineChecker | None = None) -> Iterator[TokenFinding]:
    """Stream the findings of ``reader`` (built with ``on_bad_row="skip"``), in line order."""
    checker = checker or OfflineChecker()
    pending: deque[BadRow] = deque()
    # Bad rows arrive through a callback while the reader looks for the next device;
    # queue them and emit them before that device so findings stay in line order.
    previous = reader.on_skip

    def on_skip(bad: BadRow) -> None:
        pending.append(bad)
        if previous is not None:
            previous(bad)

    reader.on_skip = on_skip
    for device in reader:
        while pending:
            yield checker.bad_row(pending.popleft())
        yield from checker.device(device)
    while pending:
        yield checker.bad_row(pending.popleft())
    yield from checker.finish()


def open_prune_csv(stack: ExitStack, path: str | Path, header: list[str]) -> Any:
    """A CSV writer on ``path`` (closed with ``stack``) with ``header`` written; AudienceError if
    the file cannot be created."""
    try:
        fh = stack.enter_context(open_private(Path(path), "w", encoding="utf-8", newline=""))
    except OSError as exc:
        raise AudienceError(f"cannot write: {exc.strerror or exc}", file=str(path)) from None
    writer = csv.writer(fh)
    writer.writerow(header)
    return writer


def check_audience(
    path: str | Path,
    *,
    fmt: Format | None = None,
    stdin: IO[str] | None = None,
    prune_list: str | Path | None = None,
    max_findings: int = 10_000,
    on_finding: Callable[[TokenFinding], None] | None = None,
) -> TokenReport:
    """Run the offline checks over an audience; write invalid tokens to ``prune_list`` (CSV).

    ``on_finding`` (a callable taking a TokenFinding) sees every finding as it is found,
    e.g. to print JSON lines without holding them. Unreadable files raise AudienceError.
    """
    reader = AudienceReader(path, fmt=fmt, on_bad_row="skip", stdin=stdin, dedupe=False)
    report = TokenReport(source=reader.source)
    checker = OfflineChecker()
    with ExitStack() as stack:
        writer = None
        if prune_list is not None:
            writer = open_prune_csv(stack, prune_list, ["token", "platform", "line", "problem", "message"])
            report.prune_list = str(prune_list)
        for finding in iter_findings(reader, checker):
            report.findings_total += 1
            report.counts[str(finding.problem)] += 1
            if len(report.findings) < max_findings:
                report.findings.append(finding)
            if finding.invalid:
                report.invalid += 1
                # Stream to the prune file: the invalid tokens of a huge audience never sit in memory.
                if writer is not None and finding.token:
                    platform = str(finding.platform) if finding.platform else ""
                    writer.writerow([finding.token, platform, finding.line, finding.problem, finding.message])
                    report.pruned += 1
            if on_finding is not None:
                on_finding(finding)
    report.platforms = dict(checker.platforms)
    report.rows = reader.stats.rows
    report.devices = reader.stats.devices - report.counts[str(Problem.DUPLICATE)]
    report.fingerprint = reader.fingerprint()
    return report
