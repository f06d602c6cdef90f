"""`pushctl render`: show exactly what each device would be sent, without sending."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pushctl.cli.console import Terminal
from pushctl.cli.state import State, get_state
from pushctl.errors import AudienceError, InputError
from pushctl.message import Template, build_apns, build_fcm, build_hms, build_webpush, hms_body
from pushctl.model import Device, Platform

DEFAULT_TOPIC = "com.example.app"
PROJECT_PLACEHOLDER = "<project-id>"


def _shorten(token: str, keep: int = 8) -> str:
    return token if len(token) <= 2 * keep + 1 else f"{token[:keep]}…{token[-keep:]}"


def _topic(state: State, explicit: str | None) -> tuple[str, str | None]:
    """The APNs topic, and the profile-resolution problem to mention if we fell back."""
    if explicit:
        return explicit, None
    from pushctl.config import resolve_profile

    profile = resolve_profile(state.config_path, state.profile)
    if profile.apns.topic:
        return profile.apns.topic, None
    return DEFAULT_TOPIC, f"no APNs topic configured: using {DEFAULT_TOPIC} (set one with --topic)"


def _project(state: State) -> str:
    """The FCM project id from the profile's service account, else a placeholder."""
    from pushctl.config import resolve_profile
    from pushctl.credentials import load_service_account

    profile = resolve_profile(state.config_path, state.profile)
    if profile.fcm.service_account is None:
        return PROJECT_PLACEHOLDER
    # Loading it here is what turns a google-services.json into a clear exit-2 error.
    return load_service_account(profile.fcm.service_account).project_id


def _hms_app(state: State) -> str:
    """The HMS app id from the profile, else a placeholder."""
    from pushctl.config import resolve_profile

    return resolve_profile(state.config_path, state.profile).hms.app_id or "<app-id>"


def _webpush(
    state: State, note: Any, device: Device
) -> tuple[str, dict[str, str], bytes, int, int, dict[str, Any]]:
    """(endpoint, headers, plaintext, plaintext bytes, limit, extra) of a Web Push request: the body
    is encrypted for this subscription; the VAPID header is shown with its parts, not a real JWT."""
    from pushctl.config import resolve_profile
    from pushctl.errors import PayloadError

    p256dh, auth = device.attrs.get("p256dh", ""), device.attrs.get("auth", "")
    if not p256dh or not auth:
        raise PayloadError("this Web Push subscription has no p256dh/auth keys", file=device.where)
    req = build_webpush(note, device.token, p256dh=p256dh, auth=auth, where=device.where)
    settings = resolve_profile(state.config_path, state.profile).webpush
    public = "<application server key>"
    if settings.vapid_private_key is not None:
        from pushctl.credentials import load_vapid_key

        public = load_vapid_key(settings.vapid_private_key).application_server_key
    vapid = f"vapid t=<ES256 JWT: aud=origin, exp<=24h, sub>, k={public}"
    headers = {"authorization": vapid, **dict(req.headers)}
    headers["content-length"] = str(len(req.body))
    extra = {"encrypted_bytes": len(req.body), "push_service": settings.endpoint or None}
    return req.endpoint, headers, req.plaintext, req.size, req.limit, extra


def _select(
    devices: Iterator[Device], *, row: int | None, token: str | None, platform: Platform | None
) -> Iterator[Device]:
    count = 0
    for device in devices:
        count += 1
        if row is not None:
            if count == row:
                yield device
                return
            continue
        if token is not None and device.token != token:
            continue
        if platform is not None and device.platform is not platform:
            continue
        yield device
        if token is not None:
            return
    if row is not None:
        raise InputError(f"--row {row} is past the end: the audience has {count} device rows", field="--row")
    if token is not None:
        raise InputError("no device with this token in the audience", field="--token")


def register(app: typer.Typer) -> None:
    """Add the ``render`` command."""
    app.command("render")(render)


def render(
    template: Annotated[Path, typer.Argument(help="Template YAML file.")],
    audience: Annotated[
        str, typer.Option("--audience", "-a", help="Audience file (CSV, JSONL or text), or - for stdin.")
    ],
    row: Annotated[
        int | None,
        typer.Option("--row", min=1, help="Only the Nth device row (1-based, header not counted)."),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="Only the device with this token.")] = None,
    platform: Annotated[
        Literal["ios", "android", "web", "webpush", "hms"] | None,
        typer.Option("--platform", help="Only devices of this platform."),
    ] = None,
    fmt: Annotated[
        Literal["csv", "jsonl", "text"] | None,
        typer.Option("--format", "-f", help="Audience format (default: by extension; sniffed for stdin)."),
    ] = None,
    on_bad_row: Annotated[
        Literal["fail", "skip"], typer.Option("--on-bad-row", help="Stop at a bad audience row, or skip it.")
    ] = "fail",
    topic: Annotated[
        str | None, typer.Option("--topic", help="APNs topic (default: the profile's, else com.example.app).")
    ] = None,
    campaign: Annotated[
        str, typer.Option("--campaign", help="Campaign id that A/B variants are chosen with.")
    ] = "",
    variant: Annotated[str | None, typer.Option("--variant", help="Force this A/B variant.")] = None,
) -> None:
    """Render a template for audience devices and print the exact requests they would get.

    APNs, FCM, Web Push and HMS alike; nothing is sent. Each device shows its headers, payload JSON
    and size against the limit; Web Push shows the plaintext JSON the subscription decrypts (its
    size before and after aes128gcm encryption), HMS the messages:send body.
    """
    from pushctl.audience import AudienceReader

    state = get_state()
    terminal = state.terminal
    tpl = Template.load(template)
    if variant is not None and variant not in tpl.variants:
        known = ", ".join(tpl.variants) or "none"
        raise InputError(f"no variant '{variant}' in {template} (variants: {known})", field="--variant")
    reader = AudienceReader(
        audience,
        fmt=fmt,
        on_bad_row=on_bad_row,
        dedupe=False,  # --row N counts rows as written
        on_skip=lambda bad: terminal.warn(f"skipped {bad}"),
    )
    wanted = Platform(platform) if platform else None
    apns_topic: str | None = None
    project: str | None = None
    hms_app: str | None = None
    counts: Counter[str] = Counter()
    largest = 0
    for device in _select(iter(reader), row=row, token=token, platform=wanted):
        chosen = variant or tpl.choose_variant(device.token, campaign)
        note = tpl.render(device, variant=chosen)
        extra: dict[str, Any] = {}
        if device.platform is Platform.IOS:
            if apns_topic is None:
                apns_topic, warning = _topic(state, topic)
                if warning:
                    terminal.info(f"note: {warning}")
            req = build_apns(note, device.token, topic=apns_topic, where=device.where)
            path, headers, payload, size, limit = (
                req.path,
                dict(req.headers),
                req.body,
                len(req.body),
                req.limit,
            )
        elif device.platform is Platform.WEBPUSH:
            path, headers, payload, size, limit, extra = _webpush(state, note, device)
        elif device.platform is Platform.HMS:
            if hms_app is None:
                hms_app = _hms_app(state)
            hreq = build_hms(note, device.token, where=device.where)
            path = f"/v1/{hms_app}/messages:send"
            headers, payload = {}, hms_body(hreq.message, [device.token], validate_only=False)
            size, limit = hreq.size, hreq.limit
        else:
            if project is None:
                project = _project(state)
            freq = build_fcm(note, device.token, platform=device.platform, where=device.where)
            path = f"/v1/projects/{project}/messages:send"
            headers, payload, size, limit = {}, freq.body, freq.size, freq.limit
        counts[device.platform.provider] += 1
        largest = max(largest, size)
        record: dict[str, Any] = {
            "line": device.line,
            "source": device.source,
            "token": device.token,
            "platform": str(device.platform),
            "provider": device.platform.provider,
            "locale": note.locale,
            "variant": note.variant,
            "path": path,
            "headers": headers,
            "payload": json.loads(payload),
            "bytes": size,
            "limit": limit,
            **extra,
        }
        if terminal.json:
            terminal.json_line(record)
        else:
            _print_device(terminal, device, record)
    total = sum(counts.values())
    if reader.stats.rows == 0:
        # A header and nothing else: say so (exit 2) rather than print nothing and exit 0.
        raise AudienceError("the audience has no device rows", file=reader.source,
                            hint="add rows below the header")
    if total == 0:
        terminal.warn(f"no device to render: {_why_none(reader.stats.rows, reader.stats.bad_rows, platform)}")
    if not terminal.json:
        parts = ", ".join(f"{n} {provider}" for provider, n in sorted(counts.items()))
        terminal.print(f"rendered {total} device(s) ({parts or 'none'}); largest payload {largest:,} bytes")


def _why_none(rows: int, bad: int, platform: str | None) -> str:
    if bad == rows:
        return f"all {rows:,} rows were skipped as bad rows"
    if platform:
        return f"no {platform} device among the {rows:,} rows"
    return f"{bad:,} of {rows:,} rows were skipped"


def _print_device(terminal: Terminal, device: Device, record: dict[str, Any]) -> None:
    header = (
        f"── {device.where}  {_shorten(device.token)}  {record['platform']}"
        f"  locale={record['locale'] or '-'}  variant={record['variant'] or '-'}"
    )
    terminal.print(header)
    terminal.raw(f"POST {record['path']}\n")
    if record.get("push_service"):
        terminal.print(f"(sent to {record['push_service']}: the profile's webpush.endpoint)")
    for name, value in record["headers"].items():
        terminal.raw(f"{name}: {value}\n")
    terminal.raw(json.dumps(record["payload"], indent=2, ensure_ascii=False) + "\n")
    size = f"size: {record['bytes']:,} / {record['limit']:,} bytes"
    if "encrypted_bytes" in record:
        size += f" (plaintext; {record['encrypted_bytes']:,} bytes encrypted, aes128gcm)"
    terminal.print(size)
    terminal.print()
