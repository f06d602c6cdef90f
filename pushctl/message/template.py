"""YAML notification templates: load once, render per device.

A template is parsed and checked once (:mod:`pushctl.message.schema`), then every
string field containing ``{{``/``{%``/``{#`` is compiled once with a sandboxed Jinja2
environment. Fields without template syntax are never rendered: they are the hot path
when a campaign renders a million devices. The merged field set for each
(locale, variant) pair is built on first use and cached.

The reference for template authors is ``samples/templates/README.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

import pushctl.message.schema as schema
import pushctl.message.source as source
from pushctl.errors import TemplateError, clip
from pushctl.inputs import TEMPLATE_MAX_BYTES, read_bounded
from pushctl.message.sandbox import BoundedSandbox, RenderLimit, render_bounded
from pushctl.model import Device

__all__ = ["Media", "Notification", "Template", "deep_merge"]

_ENV = BoundedSandbox(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    # Constant fields keep YAML's trailing newline; rendered ones must behave the same.
    keep_trailing_newline=True,
)
SANDBOX = _ENV
"""The sandboxed Jinja2 environment every template and rule expression compiles in."""
_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")
# Overrides deep-merge these, replace the rest.
_MERGED_KEYS = frozenset({"data", "apns", "fcm", "webpush", "hms"})


@dataclass(frozen=True, slots=True)
class Media:
    """Rich media attached to a notification."""

    url: str
    type: str


@dataclass(slots=True)
class Notification:
    """A notification rendered for one device, before it becomes an APNs or FCM payload.

    ``apns``, ``fcm``, ``webpush`` and ``hms`` may be shared between notifications: treat them as
    read-only.
    """

    title: str | None
    subtitle: str | None
    body: str | None
    media: Media | None
    sound: str | dict[str, Any] | None
    badge: int | None
    data: dict[str, str]
    category: str | None
    thread_id: str | None
    collapse_id: str | None
    priority: str | None
    ttl: int | None
    push_type: str
    content_available: bool
    interruption_level: str | None
    relevance_score: float | None
    locale: str | None
    variant: str | None
    apns: dict[str, Any]
    fcm: dict[str, Any]
    webpush: dict[str, Any] = field(default_factory=dict)
    hms: dict[str, Any] = field(default_factory=dict)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` merged into ``base`` (mappings recursively, anything else replaced).

    Neither argument is modified; nested dicts coming from ``base`` are copied before changes.
    """
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


# A string whose only template syntax is ``{{ name }}`` substitutions, by far the most common
# personalisation ("Hi {{ name }}"). Jinja spends ~15 µs a render building a context; these are
# rendered by joining the parts instead, with exactly Jinja's result (str() of the value).
_SIMPLE_VAR = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*) *\}\}")
_DICT_ATTRS = frozenset(dir(dict))
"""``{{ d.items }}`` is the dict's method in Jinja (attributes first), so such keys leave the fast path."""
_JINJA_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})


def _simple_parts(source: str) -> tuple[str, ...] | None:
    """``source`` split into literal text (even indexes) and variable names (odd indexes, maybe
    dotted: ``event.data.id``), or None when it uses anything else (filters, calls, blocks...)."""
    parts = tuple(_SIMPLE_VAR.split(source))
    literals, names = parts[0::2], parts[1::2]
    if any(_is_template(text) or "\r" in text or "}}" in text for text in literals):
        return None  # other syntax; Jinja also normalises \r\n in literal text
    if any(name.split(".", 1)[0] in _JINJA_CONSTANTS for name in names):
        return None
    return parts


def _lookup(ctx: dict[str, Any], name: str) -> Any:
    """``ctx[name]``, or a walk through nested dicts for ``a.b.c``; KeyError whenever Jinja might
    answer differently (not a dict, a missing key, a key that is also a dict attribute)."""
    if "." not in name:
        return ctx[name]
    first, *rest = name.split(".")
    value = ctx[first]
    for part in rest:
        if type(value) is not dict or part in _DICT_ATTRS:
            raise KeyError(part)
        value = value[part]
    return value


class _Expr:
    """One compiled template string, with where it came from for error messages."""

    __slots__ = ("field", "line", "parts", "source", "template")

    def __init__(self, template: jinja2.Template, source: str, field: str, line: int | None) -> None:
        self.template = template
        self.source = source
        self.field = field
        self.line = line
        self.parts = _simple_parts(source)

    def render(self, ctx: dict[str, Any], path: Path, device: Device) -> str:
        parts = self.parts
        if parts is not None:
            try:
                return "".join([p if i % 2 == 0 else str(_lookup(ctx, p)) for i, p in enumerate(parts)])
            except KeyError:
                pass  # Jinja gives the undefined-variable error (or resolves one of its globals)
        try:
            return render_bounded(self.template, ctx)
        except jinja2.UndefinedError as exc:
            m = _UNDEFINED_RE.match(str(exc))
            if m:
                name = m.group(1)
                raise TemplateError(
                    f"variable '{name}' is not defined for the device at {device.where}",
                    file=path, line=self.line, field=self.field,
                    hint=f"add a '{name}' column, or defaults: {{{name}: ...}}",
                ) from None  # fmt: skip
            message = f"{clip(str(exc), 200)} for the device at {device.where}"
        except RenderLimit as exc:
            message = f"render limit for the device at {device.where}: {exc}"
        except SecurityError as exc:
            message = f"not allowed in a template: {clip(str(exc), 200)}"
        except Exception as exc:  # a filter or expression failed on this device's values
            problem = f"{type(exc).__name__}: {clip(str(exc), 200)}"
            message = f"cannot render for the device at {device.where}: {problem}"
        raise TemplateError(message, file=path, line=self.line, field=self.field) from None


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _compile(src: source.Source, value: Any, path: source.PathT) -> Any:
    """``value`` with every template string replaced by an :class:`_Expr`."""
    if isinstance(value, str):
        if not _is_template(value):
            return value
        try:
            compiled = _ENV.from_string(value)
        except jinja2.TemplateSyntaxError as exc:
            raise src.error(f"template syntax: {clip(exc.message or '', 200)}", path) from None
        except (RecursionError, SyntaxError, MemoryError):
            # Jinja's parser and Python's compiler recurse per nesting level.
            raise src.error("template syntax: expressions nested too deeply", path) from None
        return _Expr(compiled, value, src.field(path), src.line(path))
    if isinstance(value, dict):
        return {k: _compile(src, v, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(src, v, (*path, i)) for i, v in enumerate(value)]
    return value


def _has_expr(value: Any) -> bool:
    if isinstance(value, _Expr):
        return True
    if isinstance(value, dict):
        return any(_has_expr(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expr(v) for v in value)
    return False


def _evaluate(value: Any, ctx: dict[str, Any], path: Path, device: Device) -> Any:
    if isinstance(value, _Expr):
        return value.render(ctx, path, device)
    if isinstance(value, dict):
        return {k: _evaluate(v, ctx, path, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluate(v, ctx, path, device) for v in value]
    return value


def _overlay(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key in _MERGED_KEYS and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _locale_key(locale: str) -> str:
    return locale.strip().replace("_", "-").lower()


@dataclass(slots=True)
class _Variant:
    weight: int
    fields: dict[str, Any]
    locales: dict[str, dict[str, Any]]


class Template:
    """A loaded, checked and compiled notification template. Build with :meth:`load`."""

    def __init__(self, path: Path, raw: bytes, *, source: source.Source | None = None) -> None:
        """Check and compile ``raw`` (the template file's bytes); with ``source``, a template
        already parsed out of another YAML file (``raw`` is then only fingerprinted)."""
        src = source if source is not None else schema.parse(path, raw)
        schema.validate(src)
        data = src.data
        self.path = path
        self.fingerprint = hashlib.sha256(raw).hexdigest()
        self.interruption_level: str | None = data.get("interruption_level")
        self.ignores_quiet_hours = data.get("quiet_hours") == "ignore"
        self.priority: str | None = data.get("priority")
        self.ttl = schema.parse_ttl(src, data["ttl"], ("ttl",)) if "ttl" in data else None
        self.content_available = bool(data.get("content_available", False))
        category = data.get("category")
        # The user-preference category (marketing, orders, security...): the top-level `category`
        # (also the APNs aps.category), when it is a plain name rather than a per-device template.
        plain = category.strip().lower() if isinstance(category, str) and not _is_template(category) else ""
        self.preference_category: str | None = plain or None
        self.defaults = {k: _plain(v) for k, v in data.get("defaults", {}).items()}
        self._base = self._fields(src, data, ())
        self._locales = {
            name: self._fields(src, block, ("locales", name))
            for name, block in data.get("locales", {}).items()
        }
        self._variants: dict[str, _Variant] = {}
        for name, block in data.get("variants", {}).items():
            self._variants[name] = _Variant(
                weight=block.get("weight", 1),
                fields=self._fields(src, block, ("variants", name)),
                locales={
                    loc: self._fields(src, lblock, ("variants", name, "locales", loc))
                    for loc, lblock in block.get("locales", {}).items()
                },
            )
        self.variants: dict[str, int] = {name: v.weight for name, v in self._variants.items()}
        self._cumulative: list[tuple[int, str]] = []
        total = 0
        for name, weight in self.variants.items():
            if weight:
                total += weight
                self._cumulative.append((total, name))
        self._total_weight = total
        self.push_type: str = data.get("push_type") or self._default_push_type()
        names = [*self._locales, *(loc for v in self._variants.values() for loc in v.locales)]
        self._locale_index = {_locale_key(name): name for name in names}
        self._locale_cache: dict[str | None, str | None] = {}
        self._specs: dict[tuple[str | None, str | None], tuple[dict[str, Any], bool]] = {}

    @classmethod
    def load(cls, path: str | Path) -> Template:
        """Read, check and compile a template file; raises :class:`TemplateError` with file:line."""
        path = Path(path)
        raw = read_bounded(path, what="template file", limit=TEMPLATE_MAX_BYTES, error=TemplateError)
        return cls(path, raw)

    @staticmethod
    def _fields(src: source.Source, block: dict[str, Any], path: source.PathT) -> dict[str, Any]:
        return {k: _compile(src, v, (*path, k)) for k, v in block.items() if k in schema.OVERRIDE_KEYS}

    def _default_push_type(self) -> str:
        blocks = [self._base, *self._locales.values()]
        for variant in self._variants.values():
            blocks += [variant.fields, *variant.locales.values()]
        has_alert = any(key in block for block in blocks for key in schema.ALERT_KEYS)
        return "background" if self.content_available and not has_alert else "alert"

    @property
    def locales(self) -> list[str]:
        """The locale names the template overrides fields for."""
        return list(self._locales)

    def match_locale(self, locale: str | None) -> str | None:
        """The template locale for a device locale: exact, then its language, else None (defaults)."""
        if locale in self._locale_cache:
            return self._locale_cache[locale]
        found: str | None = None
        if locale:
            key = _locale_key(locale)
            found = self._locale_index.get(key) or self._locale_index.get(key.split("-", 1)[0])
        if len(self._locale_cache) < 10_000:  # device locales are few; the bound guards odd input
            self._locale_cache[locale] = found
        return found

    def choose_variant(self, token: str, campaign_id: str) -> str | None:
        """The A/B variant for a token: a stable hash of campaign id + token, bucketed by weight."""
        if not self._cumulative:
            return None
        digest = hashlib.blake2b(f"{campaign_id}\x00{token}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") % self._total_weight
        for upper, name in self._cumulative:
            if point < upper:
                return name
        return self._cumulative[-1][1]  # pragma: no cover - point < total always

    def _spec(self, locale: str | None, variant: str | None) -> tuple[dict[str, Any], bool]:
        key = (locale, variant)
        spec = self._specs.get(key)
        if spec is None:
            fields = self._base
            if locale is not None and locale in self._locales:
                fields = _overlay(fields, self._locales[locale])
            if variant is not None:
                v = self._variants[variant]
                fields = _overlay(fields, v.fields)
                if locale is not None and locale in v.locales:
                    fields = _overlay(fields, v.locales[locale])
            spec = (fields, _has_expr(fields))
            self._specs[key] = spec
        return spec

    def context(self, device: Device, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The variables a device's fields render with: defaults, then the row's columns, then
        ``extra`` (a trigger rule's ``event``, ``events`` and ``event_count``)."""
        ctx: dict[str, Any] = dict(self.defaults)
        for name, value in device.attrs.items():
            # An empty cell means "no value": the default (if any) fills it.
            if value != "" or name not in ctx:
                ctx[name] = value
        ctx["token"] = device.token
        ctx["platform"] = str(device.platform)
        if extra:
            ctx.update(extra)
        return ctx

    def render(
        self, device: Device, *, variant: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> Notification:
        """Render the notification for one device (``extra``: more variables, see :meth:`context`).

        Without ``variant``, a template with variants picks one with :meth:`choose_variant`
        (campaign id ``""``). The variant's name is added as ``data["pushctl_variant"]``.
        """
        if variant is None and self._cumulative:
            variant = self.choose_variant(device.token, "")
        elif variant is not None and variant not in self._variants:
            known = ", ".join(self._variants) or "none"
            raise TemplateError(
                f"no variant '{variant}' (variants: {known})", file=self.path, field="variants"
            )
        locale = self.match_locale(device.attrs.get("locale"))
        fields, dynamic = self._spec(locale, variant)
        if dynamic:
            fields = _evaluate(fields, self.context(device, extra), self.path, device)
        data = dict(fields.get("data", ()))
        if variant is not None:
            data["pushctl_variant"] = variant
        media = fields.get("media")
        return Notification(
            title=fields.get("title") or None,
            subtitle=fields.get("subtitle") or None,
            body=fields.get("body") or None,
            media=Media(media["url"], media.get("type", "image")) if media and media["url"] else None,
            sound=_sound(fields.get("sound")),
            badge=self._badge(fields.get("badge"), device),
            data=data,
            category=fields.get("category") or None,
            thread_id=fields.get("thread_id") or None,
            collapse_id=fields.get("collapse_id") or None,
            priority=self.priority,
            ttl=self.ttl,
            push_type=self.push_type,
            content_available=self.content_available,
            interruption_level=self.interruption_level,
            relevance_score=fields.get("relevance_score"),
            locale=locale,
            variant=variant,
            apns=fields.get("apns", {}),
            fcm=fields.get("fcm", {}),
            webpush=fields.get("webpush", {}),
            hms=fields.get("hms", {}),
        )

    def _badge(self, value: Any, device: Device) -> int | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip()
        if not text:
            return None
        try:
            badge = int(text)
        except ValueError:
            badge = -1
        if badge < 0:
            raise TemplateError(
                f"badge must render to a whole number >= 0, got {clip(text, quote=True)} "
                f"for the device at {device.where}",
                file=self.path, field="badge",
            )  # fmt: skip
        return badge


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sound(value: Any) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, str):
        return value or None
    sound: dict[str, Any] = {}
    if value.get("critical"):
        sound["critical"] = 1
    sound["name"] = value["name"]
    if "volume" in value:
        sound["volume"] = value["volume"]
    return sound
