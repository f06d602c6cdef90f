"""`pushctl credentials check`: load and cross-check the profile's credentials."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click
import typer

from pushctl.cli.console import Terminal
from pushctl.cli.state import get_state
from pushctl.config import Profile, resolve_profile
from pushctl.credentials import CredentialCheck, check_offline
from pushctl.errors import ConfigError, ExitCode

credentials_app = typer.Typer(
    name="credentials",
    help="Check APNs keys/certificates and FCM service accounts.",
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
def check() -> None:
    """Check the profile's credential files offline (exit 0 all ok, 3 if any check failed)."""
    state = get_state()
    profile = resolve_profile(state.config_path, state.profile)
    if not profile.apns.configured and not profile.fcm.configured:
        raise ConfigError(
            f"profile '{profile.name}' has no APNs or FCM credentials configured",
            file=profile.source,
            hint="run `pushctl config init`, then `pushctl config set apns.key_file ...` "
            "or `pushctl config set fcm.service_account ...`",
        )
    checks = check_offline(profile, password=password_source(profile, state.terminal))
    # An --online flag adds its rows here (token request / dry run), same CredentialCheck type.
    report(state.terminal, profile, checks)
    if not all(c.ok for c in checks):
        raise click.exceptions.Exit(int(ExitCode.AUTH))


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
    summary = f"{len(checks)} checks, {failed} failed" if failed else f"{len(checks)} checks, all ok"
    (terminal.warn if failed else terminal.info)(summary)


def register(app: typer.Typer) -> None:
    """Add the ``credentials`` command group."""
    app.add_typer(credentials_app)
