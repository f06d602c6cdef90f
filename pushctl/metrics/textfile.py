"""``--metrics-file PATH.prom``: the run's metrics as a Prometheus text file, for node_exporter's
textfile collector (the convention for cron jobs and other batch runs).

The file is rewritten atomically (prometheus_client's ``write_to_textfile``: a temporary file in
the same directory, then a rename), so a scrape never reads half a file: when the run starts,
every ``interval`` seconds while it goes, and when it ends. It holds counts, not device tokens,
and node_exporter must be able to read it: it is the one kind of file pushctl does not make
private (0600); its mode follows the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pushctl.errors import InputError
from pushctl.metrics.families import RunMetrics, family_values

__all__ = ["DEFAULT_INTERVAL", "MetricsFile", "check_metrics_path"]

DEFAULT_INTERVAL = 5.0
"""Seconds between rewrites while a run goes on (node_exporter reads the file on each scrape)."""

LAST_SUCCESS = "pushctl_last_success_timestamp_seconds"


def check_metrics_path(path: Path, option: str = "--metrics-file") -> Path:
    """Refuse, before the run, a path whose directory does not exist or that is a directory."""
    if path.is_dir():
        raise InputError("is a directory", file=path, field=option, hint="give a file name ending in .prom")
    if not path.parent.is_dir():
        raise InputError(f"no directory {path.parent}", file=path, field=option)
    return path


class MetricsFile:
    """Writes one run's :class:`RunMetrics` to ``path`` now and then, atomically."""

    def __init__(self, path: Path, metrics: RunMetrics, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.path = check_metrics_path(path)
        self.metrics = metrics
        self.interval = interval
        self._registry = metrics.registry()
        metrics.last_completed = max(metrics.last_completed, self._previous_success())

    def _previous_success(self) -> float:
        """The last success a previous run wrote here (kept when this run fails)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            return max((value for _labels, value in family_values(text, LAST_SUCCESS)), default=0.0)
        except (OSError, ValueError, UnicodeDecodeError):
            return 0.0

    def write(self) -> None:
        """Write the file now (temp + rename)."""
        from prometheus_client import write_to_textfile

        try:
            write_to_textfile(str(self.path), self._registry)
        except OSError as exc:
            raise InputError(
                f"cannot write the metrics file: {exc.strerror or exc}",
                file=self.path,
                field="--metrics-file",
            ) from None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write now (once the run knows its campaign: a send's is set when it starts), every
        ``interval`` seconds while the body runs, and once more at the end."""
        if self.metrics.campaign:
            self.write()

        async def every() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.write()

        task = asyncio.create_task(every())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.write()
