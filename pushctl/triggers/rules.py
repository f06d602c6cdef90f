"""The rules file (YAML): which events become which notifications, checked with located errors.

::

    name: shop                       # optional; the file's stem otherwise (keys the journal state)
    event_fields: {id: event_id}     # optional: where the model's fields are in the JSON
    defaults: {quiet_hours: "22:00-08:00", cap: 3/24h, default_timezone: UTC}
    rules:
      cart_abandoned:
        on: cart_updated             # one event type or a list
        where: 'event.data.total >= 20 and locale startswith "en"'
        delay: 30m                   # or send_at: data.starts_at - 1h
        cancel_on: [order_placed]    # same user (and the same cancel_key value, if set)
        cancel_key: data.cart_id
        dedupe_key: data.cart_id     # one notification per value
        throttle: 1/6h               # per user and rule
        digest: {window: 10m, key: data.post_id}
        category: marketing          # for user preferences
        quiet_hours: 22:00-08:00     # per rule; devices inside are sent when it ends
        cap: 3/24h                   # shared with campaigns: deliveries per device in the journal
        template: ../templates/cart.yaml   # or an inline template mapping

Every error is an :class:`~pushctl.errors.InputError` naming the file, the line and the field
(``rules.cart_abandoned.delay``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from yaml.nodes import MappingNode, Node, ScalarNode

from pushctl.audience import Segment, SegmentError
from pushctl.campaign import Cap, QuietHours, bad_zone_reason, parse_duration
from pushctl.errors import InputError, TemplateError, clip
from pushctl.inputs import TEMPLATE_MAX_BYTES, read_bounded
from pushctl.message import Source, Template, load_yaml
from pushctl.triggers.events import EventExpr, FieldMap, SendAt

__all__ = ["Digest", "Rule", "RuleSet"]

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TOP_KEYS = frozenset({"name", "event_fields", "defaults", "rules"})
DEFAULT_KEYS = frozenset({"quiet_hours", "cap", "default_timezone"})
RULE_KEYS = frozenset(
    {
        "on",
        "where",
        "template",
        "category",
        "delay",
        "send_at",
        "cancel_on",
        "cancel_key",
        "throttle",
        "dedupe_key",
        "digest",
        "quiet_hours",
        "cap",
    }
)
DIGEST_KEYS = frozenset({"window", "key", "max_events"})
PathT = tuple[str | int, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Digest:
    """Events of one group within ``window`` (from the first) become one notification."""

    window: timedelta
    key: EventExpr | None = None
    """Groups within a user (``data.post_id``); None: one group per user."""
    max_events: int = 20
    """Events kept for the template's ``events`` (``event_count`` counts them all)."""


@dataclass(slots=True)
class Rule:
    """One rule, parsed and compiled."""

    name: str
    on: tuple[str, ...]
    template: Template
    line: int
    where: Segment | None = None
    where_on_event: bool = False
    """The ``where`` reads only ``event.*`` columns: checked once per event, before any device."""
    category: str | None = None
    delay: timedelta | None = None
    send_at: SendAt | None = None
    cancel_on: tuple[str, ...] = ()
    cancel_key: EventExpr | None = None
    throttle: Cap | None = None
    dedupe_key: EventExpr | None = None
    digest: Digest | None = None
    quiet_hours: QuietHours | None = None
    cap: Cap | None = None

    @property
    def timing(self) -> str:
        """``now``, ``delay 30m``, ``send_at data.starts_at - 1h`` or ``digest 10m``, for listings."""
        if self.delay is not None:
            return f"delay {_human(self.delay)}"
        if self.send_at is not None:
            return f"send_at {self.send_at.expr.source}{_offset(self.send_at.offset)}"
        if self.digest is not None:
            return f"digest {_human(self.digest.window)}"
        return "now"


def _human(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _offset(value: timedelta) -> str:
    if not value:
        return ""
    return f" - {_human(-value)}" if value < timedelta(0) else f" + {_human(value)}"


@dataclass(slots=True)
class RuleSet:
    """A loaded rules file. Build with :meth:`load`."""

    name: str
    path: Path
    fields: FieldMap
    rules: dict[str, Rule]
    fingerprint: str
    default_zone: ZoneInfo | None = None
    by_type: dict[str, list[Rule]] = field(default_factory=dict)
    """Event type -> the rules it fires."""
    cancels: dict[str, list[Rule]] = field(default_factory=dict)
    """Event type -> the rules whose pending sends it cancels."""

    def __post_init__(self) -> None:
        for rule in self.rules.values():
            for kind in rule.on:
                self.by_type.setdefault(kind, []).append(rule)
            for kind in rule.cancel_on:
                self.cancels.setdefault(kind, []).append(rule)

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        """Read and check a rules file and every template it names; InputError with file:line."""
        path = Path(path)
        raw = read_bounded(path, what="rules file", limit=TEMPLATE_MAX_BYTES)
        return _Parser(path, raw).parse()


class _Parser:
    def __init__(self, path: Path, raw: bytes) -> None:
        data, root = load_yaml(path, raw)
        if root is None or data is None:
            raise InputError("the rules file is empty", file=path, hint="add a 'rules:' mapping")
        if not isinstance(data, dict):
            raise InputError("a rules file must be a mapping with a 'rules:' key", file=path, line=1)
        self.path = path
        self.raw = raw
        self.src = Source(path, data, root)

    def error(self, message: str, path: PathT, *, hint: str | None = None, key: bool = False) -> InputError:
        return self.src.error(message, path, hint=hint, key=key)

    def mapping(self, value: Any, path: PathT, allowed: frozenset[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(f"must be a mapping, got {type(value).__name__}", path)
        for key in value:
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {clip(key, quote=True)}",
                    (*path, str(key)), key=True)
            if allowed is not None and key not in allowed:
                hint = f"allowed: {', '.join(sorted(allowed))}"
                raise self.error(f"unknown key '{clip(key)}'", (*path, key), key=True, hint=hint)
        return value

    def string(self, value: Any, path: PathT) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value).strip() == "":
            raise self.error(f"must be a non-empty string, got {clip(value, quote=True)}",
                path, hint="quote the value")
        return str(value).strip()

    def convert(self, value: Any, path: PathT, fn: Callable[[str], T]) -> T:
        """Run a parser from another room (durations, caps...) and locate its error here."""
        text = self.string(value, path)
        try:
            return fn(text)
        except InputError as exc:
            raise self.error(exc.message, path, hint=exc.hint) from None
        except ValueError as exc:
            raise self.error(str(exc), path) from None

    def names(self, value: Any, path: PathT) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.error("needs at least one event type", path)
        return tuple(
            self.string(item, (*path, i) if isinstance(value, list) else path) for i, item in enumerate(items)
        )

    def expr(self, value: Any, path: PathT) -> EventExpr:
        text = self.string(value, path)
        try:
            return EventExpr(text)
        except ValueError as exc:
            raise self.error(str(exc), path) from None
        except jinja2.TemplateSyntaxError as exc:
            raise self.error(f"template syntax: {exc.message}", path) from None

    # -- the file ------------------------------------------------------------------

    def parse(self) -> RuleSet:
        data = self.mapping(self.src.data, (), TOP_KEYS)
        name = self.path.stem
        if "name" in data:
            name = self.string(data["name"], ("name",))
        if not NAME_RE.fullmatch(name):
            where: PathT = ("name",) if "name" in data else ()
            raise self.error(f"invalid rule set name {clip(name, quote=True)}",
                where, hint="1-64 letters, digits, . _ -")
        fields = self.event_fields(data.get("event_fields"))
        defaults = self.mapping(data.get("defaults") or {}, ("defaults",), DEFAULT_KEYS)
        zone = None
        if "default_timezone" in defaults:
            zone_name = self.string(defaults["default_timezone"], ("defaults", "default_timezone"))
            if problem := bad_zone_reason(zone_name):
                raise self.error(problem, ("defaults", "default_timezone"))
            zone = ZoneInfo(zone_name)
        if "rules" not in data:
            raise self.error("no 'rules:' mapping", (), hint="add rules: {name: {on: ..., template: ...}}")
        rules_block = self.mapping(data["rules"], ("rules",))
        if not rules_block:
            raise self.error("needs at least one rule", ("rules",))
        rules = {rule_name: self.rule(rule_name, block, defaults) for rule_name, block in rules_block.items()}
        return RuleSet(
            name=name,
            path=self.path,
            fields=fields,
            rules=rules,
            fingerprint=hashlib.sha256(self.raw).hexdigest(),
            default_zone=zone,
        )

    def event_fields(self, value: Any) -> FieldMap:
        if value is None:
            return FieldMap()
        block = self.mapping(value, ("event_fields",), frozenset(FieldMap.NAMES))
        mapped = {key: self.string(item, ("event_fields", key)) for key, item in block.items()}
        return FieldMap(**mapped)

    def rule(self, name: str, value: Any, defaults: dict[str, Any]) -> Rule:
        path: PathT = ("rules", name)
        if not NAME_RE.fullmatch(name):
            raise self.error(
                f"invalid rule name {clip(name, quote=True)}",
                    path, key=True, hint="1-64 letters, digits, . _ -"
            )
        if (
            isinstance(value, dict)
            and True in value
            and _key_text(_node_at(self.src.root, path), True) == "on"
        ):
            value["on"] = value.pop(True)  # YAML 1.1 reads a bare `on:` key as the boolean true
        block = self.mapping(value, path, RULE_KEYS)
        for required in ("on", "template"):
            if required not in block:
                raise self.error(f"rule '{name}' needs '{required}'", path, key=True)
        rule = Rule(
            name=name,
            on=self.names(block["on"], (*path, "on")),
            template=self.template(block["template"], (*path, "template")),
            line=self.src.line(path, key=True) or 0,
        )
        if "where" in block:
            rule.where, rule.where_on_event = self.where(block["where"], (*path, "where"))
        if "category" in block:
            rule.category = self.string(block["category"], (*path, "category"))
        self.timing(rule, block, path)
        if "throttle" in block:
            rule.throttle = self.convert(block["throttle"], (*path, "throttle"), Cap.parse)
        if "dedupe_key" in block:
            rule.dedupe_key = self.expr(block["dedupe_key"], (*path, "dedupe_key"))
        # A rule's own quiet_hours / cap win over the file's defaults.
        for where, base in ((block, path), (defaults, ("defaults",))):
            if "quiet_hours" in where and rule.quiet_hours is None:
                quiet = where["quiet_hours"]
                rule.quiet_hours = self.convert(quiet, (*base, "quiet_hours"), QuietHours.parse)
            if "cap" in where and rule.cap is None:
                rule.cap = self.convert(where["cap"], (*base, "cap"), Cap.parse)
        return rule

    def timing(self, rule: Rule, block: dict[str, Any], path: PathT) -> None:
        chosen = [key for key in ("delay", "send_at", "digest") if key in block]
        if len(chosen) > 1:
            raise self.error(
                f"'{chosen[0]}' and '{chosen[1]}' cannot be combined",
                (*path, chosen[1]),
                key=True,
                hint="a rule sends after a delay, at a time from the event, or as a digest",
            )
        if "delay" in block:
            rule.delay = self.convert(block["delay"], (*path, "delay"), parse_duration)
        if "send_at" in block:
            rule.send_at = self.convert(
                block["send_at"], (*path, "send_at"), lambda t: SendAt.parse(t, parse_duration)
            )
        if "digest" in block:
            rule.digest = self.digest(block["digest"], (*path, "digest"))
        if "cancel_on" in block:
            if rule.delay is None and rule.send_at is None:
                raise self.error(
                    "cancel_on needs a delay or send_at (only a send that waits can be cancelled)",
                    (*path, "cancel_on"),
                    key=True,
                )
            rule.cancel_on = self.names(block["cancel_on"], (*path, "cancel_on"))
        if "cancel_key" in block:
            if not rule.cancel_on:
                raise self.error("cancel_key needs cancel_on", (*path, "cancel_key"), key=True)
            rule.cancel_key = self.expr(block["cancel_key"], (*path, "cancel_key"))

    def digest(self, value: Any, path: PathT) -> Digest:
        block = self.mapping(value, path, DIGEST_KEYS)
        if "window" not in block:
            raise self.error("a digest needs a window (e.g. 10m)", path)
        window = self.convert(block["window"], (*path, "window"), parse_duration)
        key = None
        if "key" in block and str(block["key"]).strip() not in ("user_id", "event.user_id"):
            key = self.expr(block["key"], (*path, "key"))
        max_events = block.get("max_events", 20)
        if isinstance(max_events, bool) or not isinstance(max_events, int) or not 1 <= max_events <= 100:
            raise self.error(
                f"must be a whole number from 1 to 100, got {clip(max_events, quote=True)}",
                    (*path, "max_events")
            )
        return Digest(window, key, max_events)

    def where(self, value: Any, path: PathT) -> tuple[Segment, bool]:
        text = self.string(value, path)
        try:
            segment = Segment.parse(text)
        except SegmentError as exc:
            raise self.error(f"{exc.message} in {clip(text, quote=True)}", path, hint=exc.hint) from None
        return segment, all(column.startswith("event.") for column in segment.columns)

    def template(self, value: Any, path: PathT) -> Template:
        if isinstance(value, dict):
            node = _node_at(self.src.root, path)
            source = Source(self.path, value, node, prefix=path)
            canonical = json.dumps(value, sort_keys=True, default=str).encode()
            return Template(self.path, canonical, source=source)
        reference = self.string(value, path)
        file = (self.path.parent / reference) if not Path(reference).is_absolute() else Path(reference)
        if not file.is_file():
            raise self.error(
                f"template file not found: {reference}",
                path,
                hint=f"paths are relative to the rules file's folder ({self.path.parent})",
            )
        try:
            return Template.load(file)
        except TemplateError:
            raise  # it names the template file and line
        except InputError as exc:
            raise self.error(exc.message, path) from None


def _node_at(root: Node, path: PathT) -> Node:
    node = root
    for part in path:
        if not isinstance(node, MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                node = value
                break
    return node


def _key_text(node: Node, value: object) -> str:
    """How the key that loaded as ``value`` was written (``on`` for True), lower-cased."""
    if isinstance(node, MappingNode):
        for key, _item in node.value:
            if isinstance(key, ScalarNode) and key.value.lower() in ("on", "yes", "y", "true"):
                return str(key.value).lower() if value is True else ""
    return ""
