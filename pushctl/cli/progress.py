"""Live progress of a send on stderr: bar, sent/total, rate, ETA and counts per outcome."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pushctl.cli.console import Terminal
from pushctl.cli.results_view import OUTCOME_STYLES
from pushctl.delivery import Event
from pushctl.outcome import Outcome


class SendProgress:
    """Counts results as they arrive; renders a Rich progress bar when stderr is a terminal."""

    def __init__(self, terminal: Terminal, total: int | None) -> None:
        self.terminal = terminal
        self.total = total
        self.done = 0
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task = None

    def add(self, outcome: str) -> None:
        self.done += 1
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def add_counts(self, counts: dict[str, int]) -> None:
        """Devices per outcome at once (the batches of ``send --workers``)."""
        for outcome, n in counts.items():
            self.done += n
            self.counts[outcome] = self.counts.get(outcome, 0) + n

    def _counts_text(self) -> str:
        parts = []
        for outcome in Outcome:
            n = self.counts.get(str(outcome), 0)
            if n:
                parts.append(f"[{OUTCOME_STYLES[outcome]}]{outcome}: {n:,}[/]")
        return "  ".join(parts)

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @contextlib.asynccontextmanager
    async def live(self) -> AsyncIterator[None]:
        """Show the bar while the body runs (no-op when not interactive)."""
        if not self.terminal.interactive:
            yield
            return
        progress = Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8}/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=self.terminal.err,
            transient=False,
            auto_refresh=False,
        )
        task = progress.add_task("send", total=self.total, rate="0", counts="")
        stop = asyncio.Event()

        async def refresh() -> None:
            while not stop.is_set():
                progress.update(
                    task, completed=self.done, rate=f"{self._rate():,.0f}", counts=self._counts_text()
                )
                progress.refresh()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)

        with progress:
            refresher = asyncio.create_task(refresh())
            try:
                yield
            finally:
                stop.set()
                await refresher
                progress.update(
                    task, completed=self.done, rate=f"{self._rate():,.0f}", counts=self._counts_text()
                )
                progress.refresh()


def event_printer(terminal: Terminal) -> Callable[[Event], None]:
    """How sender events reach the user: warnings, the auth stop, and info lines on stderr."""

    def on_event(event: Event) -> None:
        if event.kind == "warning":
            terminal.warn(event.message)
        elif event.kind == "auth_stop":
            terminal.error(event.message)
        else:
            terminal.info(event.message)

    return on_event


async def countdown(terminal: Terminal, until: datetime, now: Callable[[], datetime]) -> None:
    """Wait until ``until``, showing a countdown on a terminal."""
    while True:
        left = (until - now()).total_seconds()
        if left <= 0:
            return
        if terminal.interactive:
            terminal.err.print(f"\rstarting in {_hms(left)} (at {until.isoformat()})", end="")
        await asyncio.sleep(min(1.0, left))
        if terminal.interactive and left <= 1.0:
            terminal.err.print()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
