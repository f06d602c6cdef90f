"""Per-device output of a send, written in batches: JSON result lines on stdout, the
``--results`` and ``--invalid-tokens`` files, and the progress counts.

One ``write`` + ``flush`` per line was a system call per device (~7% of a notification's CPU).
Lines now collect in memory and are written, whole, at the latest:

* before the journal commits a batch of results (the campaign's ``flush`` hook), so after a
  crash, even ``kill -9``, stdout and the result files hold every device the journal settled;
* every ``MAX_LINES`` lines and ``MAX_DELAY`` seconds, so a pipe reader sees steady progress;
* when the send ends, however it ends (``close``).

Lines are compact JSON (no spaces), encoded by orjson where installed.
"""

from __future__ import annotations

import asyncio

from pushctl.cli.console import Terminal
from pushctl.cli.progress import SendProgress
from pushctl.cli.results_view import result_json_line
from pushctl.delivery import InvalidTokenFile, ResultFile
from pushctl.outcome import Result
from pushctl.runtime import dumps_compact

MAX_LINES = 1000
MAX_DELAY = 0.2



class ResultSink:
    """Collects each result's outputs; :meth:`flush` writes them (see the module docstring)."""

    def __init__(
        self, terminal: Terminal, progress: SendProgress, files: list[ResultFile | InvalidTokenFile]
    ) -> None:
        self._terminal = terminal
        self._json = terminal.json
        self._progress = progress
        self._files = files
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._dirty = False

    def add(self, result: Result) -> None:
        self._progress.add(str(result.outcome))
        for f in self._files:
            f.write(result)
        self._dirty = True
        if self._json:
            lines = self._lines
            lines.append(dumps_compact(result_json_line(result)).decode())
            if len(lines) >= MAX_LINES:
                self.flush()
                return
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(MAX_DELAY, self.flush)
            except RuntimeError:  # no loop (a synchronous caller): write at once
                self.flush()

    def flush(self) -> None:
        """Write everything collected so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._dirty:
            return
        self._dirty = False
        if self._lines:
            out = self._terminal.out.file
            self._lines.append("")
            out.write("\n".join(self._lines))
            out.flush()
            self._lines.clear()
        for f in self._files:
            f.flush()

    def close(self) -> None:
        """Flush and stop the timer (the end of a send, normal or not)."""
        self.flush()
