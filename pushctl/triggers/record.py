"""What every event source hands out (:class:`Record`) and what it must do (:class:`EventSource`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["EventSource", "Record"]


@dataclass(slots=True)
class Record:
    """One raw event from a source: its text, where it came from, and the source's ack handle."""

    text: str | bytes | dict[str, Any]
    where: str
    """``file:line`` or the stream entry id, for dead letters and messages."""
    ack: Any = None
    problem: str = ""
    """Why the source could not even read it (a malformed record before parsing)."""


class EventSource(Protocol):
    """What ``trigger run`` needs from a source of events."""

    name: str
    """Identifies the source in ``trigger status`` (``file:events.jsonl``, ``redis:…/events``)."""
    consumer: str
    """This reader's name among the source's readers (a Redis consumer; ``main`` for files)."""
    finite: bool
    """The source ends (a file without ``--follow``, stdin): the run may stop at its end."""
    caught_up: bool
    """The last read found nothing more waiting: the stream's time is now."""
    exhausted: bool
    """A finite source has been read to its end."""

    async def open(self) -> None: ...

    async def read(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records``; ``[]`` after ``timeout`` seconds with nothing new."""
        ...

    async def ack(self, records: list[Record]) -> None:
        """These records' effects are journaled: the source may forget them."""
        ...

    async def dead_letter(self, record: Record, reason: str) -> None:
        """Keep a malformed record aside with its reason (a no-op where the runner's file does it)."""
        ...

    async def lag(self) -> int | None:
        """Records waiting to be read (None when unknown)."""
        ...

    async def close(self) -> None: ...
