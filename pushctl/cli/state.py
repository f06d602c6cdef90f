"""Per-invocation CLI state: the global options and the one Terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from pushctl.cli.console import Terminal


@dataclass
class State:
    terminal: Terminal = field(default_factory=Terminal)
    profile: str | None = None
    config_path: Path | None = None
    debug: bool = False


def get_state(ctx: click.Context | None = None) -> State:
    """The State set up by the root callback (a default one outside a CLI run)."""
    ctx = ctx or click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is None:
        return State()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj
