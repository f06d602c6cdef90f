"""The Jinja2 sandbox templates render in, with a bound on what one render may cost.

Jinja's sandbox keeps templates away from Python internals, not from exhausting the machine:
``{{ 'a' * 10**9 }}`` once grew to 3.95 GB. Here every way a template can make something large
or run long is bounded, and going over a bound is a :class:`RenderLimit` (a ``SecurityError``)
that names the limit:

- ``*``, ``**``, ``%`` and ``+`` are intercepted and refused *before* they would build a value
  of more than :data:`MAX_VALUE_CHARS` characters (or an integer of more than
  :data:`MAX_INT_BITS` bits);
- filters, ``str`` methods and ``str.format`` check their size arguments (``center(10**9)``,
  ``'{:>999999999}'``, ``replace`` and ``join`` by the result they would make) and their result;
- ``~`` concatenations and loops are rewritten at compile time to go through checks: a render
  runs at most :data:`MAX_LOOP_ITERATIONS` loop iterations;
- the rendered text may not pass :data:`MAX_OUTPUT_CHARS`, and a render may not run longer than
  :data:`RENDER_SECONDS` (checked at every loop iteration, call, filter and output chunk).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import update_wrapper
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_VALUE_CHARS = 100_000
"""Largest string or list a template may build (a payload is at most 4 KB)."""
MAX_OUTPUT_CHARS = 100_000
"""Largest text one field may render to."""
MAX_INT_BITS = 16_384
MAX_LOOP_ITERATIONS = 10_000
"""Loop iterations per render, all loops together."""
RENDER_SECONDS = 1.0
"""Time one field's render may take."""

_LOOP_FILTER = "_pushctl_bounded_loop"
_SIZE_FILTER = "_pushctl_bounded_value"
_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


_SEQUENCES = (str, list, tuple)
_PASSED = (jinja2.runtime.Context, nodes.EvalContext, jinja2.Environment)
"""What Jinja passes a filter before its value (``pass_context`` and friends)."""


class RenderLimit(SecurityError):
    """A render went over one of the bounds above; the message names the limit."""


class _Budget:
    __slots__ = ("deadline", "iterations")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.iterations = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("pushctl_render_budget", default=None)


def _check_time() -> None:
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise RenderLimit(f"rendering took longer than the limit of {RENDER_SECONDS:g} s")


def _too_big(what: str, size: int) -> RenderLimit:
    return RenderLimit(f"{what} would be {size:,} characters long; the limit is {MAX_VALUE_CHARS:,}")


def _check_length(what: str, size: int) -> None:
    if size > MAX_VALUE_CHARS:
        raise _too_big(what, size)


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE_CHARS:
        raise _too_big(what, len(value))
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"{what} would be a number of more than {MAX_INT_BITS:,} bits")
    return value


def _check_width(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_CHARS:
        raise _too_big(what, abs(value))


def _check_printf(fmt: str, what: str) -> None:
    for match in _PRINTF_WIDTH.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise RenderLimit(f"{what}: '*' widths are not allowed in a template")
            if number is not None:
                _check_width(int(number[:12]), what)


def _check_format_spec(fmt: str, what: str) -> None:
    for spec in _FORMAT_SPEC.findall(fmt):
        for number in _DIGITS.findall(spec):
            _check_width(int(number[:12]), what)
    if re.search(r":[^{}]*\{", fmt):
        raise RenderLimit(f"{what}: nested {{}} fields in a format spec are not allowed in a template")


def _replace_size(text: str, old: str, new: str, count: Any = -1) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


# -- pre-checks by name: what a call would build, known before building it ---------------------------


def _pre_center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _check_width(args[1] if len(args) > 1 else kwargs.get("width"), "center()")


def _pre_indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 4)
    per_line = width if isinstance(width, int) and not isinstance(width, bool) else len(str(width))
    _check_width(per_line, "indent()")
    size = len(text) + (text.count("\n") + 1) * max(0, per_line)
    if size > MAX_VALUE_CHARS:
        raise _too_big("indent()", size)


def _pre_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and isinstance(args[0], str):
        _check_printf(args[0], "format")


def _pre_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 3:
        text, old, new = (str(a) for a in args[:3])
        count = args[3] if len(args) > 3 else kwargs.get("count", -1)
        size = _replace_size(text, old, new, -1 if count is None else count)
        if size > MAX_VALUE_CHARS:
            raise _too_big("replace()", size)


def _pre_count(position: int, name: str, what: str) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        _check_width(args[position] if len(args) > position else kwargs.get(name), what)

    return check


def _pre_wordwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 79)
    wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring")
    if isinstance(wrap, str) and isinstance(width, int):
        size = len(text) + (len(text) // max(1, width) + 1) * len(wrap)
        if size > MAX_VALUE_CHARS:
            raise _too_big("wordwrap()", size)


_FILTER_CHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "replace": _pre_replace,
    "batch": _pre_count(1, "linecount", "batch()"),
    "slice": _pre_count(1, "slices", "slice()"),
    "truncate": _pre_count(1, "length", "truncate()"),
    "wordwrap": _pre_wordwrap,
}


def _joined(items: Iterable[Any], separator: Any, what: str) -> list[Any]:
    """``items`` as a list, refused if joining them with ``separator`` would be too long."""
    out: list[Any] = []
    size = 0
    sep = len(str(separator))
    for item in items:
        _check_time()
        out.append(item)
        size += len(str(item)) + (sep if len(out) > 1 else 0)
        if size > MAX_VALUE_CHARS:
            raise _too_big(what, size)
    return out


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pre = _FILTER_CHECKS.get(name)

    def run(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        if pre is not None:
            # Filters with a context/environment first argument get it before the value.
            plain = tuple(a for a in args if not isinstance(a, _PASSED))
            pre(plain, kwargs)
        if name == "join":
            args = tuple(
                _joined(a, args[i + 1] if len(args) > i + 1 else kwargs.get("d", ""), "join()")
                if i == _value_index(args) else a
                for i, a in enumerate(args)
            )  # fmt: skip
        return _check_size(func(*args, **kwargs), f"the '{name}' filter's result")

    return update_wrapper(run, func)


def _value_index(args: tuple[Any, ...]) -> int:
    for i, a in enumerate(args):
        if not isinstance(a, _PASSED):
            return i
    return 0


def _bounded_loop(iterable: Any) -> Iterator[Any]:
    budget = _BUDGET.get()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > MAX_LOOP_ITERATIONS:
                raise RenderLimit(f"loops ran more than the limit of {MAX_LOOP_ITERATIONS:,} iterations")
            if budget.iterations % 64 == 0:
                _check_time()
        yield item


def _bounded_value(value: Any) -> Any:
    _check_time()
    return _check_size(value, "a ~ concatenation")


_STR_METHOD_CHECKS: dict[str, Callable[[str, tuple[Any, ...]], None]] = {
    "center": lambda s, a: _check_width(a[0] if a else 0, "center()"),
    "ljust": lambda s, a: _check_width(a[0] if a else 0, "ljust()"),
    "rjust": lambda s, a: _check_width(a[0] if a else 0, "rjust()"),
    "zfill": lambda s, a: _check_width(a[0] if a else 0, "zfill()"),
    "expandtabs": lambda s, a: _check_width(
        s.count("\t") * (a[0] if a and isinstance(a[0], int) else 8), "expandtabs()"
    ),
}


class BoundedTemplate(jinja2.Template):
    """A template whose :meth:`render` is :func:`render_bounded`: every caller gets the bounds."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        return render_bounded(self, dict(*args, **kwargs))


class BoundedSandbox(SandboxedEnvironment):
    """A :class:`SandboxedEnvironment` whose renders are bounded in size, iterations and time."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    template_class = BoundedTemplate

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # lipsum(n=10**9) generates text at will
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = _bounded_loop
        self.filters[_SIZE_FILTER] = _bounded_value

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # Route every loop's iterable and every ~ concatenation through a check.
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        _wrap_concats(tree)
        return tree

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and times > 0:
                    _check_length("'*'", len(seq) * times)
            if isinstance(left, int) and isinstance(right, int):
                _check_bits(left.bit_length() + right.bit_length(), "'*'")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                _check_bits(left.bit_length() * right, "'**'")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, "'%' formatting")
        elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _check_length("'+'", len(left) + len(right))
        return _check_size(super().call_binop(context, operator, left, right), f"'{operator}'")

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, str):
            if name in _STR_METHOD_CHECKS:
                _STR_METHOD_CHECKS[name](owner, args)
            elif name == "replace" and len(args) >= 2:
                size = _replace_size(owner, str(args[0]), str(args[1]), args[2] if len(args) > 2 else -1)
                if size > MAX_VALUE_CHARS:
                    raise _too_big("replace()", size)
            elif name == "join" and args:
                args = (_joined(args[0], owner, "join()"), *args[1:])
        return _check_size(super().call(context, obj, *args, **kwargs), f"{name or 'a call'}()")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_spec(fmt, "str.format()")
            return _check_size(wrapped(*args, **kwargs), "str.format()")  # type: ignore[no-any-return]

        return update_wrapper(checked, value)


def _check_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise RenderLimit(f"{what} would make a number of more than {MAX_INT_BITS:,} bits")


def _wrap_concats(tree: nodes.Template) -> None:
    """Replace every ``~`` concatenation by ``(a ~ b) | _pushctl_bounded_value``, in one pass."""

    def wrap(node: nodes.Concat) -> nodes.Filter:
        return nodes.Filter(node, _SIZE_FILTER, [], [], None, None, lineno=node.lineno)

    for parent in list(tree.find_all(nodes.Node)):
        for field, value in parent.iter_fields():
            if isinstance(value, nodes.Concat):
                setattr(parent, field, wrap(value))
            elif isinstance(value, list):
                value[:] = [wrap(item) if isinstance(item, nodes.Concat) else item for item in value]


def render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """``template.render(context)`` within the bounds: size of the output, iterations, time."""
    token = _BUDGET.set(_Budget(RENDER_SECONDS))
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.root_render_func(template.new_context(context)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise RenderLimit(
                    f"the rendered text is longer than the limit of {MAX_OUTPUT_CHARS:,} characters"
                )
            parts.append(chunk)
            _check_time()
        return "".join(parts)
    finally:
        _BUDGET.reset(token)
