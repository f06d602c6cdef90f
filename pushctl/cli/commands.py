"""The command table: every top-level command, the module that defines it, and its one-line help.

A command's module is imported only when that command runs (or its own ``--help`` is asked for),
as hatch's ``cli/lazy.py`` does: ``pushctl --help`` reads this table instead, so it does not load
h2, cryptography, Jinja2 or the emulator. A test checks each line here against the module's own
help text, so the table cannot go stale.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click
import typer


class CommandEntry(NamedTuple):
    module: str
    summary: str


# The order is the order in --help. Each module exposes ``register(app)``.
COMMANDS: dict[str, CommandEntry] = {
    "send": CommandEntry("send_cmd", "Send a personalised campaign to every device of an audience."),
    "render": CommandEntry(
        "render_cmd", "Render a template for audience devices and print the exact requests they would get."
    ),
    "broadcast": CommandEntry(
        "broadcast_cmd", "Send one message to an FCM topic or condition, or to an APNs broadcast channel."
    ),
    "trigger": CommandEntry(
        "trigger_cmd", "Rules that turn a stream of user events into personalised notifications."
    ),
    "devices": CommandEntry(
        "devices_cmd", "Keep the device directory (user id -> devices) that trigger rules send to."
    ),
    "engage": CommandEntry(
        "engage_cmd", "Import opens, conversions and dismissals, attributed to the sends they follow."
    ),
    "prefs": CommandEntry("prefs_cmd", "Users' notification preferences per category, kept in the journal."),
    "tokens": CommandEntry("tokens_cmd", "Check device tokens without sending anything."),
    "runs": CommandEntry("runs_cmd", "Inspect campaign runs recorded in the journal."),
    "forget": CommandEntry("forget_cmd", "Erase users' and devices' personal data from the journal."),
    "channels": CommandEntry(
        "channels_cmd", "Manage APNs broadcast channels (iOS 18 Live Activities) of the profile's app."
    ),
    "credentials": CommandEntry("credentials_cmd", "Check APNs, FCM, Web Push (VAPID) and HMS credentials."),
    "webpush": CommandEntry(
        "webpush_cmd", "Web Push (VAPID) keys: make the key pair your web app subscribes with."
    ),
    "config": CommandEntry("config_cmd", "Create, inspect and edit config profiles (TOML)."),
    "emulator": CommandEntry(
        "emulator_cmd", "Local APNs, FCM, Web Push and HMS emulator for rehearsals and tests."
    ),
}


def load_command(name: str) -> click.Command:
    """Import the module behind ``name`` and build its click command (a group for groups)."""
    entry = COMMANDS[name]
    module = importlib.import_module(f"pushctl.cli.{entry.module}")
    # Same settings as the root app, so a lazily built command renders exactly as an eager one.
    holder = typer.Typer(
        rich_markup_mode=None, pretty_exceptions_enable=False, pretty_exceptions_show_locals=False
    )
    module.register(holder)
    group = typer.main.get_group(holder)
    command = group.commands.get(name)
    if command is None:  # a module that registers under another name is a bug, not a user error
        raise LookupError(f"pushctl.cli.{entry.module} does not register '{name}'")
    return command
