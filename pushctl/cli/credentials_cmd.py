"""`pushctl credentials check`: load and cross-check the profile's credentials."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from pushctl.cli.console import Terminal
from pushctl.cli.state import get_state
from pushctl.config import PROVIDER_SECTIONS, Profile, resolve_profile
from pushctl.credentials import CredentialCheck, check_offline
from pushctl.errors import ConfigError, ExitCode, InputError, clip
from pushctl.inputs import CREDENTIAL_MAX_BYTES, loads_bounded, read_bounded_text

credentials_app = typer.Typer(
    name="credentials",
    help="Check APNs, FCM, Web Push (VAPID) and HMS credentials.",
    no_args_is_help=True,
)


def password_source(profile: Profile, terminal: Terminal) -> Callable[[], bytes | None]:
    """The certificate password: from the env var the profile names, else a hidden prompt on a tty."""

    def get() -> bytes | None:
        var = profile.apns.password_env
        if value := os.environ.get(var):
            return value.encode()
        if sys.stdin.isatty() and terminal.err.is_terminal:
            return str(typer.prompt(f"Password for {profile.apns.cert_file}", hide_input=True,
                                    default="", show_default=False, err=True)).encode()
        return None

    return get


@credentials_app.command("check")
def check(
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also prove each credential against the service: FCM and HMS issue an access token (HMS "
            "then accepts a validate_only message); APNs gets one push to a token no device has "
            "(BadDeviceToken proves key, topic and environment); Web Push gets a push to a probe "
            "subscription at webpush.endpoint (404 proves the VAPID JWT was accepted).",
        ),
    ] = False,
    webpush_subscription: Annotated[
        Path | None,
        typer.Option(
            "--webpush-subscription",
            help="With --online: a PushSubscription.toJSON() file of your own browser; it gets one empty "
            "push (TTL 0), which proves the VAPID key pair is the one the web app subscribes with.",
        ),
    ] = None,
) -> None:
    """Check the profile's credentials: files offline, and with --online against each service.

    Exits 0 when every check passed, 3 if any failed (4 if a service could not be reached).
    """
    state = get_state()
    profile = resolve_profile(state.config_path, state.profile)
    if not any(getattr(profile, name).configured for name in PROVIDER_SECTIONS):
        raise ConfigError(
            f"profile '{profile.name}' has no APNs, FCM, Web Push or HMS credentials configured",
            file=profile.source,
            hint="run `pushctl config init`, then `pushctl config set apns.key_file ...`, "
            "`fcm.service_account ...`, `webpush.vapid_private_key ...` or `hms.app_id ...`",
        )
    subscription = _subscription(webpush_subscription) if webpush_subscription is not None else None
    password = _once(password_source(profile, state.terminal))
    checks = check_offline(profile, password=password)
    unreachable_only = False
    if online:
        from pushctl.checks import check_online

        # A credential that failed offline cannot be proven online: say so once, do not retry it.
        skip = frozenset(c.provider for c in checks if not c.ok and c.provider in PROVIDER_SECTIONS)
        for name in sorted(skip):
            state.terminal.info(f"{name}: not checked online until the offline check passes")
        rows = asyncio.run(check_online(profile, password=password, skip=skip,
                                        webpush_subscription=subscription))
        failed_online = [r for r in rows if not r.ok]
        unreachable_only = (
            all(c.ok for c in checks) and bool(failed_online) and all(r.unreachable for r in failed_online)
        )
        checks = [*checks, *rows]
    report(state.terminal, profile, checks)
    if unreachable_only:
        raise click.exceptions.Exit(int(ExitCode.UNAVAILABLE))
    if not all(c.ok for c in checks):
        raise click.exceptions.Exit(int(ExitCode.AUTH))


def _subscription(path: Path) -> dict[str, Any]:
    """A ``PushSubscription.toJSON()`` file, checked enough to be pushed to."""
    text = read_bounded_text(path, what="subscription file", limit=CREDENTIAL_MAX_BYTES)
    try:
        data = loads_bounded(text)
    except ValueError as exc:
        raise InputError(f"not JSON: {clip(str(exc), 200)}", file=path,
                         field="--webpush-subscription") from None
    if not isinstance(data, dict) or not str(data.get("endpoint", "")).startswith("https://"):
        raise InputError("expected a subscription JSON with an https:// endpoint (PushSubscription.toJSON())",
                         file=path, field="--webpush-subscription")
    return data


def _once(source: Callable[[], bytes | None]) -> Callable[[], bytes | None]:
    """Ask for the certificate password at most once (offline and online checks both need it)."""
    cache: list[bytes | None] = []

    def get() -> bytes | None:
        if not cache:
            cache.append(source())
        return cache[0]

    return get


def report(terminal: Terminal, profile: Profile, checks: list[CredentialCheck]) -> None:
    """Print the checks: a table on a terminal, one JSON object per line otherwise."""
    if terminal.json:
        for c in checks:
            terminal.json_line({"profile": profile.name, **c.as_dict()})
    else:
        rows = [
            (c.provider, c.kind, c.path or "-", "✓" if c.ok else "✗",
             c.detail + (f"\nfix: {c.fix}" if c.fix else ""), "\n".join(c.warnings))
            for c in checks
        ]
        terminal.table(["provider", "kind", "file", "status", "detail", "warnings"], rows,
                       title=f"profile {profile.name}")
    failed = sum(not c.ok for c in checks)
    count = f"{len(checks)} check" + ("" if len(checks) == 1 else "s")
    summary = f"{count}, {failed} failed" if failed else f"{count}, all ok"
    (terminal.warn if failed else terminal.info)(summary)


def register(app: typer.Typer) -> None:
    """Add the ``credentials`` command group."""
    app.add_typer(credentials_app)
