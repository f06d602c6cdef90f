"""Engagement files in: CSV or JSON Lines rows (or trigger-stream events) -> :class:`EngagementEvent`.

A row is one open, conversion or dismissal::

    event_id,type,ts,campaign,token,user_id,variant,provider_id,value
    e-1,opened,2026-03-02T09:14:05Z,spring-ab,740f47…,u1001,short,,
    e-2,converted,2026-03-02T09:20:41Z,spring-ab,740f47…,u1001,short,,19.90

Columns (JSON Lines: the same keys, at the top level or under ``data``, as trigger events have):

- ``type`` (``event``): ``opened`` / ``open`` / ``push_opened``, ``converted`` / ``conversion`` /
  ``push_converted``, ``dismissed`` / ``dismissal`` / ``push_dismissed``;
- ``ts`` (``timestamp``, ``occurred_at``, ``time``): ISO 8601 with a UTC offset, or UNIX seconds
  (or milliseconds);
- what names the notification: ``provider_id`` (``apns_id``, ``message_id``), ``campaign``
  (``campaign_id``, ``pushctl_campaign``) with ``token`` or ``user_id``, a ``token`` alone, or a
  ``campaign`` with the payload's ``variant`` (``pushctl_variant``); a ``user_id`` alone names no
  send but still tells when that user opens pushes (best hours);
- ``event_id`` (``id``): duplicates count once; without one, the row's own content is its id;
- ``value``: a conversion's value (revenue), optional.

A bad row stops the import with ``file:line: field 'x': ...`` unless ``on_bad_row="skip"`` (then it is
counted and the first ones are kept as examples), as audience rows are.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from pushctl.errors import InputError
from pushctl.inputs import check_regular_file, loads_bounded
from pushctl.journal import EngagementEvent

__all__ = [
    "EVENT_TYPES",
    "BadEvent",
    "EngagementReader",
    "ReadStats",
    "engagement_kind",
    "event_from_mapping",
    "parse_timestamp",
]

Format = Literal["csv", "jsonl"]
MAX_LINE = 1 << 20
"""Longest line accepted (bytes): a longer one is a bad row, not a memory spike."""
SAMPLES = 20

EVENT_TYPES: dict[str, str] = {
    **dict.fromkeys(("open", "opened", "opens", "push_opened", "push_open"), "open"),
    **dict.fromkeys(
        ("conversion", "converted", "convert", "push_converted", "push_conversion"), "conversion"
    ),
    **dict.fromkeys(("dismissal", "dismissed", "dismiss", "push_dismissed"), "dismissal"),
}
"""Accepted ``type`` values -> the stored kind."""
_ALIASES: dict[str, tuple[str, ...]] = {
    "event_id": ("event_id", "id"),
    "type": ("type", "event", "kind"),
    "ts": ("ts", "timestamp", "occurred_at", "time"),
    "provider_id": ("provider_id", "apns_id", "apns-id", "message_id"),
    "campaign": ("campaign", "campaign_id", "pushctl_campaign"),
    "token": ("token",),
    "user_id": ("user_id",),
    "variant": ("variant", "pushctl_variant"),
    "value": ("value",),
}


def engagement_kind(event_type: str) -> str | None:
    """``open`` / ``conversion`` / ``dismissal`` for an accepted ``type`` value, else None."""
    return EVENT_TYPES.get(event_type.strip().lower())


class BadEvent(ValueError):
    """A row that cannot become an event: ``field`` and the message say why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_timestamp(value: Any, field: str = "ts") -> float:
    """ISO 8601 with an offset, or UNIX seconds / milliseconds, as epoch seconds."""
    if isinstance(value, bool):
        raise BadEvent(field, f"not a time: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            except ValueError:
                raise BadEvent(
                    field, f"not a time: {text!r} (ISO 8601 with an offset, or UNIX seconds)"
                ) from None
            if parsed.tzinfo is None or parsed.utcoffset() is None:
                raise BadEvent(field, f"{text!r} has no UTC offset (add Z or +01:00)") from None
            return parsed.timestamp()
    if number != number or number < 0:  # NaN or negative
        raise BadEvent(field, f"not a time: {value!r}")
    return number / 1000 if number > 1e11 else number  # milliseconds past 1973 look like this


def _get(row: Mapping[str, Any], name: str) -> Any:
    data = row.get("data")
    for key in _ALIASES[name]:
        value = row.get(key)
        if (value is None or value == "") and isinstance(data, Mapping):
            value = data.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = _get(row, name)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise BadEvent(name, "must be a string")
    text = str(value).strip()
    return text or None


def event_from_mapping(row: Mapping[str, Any], *, source: str = "", line: int = 0) -> EngagementEvent:
    """The event a row (or a trigger event's fields) describes; :class:`BadEvent` when it cannot be."""
    kind_text = _text(row, "type")
    if kind_text is None:
        raise BadEvent("type", "missing (opened, converted or dismissed)")
    kind = engagement_kind(kind_text)
    if kind is None:
        raise BadEvent("type", f"unknown event type {kind_text!r} (opened, converted or dismissed)")
    ts = _get(row, "ts")
    if ts is None:
        raise BadEvent("ts", "missing (when it happened: ISO 8601 with an offset, or UNIX seconds)")
    occurred = parse_timestamp(ts)
    value_raw = _get(row, "value")
    value: float | None = None
    if value_raw is not None:
        try:
            value = float(value_raw)
        except (TypeError, ValueError):
            raise BadEvent("value", f"not a number: {value_raw!r}") from None
    event = EngagementEvent(
        event_id="",
        kind=kind,
        occurred_at=occurred,
        token=_text(row, "token"),
        user_id=_text(row, "user_id"),
        campaign_id=_text(row, "campaign"),
        variant=_text(row, "variant"),
        provider_id=_text(row, "provider_id"),
        value=value,
        source=source,
        line=line,
    )
    if not (event.provider_id or event.token or event.user_id or (event.campaign_id and event.variant)):
        raise BadEvent(
            "provider_id", "names no notification: give provider_id, token, user_id, or campaign and variant"
        )
    given = _text(row, "event_id")
    event.event_id = given or _content_id(event)
    return event


def _content_id(e: EngagementEvent) -> str:
    canonical = json.dumps(
        [e.kind, e.occurred_at, e.token, e.user_id, e.campaign_id, e.variant, e.provider_id, e.value]
    )
    return "auto-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass
class ReadStats:
    """Rows read and rows that were bad (skipped)."""

    rows: int = 0
    bad_rows: int = 0
    bad_samples: list[str] = field(default_factory=list)


class EngagementReader:
    """Iterate the events of a CSV / JSON Lines file (or ``-``, stdin), one pass, flat memory."""

    def __init__(
        self,
        path: str,
        *,
        fmt: Format | None = None,
        on_bad_row: Literal["fail", "skip"] = "fail",
        stdin: IO[bytes] | None = None,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.source = "<stdin>" if path == "-" else path
        self.fmt = fmt
        self.on_bad_row = on_bad_row
        self.stats = ReadStats()
        self._stdin = stdin
        self._on_skip = on_skip

    def __iter__(self) -> Iterator[EngagementEvent]:
        with self._open() as handle:
            first = handle.readline(MAX_LINE + 1)
            fmt = self.fmt or self._sniff(first)
            lines = _lines(first, handle)
            rows = _jsonl_rows(lines) if fmt == "jsonl" else _csv_rows(lines, self.source)
            for line, row in rows:
                self.stats.rows += 1
                try:
                    if isinstance(row, BadEvent):
                        raise row
                    yield event_from_mapping(row, source=self.source, line=line)
                except BadEvent as exc:
                    self._bad(line, exc)

    def _bad(self, line: int, exc: BadEvent) -> None:
        if self.on_bad_row == "fail":
            raise InputError(
                exc.message, file=Path(self.source), line=line, field=exc.field,
                hint="fix the row, or pass --on-bad-row skip to skip and count bad rows",
            )  # fmt: skip
        self.stats.bad_rows += 1
        text = f"{self.source}:{line}: field '{exc.field}': {exc.message}"
        if len(self.stats.bad_samples) < SAMPLES:
            self.stats.bad_samples.append(text)
        if self._on_skip is not None:
            self._on_skip(text)

    def _sniff(self, first: bytes) -> Format:
        suffix = Path(self.path).suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        return "jsonl" if first.lstrip().startswith(b"{") else "csv"

    def _open(self) -> Any:
        if self.path == "-":
            return _Borrowed(self._stdin if self._stdin is not None else sys.stdin.buffer)
        check_regular_file(Path(self.path), what="the events file")
        try:
            return open(self.path, "rb")  # closed by the caller's with
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}", file=Path(self.path)) from None


class _Borrowed:
    """stdin in a ``with`` that does not close it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        return None


def _lines(first: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    while line := handle.readline(MAX_LINE + 1):
        yield line


def _decode(raw: bytes) -> str | BadEvent:
    if len(raw) > MAX_LINE:
        return BadEvent("line", f"longer than {MAX_LINE:,} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return BadEvent("line", "not UTF-8 text")


def _jsonl_rows(lines: Iterator[bytes]) -> Iterator[tuple[int, Mapping[str, Any] | BadEvent]]:
    for number, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:  # the rest of an over-long line would read as more lines
            yield number, BadEvent("line", f"longer than {MAX_LINE:,} bytes")
            return
        text = _decode(raw)
        if isinstance(text, BadEvent):
            yield number, text
            continue
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            row = loads_bounded(text)
        except ValueError as exc:
            yield number, BadEvent("line", f"not JSON: {getattr(exc, 'msg', exc)}")
            continue
        yield number, row if isinstance(row, dict) else BadEvent("line", "not a JSON object")


def _csv_rows(lines: Iterator[bytes], source: str) -> Iterator[tuple[int, Mapping[str, Any] | BadEvent]]:
    text_lines = (_decode(raw) for raw in lines)
    first = next(text_lines, None)
    if first is None:
        return
    if isinstance(first, BadEvent):
        raise InputError(first.message, file=Path(source), line=1)
    try:
        header = next(csv.reader(io.StringIO(first)), [])
    except csv.Error as exc:
        raise InputError(f"not CSV: {exc}", file=Path(source), line=1) from None
    header = [h.strip() for h in header]
    if not any(h in _ALIASES["type"] for h in header):
        raise InputError(
            "the header has no 'type' column (opened, converted or dismissed)", file=Path(source), line=1,
            hint="columns: event_id, type, ts, campaign, token, user_id, variant, provider_id, value",
        )  # fmt: skip
    number = 1
    for text in text_lines:
        number += 1
        if isinstance(text, BadEvent):
            yield number, text
            continue
        if not text.strip():
            continue
        try:
            values = next(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            yield number, BadEvent("line", f"not CSV: {exc}")
            continue
        if len(values) > len(header):
            yield number, BadEvent("line", f"{len(values)} values for {len(header)} columns")
            continue
        yield number, dict(zip(header, values, strict=False))
