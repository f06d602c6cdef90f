"""`pushctl webpush keygen`: make the VAPID key pair a web app subscribes with (RFC 8292)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from pushctl.cli.state import get_state

webpush_app = typer.Typer(
    name="webpush",
    help="Web Push (VAPID) keys: make the key pair your web app subscribes with.",
    no_args_is_help=True,
)


@webpush_app.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
) -> None:
    """Write a new VAPID key pair and print its application server key (the public key).

    Give the application server key to the web app (pushManager.subscribe({applicationServerKey})),
    and the private key file to the profile (webpush.vapid_private_key). Subscriptions belong to the
    key they were made with: replacing the key orphans every one of them.
    """
    from pushctl.credentials import generate_vapid_key

    terminal = get_state().terminal
    key = generate_vapid_key(path, overwrite=force)
    if terminal.json:
        terminal.json_line({"vapid_private_key": str(key.path.resolve()),
                            "application_server_key": key.application_server_key})
        return
    terminal.raw(key.application_server_key + "\n")  # unwrapped: it is copied into the web app
    quoted = shlex.quote(str(key.path.resolve()))
    terminal.info(
        f"wrote {key.path} (0600). The line above is the application server key for your web app.\n"
        f"next: pushctl config set webpush.vapid_private_key {quoted}\n"
        "      pushctl config set webpush.subject mailto:you@example.com"
    )


def register(app: typer.Typer) -> None:
    """Add the ``webpush`` command group."""
    app.add_typer(webpush_app, name="webpush")
