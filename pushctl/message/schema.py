"""Template YAML: safe parsing with line numbers, and the schema checks.

Nothing here renders anything; :mod:`pushctl.message.template` compiles and renders what
:func:`parse` and :func:`validate` accepted. Every error is a :class:`TemplateError`
naming the template file, the line and the field (``locales.fr.title``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pushctl.errors import TemplateError, clip
from pushctl.inputs import load_yaml as bounded_yaml
from pushctl.message.blocks import check_hms, check_webpush
from pushctl.message.source import (
    Check,
    PathT,
    Source,
    _boolean,
    _data,
    _known_keys,
    _mapping,
    _one_of,
    _string,
    _unit_number,
)

PUSH_TYPES = (
    "alert", "background", "location", "voip", "complication",
    "fileprovider", "mdm", "liveactivity", "pushtotalk", "widgets",
)  # fmt: skip
INTERRUPTION_LEVELS = ("passive", "active", "time-sensitive", "critical")
MEDIA_TYPES = ("image", "audio", "video")
PRIORITIES = ("high", "normal")
MAX_TTL = 30 * 86400  # APNs stores a notification for at most 30 days
MAX_COLLAPSE_ID_BYTES = 64

# Keys that locales and variants may override (the per-device content of a notification).
OVERRIDE_KEYS = frozenset(
    {"title", "subtitle", "body", "media", "sound", "badge", "data", "category",
     "thread_id", "collapse_id", "relevance_score", "apns", "fcm", "webpush", "hms"}
)  # fmt: skip
TOP_KEYS = OVERRIDE_KEYS | {
    "priority", "ttl", "push_type", "content_available", "interruption_level",
    "quiet_hours", "defaults", "locales", "variants",
}  # fmt: skip
VARIANT_KEYS = OVERRIDE_KEYS | {"weight", "locales"}
ALERT_KEYS = ("title", "subtitle", "body")

_TTL_RE = re.compile(r"^\s*(\d{1,12})\s*([smhd]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse(path: Path, raw: bytes) -> Source:
    """Parse template bytes with safe-load semantics; errors carry file:line."""
    data, root = load_yaml(path, raw)
    if root is None or data is None:
        raise TemplateError("template is empty", file=path, hint="add at least a title or body")
    if not isinstance(data, dict):
        raise TemplateError("a template must be a mapping of keys (title: ..., body: ...)", file=path, line=1)
    return Source(path, data, root)


def load_yaml(path: Path, raw: bytes) -> tuple[Any, Node | None]:
    """Safe-load one YAML document within the bounds of :mod:`pushctl.inputs` (nesting, alias
    expansion, control characters...) and keep its node tree (for line numbers); duplicate keys
    are refused. Errors are :class:`TemplateError` values carrying file:line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"not UTF-8 text (byte {exc.start})", file=path,
                            line=raw.count(b"\n", 0, exc.start) + 1) from None
    data, root = bounded_yaml(text, file=path, error=TemplateError)
    if root is not None:
        _check_duplicates(path, root)
    return data, root


def _check_duplicates(path: Path, root: Node) -> None:
    # safe_load keeps the last of two equal keys silently; a typo'd copy would go unnoticed.
    # Each distinct node once: an aliased node is the same object wherever it is used.
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    if k.value in keys:
                        raise TemplateError(
                            f"duplicate key '{clip(k.value)}'", file=path, line=k.start_mark.line + 1
                        )
                    keys.add(k.value)
                stack.append(v)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def parse_ttl(src: Source, value: Any, path: PathT) -> int:
    """Seconds from an int or ``90``/``30m``/``2h``/``1d``."""
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _TTL_RE.match(value)):
        seconds = int(m.group(1)) * _TTL_UNITS[m.group(2)]
    if seconds is None or seconds < 0:
        raise src.error(f"ttl must be seconds or like 30m, 2h, 1d; got {clip(value, quote=True)}", path)
    if seconds > MAX_TTL:
        raise src.error(f"ttl of {seconds} s is over the 30-day maximum", path)
    return seconds


# -- field checks --------------------------------------------------------------

def _media(src: Source, value: Any, path: PathT) -> None:
    media = _mapping(src, value, path)
    _known_keys(src, media, path, frozenset({"url", "type"}))
    if "url" not in media:
        raise src.error("media needs a url", path)
    _string(src, media["url"], (*path, "url"))
    if "type" in media:
        _one_of(MEDIA_TYPES)(src, media["type"], (*path, "type"))


def _sound(src: Source, value: Any, path: PathT) -> None:
    if isinstance(value, str):
        return
    sound = _mapping(src, value, path)
    _known_keys(src, sound, path, frozenset({"name", "critical", "volume"}))
    if "name" not in sound:
        raise src.error("sound needs a name", path)
    _string(src, sound["name"], (*path, "name"))
    if "critical" in sound:
        _boolean(src, sound["critical"], (*path, "critical"))
    if "volume" in sound:
        _unit_number(src, sound["volume"], (*path, "volume"))


def _badge(src: Source, value: Any, path: PathT) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise src.error(f"must be a whole number >= 0 (or a template), got {clip(value, quote=True)}", path)


def _collapse_id(src: Source, value: Any, path: PathT) -> None:
    _string(src, value, path)
    if "{" not in value and len(value.encode()) > MAX_COLLAPSE_ID_BYTES:
        raise src.error(f"is {len(value.encode())} bytes; APNs allows at most {MAX_COLLAPSE_ID_BYTES}", path)


def _ttl(src: Source, value: Any, path: PathT) -> None:
    parse_ttl(src, value, path)


def _defaults(src: Source, value: Any, path: PathT) -> None:
    for key, item in _mapping(src, value, path).items():
        if item is None or isinstance(item, dict | list):
            raise src.error("default values must be plain values", (*path, key))


def _apns(src: Source, value: Any, path: PathT) -> None:
    block = _mapping(src, value, path)
    _known_keys(src, block, path, frozenset({"headers", "payload"}))
    if "headers" in block:
        for name, item in _mapping(src, block["headers"], (*path, "headers")).items():
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise src.error("header values must be strings or numbers", (*path, "headers", name))
    if "payload" in block:
        _mapping(src, block["payload"], (*path, "payload"))


def _fcm(src: Source, value: Any, path: PathT) -> None:
    block = _mapping(src, value, path)
    for target in ("token", "topic", "condition"):
        if target in block:
            raise src.error(
                f"'{target}' cannot be set here: pushctl sets the target per device",
                (*path, target),
                key=True,
            )
    if "data" in block:
        _data(src, block["data"], (*path, "data"))


def _quiet_hours(src: Source, value: Any, path: PathT) -> None:
    if value != "ignore":
        raise src.error(f"the only allowed value is 'ignore', got {clip(value, quote=True)}", path)


def _locales(src: Source, value: Any, path: PathT) -> None:
    for name, block in _mapping(src, value, path).items():
        _block(src, _mapping(src, block, (*path, name)), (*path, name), OVERRIDE_KEYS)


def _variants(src: Source, value: Any, path: PathT) -> None:
    variants = _mapping(src, value, path)
    if not variants:
        raise src.error("needs at least one variant", path)
    total = 0
    for name, block in variants.items():
        vpath = (*path, name)
        block = _mapping(src, block, vpath)
        _block(src, block, vpath, VARIANT_KEYS)
        weight = block.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise src.error(f"weight must be a whole number >= 0, got {clip(weight, quote=True)}",
                            (*vpath, "weight"))
        total += weight
    if total == 0:
        raise src.error("variant weights add up to 0", path)


CHECKS: dict[str, Check] = {
    "title": _string, "subtitle": _string, "body": _string, "category": _string, "thread_id": _string,
    "collapse_id": _collapse_id, "media": _media, "sound": _sound, "badge": _badge, "data": _data,
    "relevance_score": _unit_number, "apns": _apns, "fcm": _fcm, "priority": _one_of(PRIORITIES),
    "webpush": check_webpush, "hms": check_hms,
    "ttl": _ttl, "push_type": _one_of(PUSH_TYPES), "content_available": _boolean,
    "interruption_level": _one_of(INTERRUPTION_LEVELS), "quiet_hours": _quiet_hours,
    "defaults": _defaults, "locales": _locales, "variants": _variants,
    "weight": lambda src, value, path: None,  # checked with the other variants
}  # fmt: skip


def _block(src: Source, block: dict[str, Any], path: PathT, allowed: frozenset[str]) -> None:
    _known_keys(src, block, path, allowed)
    for key, value in block.items():
        CHECKS[key](src, value, (*path, key))


def validate(src: Source) -> None:
    """Check every key and value of a parsed template, and the rules between keys."""
    data = src.data
    _known_keys(src, data, (), TOP_KEYS)
    _block(src, data, (), TOP_KEYS)
    if "quiet_hours" in data and data.get("interruption_level") not in ("time-sensitive", "critical"):
        raise src.error(
            "quiet_hours: ignore needs interruption_level time-sensitive or critical",
            ("quiet_hours",),
            hint="set interruption_level: time-sensitive, or remove quiet_hours",
        )
    if data.get("push_type") == "background":
        for key in ALERT_KEYS:
            if key in data:
                raise src.error(
                    "a background push cannot show an alert",
                    (key,),
                    key=True,
                    hint="remove it, or use push_type: alert",
                )
