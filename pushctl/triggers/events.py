"""The event model: what a source delivers, mapped onto ``{id, type, ts, user_id | token, data}``.

An event names a user (looked up in the device directory) or carries a device ``token`` itself.
The JSON keys are mapped by the rules file's ``event_fields:`` (dotted paths into the object), so
a stream that says ``{"event_id", "name", "timestamp", "uid", "properties"}`` needs no rewriting.

``ts`` is ISO 8601 with a UTC offset (``2026-11-20T09:00:00Z``) or UNIX seconds (or milliseconds,
recognised by size); without one, the time the event was read. A malformed event is never an
exception here: :func:`parse_event` returns the reason as a string, for the dead letters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pushctl.inputs import loads_bounded
from pushctl.message import SANDBOX

__all__ = ["Event", "EventExpr", "FieldMap", "SendAt", "iso", "parse_event", "parse_line", "parse_time"]

MAX_ID = 200
"""Event ids longer than this are refused (they become journal keys)."""
_MS_THRESHOLD = 1e11  # a UNIX time above this is in milliseconds (1e11 s is the year 5138)


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Where each field of the event model is found in a source's JSON object (dotted paths)."""

    id: str = "id"
    type: str = "type"
    ts: str = "ts"
    user_id: str = "user_id"
    token: str = "token"
    platform: str = "platform"
    data: str = "data"

    NAMES = ("id", "type", "ts", "user_id", "token", "platform", "data")


def _lookup(obj: Mapping[str, Any], path: str) -> Any:
    if path in obj:  # a flat key that contains dots is found as written first
        return obj[path]
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def iso(ts: float) -> str:
    """UNIX seconds as ISO 8601 UTC (``2026-11-20T09:00:00Z``), as templates see event times."""
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(value: Any) -> float | None:
    """UNIX seconds from an ISO 8601 string with an offset, or a number of seconds / milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            if parsed.tzinfo is None or parsed.utcoffset() is None:
                return None
            return parsed.timestamp()
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number / 1000.0 if number > _MS_THRESHOLD else number


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(slots=True)
class Event:
    """One event, in pushctl's model."""

    id: str
    type: str
    ts: float
    """UNIX seconds (the event's own time, else when it was read)."""
    user_id: str = ""
    token: str = ""
    platform: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    _context: dict[str, Any] | None = None
    _flat: dict[str, str] | None = None

    def context(self) -> dict[str, Any]:
        """The event as templates and expressions see it: ``event.data.cart_id``, ``event.ts``..."""
        if self._context is None:
            self._context = {
                "id": self.id,
                "type": self.type,
                "ts": iso(self.ts),
                "user_id": self.user_id,
                "token": self.token,
                "platform": self.platform,
                "data": self.data,
            }
        return self._context

    def flat(self) -> dict[str, str]:
        """The event's fields as ``--where`` columns: ``event.type``, ``event.data.total``..."""
        if self._flat is None:
            flat: dict[str, str] = {}
            for key, value in self.context().items():
                if key != "data" and value != "":
                    flat[f"event.{key}"] = _text(value)
            _flatten(self.data, "event.data", flat, 0)
            self._flat = flat
        return self._flat

    @classmethod
    def from_context(cls, ctx: Mapping[str, Any]) -> Event:
        """Rebuild an event from :meth:`context` (as the journal stores it)."""
        ts = parse_time(ctx.get("ts"))
        return cls(
            id=str(ctx.get("id", "")),
            type=str(ctx.get("type", "")),
            ts=ts if ts is not None else 0.0,
            user_id=str(ctx.get("user_id", "")),
            token=str(ctx.get("token", "")),
            platform=str(ctx.get("platform", "")),
            data=dict(ctx.get("data") or {}),
        )


def _flatten(value: Any, prefix: str, out: dict[str, str], depth: int) -> None:
    if isinstance(value, Mapping):
        if depth >= 8:
            return
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}", out, depth + 1)
    elif isinstance(value, list):
        out[f"{prefix}.count"] = str(len(value))
    elif value is not None and (text := _text(value)):
        out[prefix] = text


def parse_event(obj: Any, fields: FieldMap, *, now: float) -> Event | str:
    """The event in ``obj`` (a decoded JSON value), or why it is malformed (a one-line reason)."""
    if not isinstance(obj, dict):
        return f"not a JSON object (got {type(obj).__name__})"
    raw_id = _lookup(obj, fields.id)
    if raw_id is None or isinstance(raw_id, bool | dict | list) or _text(raw_id) == "":
        return f"missing '{fields.id}' (the event id)"
    event_id = _text(raw_id)
    if len(event_id) > MAX_ID:
        return f"'{fields.id}' is longer than {MAX_ID} characters"
    kind = _lookup(obj, fields.type)
    if not isinstance(kind, str) or not kind.strip():
        return f"missing '{fields.type}' (the event type)"
    raw_ts = _lookup(obj, fields.ts)
    if raw_ts is None:
        ts = now
    else:
        parsed = parse_time(raw_ts)
        if parsed is None:
            example = str(raw_ts)[:40]
            return f"'{fields.ts}' is not a time: {example!r} (ISO 8601 with an offset, or UNIX seconds)"
        ts = parsed
    user = _lookup(obj, fields.user_id)
    token = _lookup(obj, fields.token)
    user_id = _text(user) if isinstance(user, str | int) and not isinstance(user, bool) else ""
    token_text = token.strip() if isinstance(token, str) else ""
    if not user_id and not token_text:
        return f"neither '{fields.user_id}' nor '{fields.token}': whom is it for?"
    data = _lookup(obj, fields.data)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return f"'{fields.data}' must be a JSON object, got {type(data).__name__}"
    platform = _lookup(obj, fields.platform)
    return Event(
        id=event_id,
        type=kind.strip(),
        ts=ts,
        user_id=user_id,
        token=token_text,
        platform=platform.strip().lower() if isinstance(platform, str) else "",
        data=data,
    )


def parse_line(line: str | bytes, fields: FieldMap, *, now: float) -> Event | str:
    """Decode one JSON Lines line and parse its event (or give the reason it is malformed)."""
    try:
        obj = loads_bounded(line)
    except ValueError as exc:  # JsonTooDeep included
        return f"invalid JSON: {getattr(exc, 'msg', exc)}"
    return parse_event(obj, fields, now=now)


_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class EventExpr:
    """A value taken from an event: a dotted path (``data.cart_id``, ``event.user_id``) or a
    template string (``"{{ event.data.shop }}:{{ event.data.cart_id }}"``)."""

    __slots__ = ("_path", "_template", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        text = source.strip()
        self._template = None
        self._path: tuple[str, ...] = ()
        if "{{" in text or "{%" in text:
            self._template = SANDBOX.from_string(text)  # TemplateSyntaxError: the caller locates it
        elif _PATH.fullmatch(text):
            parts = text.split(".")
            self._path = tuple(parts[1:] if parts[0] == "event" and len(parts) > 1 else parts)
        else:
            raise ValueError(f"not a field path or a template: {source!r} (e.g. data.cart_id)")

    def value(self, event: Event) -> Any:
        """The value in ``event`` (None when a path leads nowhere)."""
        if self._template is not None:
            try:
                return self._template.render(event=event.context())
            except Exception:  # an expression that fails on this event: no value, reported by caller
                return None
        value: Any = event.context()
        for part in self._path:
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def text(self, event: Event) -> str:
        """The value as text (``""`` when missing)."""
        return _text(self.value(event))


_SEND_AT = re.compile(r"\s*(?P<path>[^\s+-][^\s]*?)\s*(?:(?P<sign>[+-])\s*(?P<offset>\S+))?\s*")


@dataclass(frozen=True, slots=True)
class SendAt:
    """``send_at: data.starts_at - 1h``: a time taken from the event, plus an offset."""

    expr: EventExpr
    offset: timedelta

    @classmethod
    def parse(cls, text: str, parse_offset: Any) -> SendAt:
        """``PATH [+|- DURATION]``; ``parse_offset`` turns ``1h`` into a timedelta."""
        m = _SEND_AT.fullmatch(text)
        if m is None:
            raise ValueError(f"not PATH [+|- DURATION]: {text!r} (e.g. data.starts_at - 1h)")
        offset = timedelta(0)
        if m.group("offset"):
            offset = parse_offset(m.group("offset"))
            if m.group("sign") == "-":
                offset = -offset
        return cls(EventExpr(m.group("path")), offset)

    def due(self, event: Event) -> float | None:
        """UNIX seconds the send is due, or None when the event lacks a usable time."""
        at = parse_time(self.expr.value(event))
        return None if at is None else at + self.offset.total_seconds()
