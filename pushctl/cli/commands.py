"""Registers every command module on the root app (one line per module)."""

from __future__ import annotations

import importlib

import typer

# Each module exposes ``register(app)``; the order is the order in --help.
COMMAND_MODULES = (
    "send",
    "render",
    "tokens",
    "runs",
    "credentials",
    "config",
    "emulator",
)


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"pushctl.cli.{name}_cmd")
        module.register(app)
