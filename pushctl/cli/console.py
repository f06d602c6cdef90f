"""The one console: results to stdout, diagnostics and progress to stderr.

Rich is imported here (and in other ``pushctl/cli`` modules) only. Table output goes
to a terminal; JSON Lines go to stdout when asked for or when stdout is not a terminal,
and then nothing but JSON is written to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from rich.console import Console
from rich.table import Table


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass
class Terminal:
    """Owns the stdout and stderr consoles and the user's output preferences."""

    output: OutputFormat | None = None
    quiet: bool = False
    verbose: int = 0
    color: bool = True
    stdout: IO[str] | None = None
    stderr: IO[str] | None = None
    width: int | None = None
    out: Console = field(init=False)
    err: Console = field(init=False)

    def __post_init__(self) -> None:
        no_color = not self.color or "NO_COLOR" in os.environ
        stdout = self.stdout if self.stdout is not None else sys.stdout
        stderr = self.stderr if self.stderr is not None else sys.stderr
        self.out = Console(file=stdout, no_color=no_color, highlight=False, width=self.width, soft_wrap=False)
        self.err = Console(
            file=stderr, no_color=no_color, highlight=False, width=self.width, stderr=True,
            soft_wrap=True,  # one error = one line, whatever the terminal width
        )
        if self.output is None:
            self.output = OutputFormat.TABLE if self.out.is_terminal else OutputFormat.JSON

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.JSON

    @property
    def interactive(self) -> bool:
        """True when progress bars and countdowns make sense (stderr is a terminal, not quiet)."""
        return self.err.is_terminal and not self.quiet

    # -- results (stdout) -------------------------------------------------

    def json_line(self, obj: Any) -> None:
        """One JSON object on one stdout line."""
        self.out.file.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        self.out.file.flush()

    def json_text(self, text: str) -> None:
        """JSON lines already encoded (``send --workers``: the workers format their results)."""
        self.out.file.write(text)
        self.out.file.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        caption: str | None = None,
    ) -> None:
        """A Rich table on stdout."""
        table = Table(title=title, caption=caption, title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.out.print(table)

    def print(self, text: str = "", *, markup: bool = False) -> None:
        """Plain text result on stdout."""
        self.out.print(text, markup=markup, highlight=False)

    def raw(self, text: str) -> None:
        """Text on stdout exactly as given (payload JSON, exports)."""
        self.out.file.write(text)
        self.out.file.flush()

    # -- diagnostics (stderr) --------------------------------------------

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {_escape(message)}")

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[yellow]warning:[/] {_escape(message)}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(_escape(message))

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.err.print(f"[dim]{_escape(message)}[/]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
