"""`pushctl send --dry-run`: the whole pipeline (filters, render, payload checks), no network."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pushctl import clock
from pushctl.audience import AudienceReader
from pushctl.campaign import CampaignSpec, Controls, Pipeline, build_providers, derive_id
from pushctl.cli.console import Terminal
from pushctl.cli.render_cmd import _print_device
from pushctl.config import Profile
from pushctl.errors import ExitCode
from pushctl.journal import collapse_id_for
from pushctl.message import ApnsRequest, FcmRequest, HmsRequest, Template, WebPushRequest, hms_body
from pushctl.outcome import Result


def _record(item_request: Any, provider: Any, device: Any, variant: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(item_request, ApnsRequest):
        path, headers, body, size = (
            item_request.path,
            dict(item_request.headers),
            item_request.body,
            len(item_request.body),
        )
    elif isinstance(item_request, WebPushRequest):
        path, headers, body, size = (
            item_request.endpoint,
            dict(item_request.headers),
            item_request.plaintext,
            item_request.size,
        )
        extra = {"encrypted_bytes": len(item_request.body)}
    elif isinstance(item_request, HmsRequest):
        path = f"/v1/{getattr(provider, 'app_id', '<app-id>')}/messages:send"
        headers, size = {}, item_request.size
        body = hms_body(item_request.message, [item_request.token], validate_only=item_request.validate_only)
    else:
        assert isinstance(item_request, FcmRequest)
        path = f"/v1/projects/{getattr(provider, 'project_id', '<project-id>')}/messages:send"
        headers, body, size = {}, item_request.body, item_request.size
    return {
        "type": "dry_run",
        "line": device.line,
        "source": device.source,
        "token": device.token,
        "platform": str(device.platform),
        "provider": device.platform.provider,
        "variant": variant,
        "locale": device.attrs.get("locale"),
        "path": path,
        "headers": headers,
        "payload": json.loads(body),
        "bytes": size,
        "limit": item_request.limit,
        **extra,
    }


def dry_run(
    terminal: Terminal,
    template: Path,
    audience: str,
    fmt: Literal["csv", "jsonl", "text"] | None,
    on_bad_row: Literal["fail", "skip"],
    profile: Profile,
    controls: Controls,
    validate_only: bool,
    campaign_id: str | None = None,
    identity: dict[str, Any] | None = None,
) -> int:
    """Print what would be sent to each device; returns the exit code."""
    tpl = Template.load(template)
    reader = AudienceReader(
        audience, fmt=fmt, on_bad_row=on_bad_row, on_skip=lambda bad: terminal.warn(f"skipped {bad}")
    )
    spec = CampaignSpec(
        template=template,
        audience=audience,
        profile=profile,
        journal_path=Path("-"),
        validate_only=validate_only,
        campaign_id=campaign_id,
        identity=identity or {},
    )
    # The id the real send would use: the same A/B variants and the same collapse id.
    campaign, _ = derive_id(spec, tpl, reader)
    providers, missing = build_providers(spec)
    held: list[Result] = []
    pipeline = Pipeline(
        template=tpl,
        providers=providers,
        campaign_id=campaign,
        collapse_id=collapse_id_for(campaign),
        emit=held.append,
        now=clock.now(),
        controls=controls,
        on_bad_row=on_bad_row,
        missing_provider=missing,
    )
    counts: Counter[str] = Counter()
    for item in pipeline.items(reader):
        record = _record(item.request, providers[item.provider], item.device, item.variant)
        counts[item.provider] += 1
        if terminal.json:
            terminal.json_line(record)
        else:
            _print_device(terminal, item.device, record)
    for result in held:
        counts[f"not sent: {result.outcome} ({result.reason})"] += 1
        if terminal.json:
            terminal.json_line({"type": "result", **result.to_dict()})
    summary = {
        "type": "summary",
        "dry_run": True,
        "would_send": {k: v for k, v in counts.items() if not k.startswith("not sent")},
        "not_sent": {k: v for k, v in counts.items() if k.startswith("not sent")},
    }
    if terminal.json:
        terminal.json_line(summary)
    else:
        for key, n in sorted(counts.items()):
            terminal.print(f"{key}: {n:,}")
        terminal.print("dry run: nothing was sent")
    return int(ExitCode.PARTIAL if any(r.outcome.value == "rejected" for r in held) else ExitCode.OK)
