"""``--where EXPR``: a small, safe language for selecting audience rows.

The expression is tokenized and parsed by hand (recursive descent) and compiled once into
plain Python closures; it is never ``eval``ed and cannot call anything but what is listed here.

Values
    ``country``, ``last_seen``, ``user_id``...  a column of the audience row (also ``token``,
    ``platform``); letters, digits, ``_`` and ``.``, not starting with a digit
    ``"JP"`` ``'it\\'s'``                        a string (escapes ``\\\\ \\' \\" \\n \\t``)
    ``18`` ``-2.5`` ``1e3``                       a number
    ``2026-01-31`` ``date("2026-01-31")``         a date
    ``true`` ``false``                            a boolean

Conditions (loosest binding first)
    ``a or b``, ``a and b``, ``not a``, ``( a )``
    ``x == y``  ``x != y``  ``x < y``  ``x <= y``  ``x > y``  ``x >= y``
    ``x in ["JP", "FR"]``  ``x not in [1, 2]``
    ``x startswith "en"``  ``x endswith "_US"``  ``x contains "beta"``  (case-sensitive)
    ``exists(col)``: the column is present and not empty
    ``true`` / ``false`` on their own
Keywords are case-insensitive (``AND`` works). There is no regex matching, on purpose.

How a column's text is compared depends on the literal it is compared with:
    a number   numerically when the text is a number (``"18.0" == 18``),
    a date     as a date when the text is an ISO date or datetime (a datetime counts by its date),
    a boolean  ``true/1/yes`` and ``false/0/no`` (any case),
    a string   as a string, always: quoting asks for text (``zip == "01234"``).
``==`` / ``!=`` fall back to comparing the text with the literal as written when the column's
text is not of the literal's kind; ``< <= > >=`` are then *false* (so ``age >= 18`` never selects
an ``age`` of ``unknown``). Two columns compare as numbers if both are numbers, as dates if both
are dates, else as strings.

A column that is absent or empty is *missing*: every comparison with it is false, including
``!=`` and ``not in``; ``not exists(col)`` and ``not (col == "x")`` are true for it.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pushctl.errors import InputError
from pushctl.model import Device

__all__ = ["Segment", "SegmentError"]

Predicate = Callable[[Mapping[str, str]], bool]
LitKind = Literal["str", "num", "date", "bool"]

_MAX_DEPTH = 64
"""Nesting limit for parentheses and ``not``, so hostile input cannot exhaust the stack."""


class SegmentError(InputError):
    """A ``--where`` expression is invalid; ``position`` is the 0-based column of the problem.

    ``str(err)`` is the message followed by the expression and a caret under the position.
    """

    def __init__(self, message: str, expr: str, position: int, *, hint: str | None = None) -> None:
        self.expr = expr
        self.position = position
        super().__init__(f"{message} at column {position + 1}", field="--where", hint=hint)

    @property
    def caret(self) -> str:
        """Two lines: the expression and a ``^`` under the offending position."""
        # Newlines and tabs become spaces so the expression stays on one line with the same columns;
        # wide (CJK) characters take two cells, so the caret pads by display width.
        shown = "".join(" " if c in "\t\r\n" else c for c in self.expr)
        pad = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in shown[: self.position])
        return f"  {shown}\n  {' ' * pad}^"

    def __str__(self) -> str:
        head = f"--where: {self.message}" if not self.hint else f"--where: {self.message} ({self.hint})"
        return f"{head}\n{self.caret}"


# --- values ---------------------------------------------------------------------------------

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _as_number(text: str) -> float | None:
    # A regex instead of float() alone: float() also takes "nan", "inf", "1_000" and " 1 ".
    return float(text) if _NUMBER_TEXT.fullmatch(text) else None


def _as_date(text: str) -> date | None:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        if len(text) > 10 and text[10] in "T ":
            return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    return None


def _as_bool(text: str) -> bool | None:
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else None


_COERCE: dict[LitKind, Callable[[str], object]] = {
    "str": str,
    "num": _as_number,
    "date": _as_date,
    "bool": _as_bool,
}

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": operator.contains,
}


@dataclass(frozen=True, slots=True)
class _Lit:
    kind: LitKind
    value: object
    text: str
    """The literal as text, for string comparisons (a date as YYYY-MM-DD)."""


@dataclass(frozen=True, slots=True)
class _Col:
    name: str


_Operand = _Lit | _Col


def _compare(op: str, left: _Operand, right: _Operand) -> Predicate:
    if isinstance(left, _Lit) and isinstance(right, _Col):
        return _compare(_FLIP[op], right, left)
    if isinstance(left, _Lit) and isinstance(right, _Lit):
        folded = _compare(op, _Col("_"), right)({"_": left.text})
        return (lambda _a: True) if folded else (lambda _a: False)
    assert isinstance(left, _Col)
    name, cmp = left.name, _CMP[op]
    if isinstance(right, _Col):
        other = right.name

        def columns(a: Mapping[str, str]) -> bool:
            x, y = a.get(name), a.get(other)
            if not x or not y:
                return False
            nx, ny = _as_number(x), _as_number(y)
            if nx is not None and ny is not None:
                return cmp(nx, ny)
            dx, dy = _as_date(x), _as_date(y)
            if dx is not None and dy is not None:
                return cmp(dx, dy)
            return cmp(x, y)

        return columns
    text, target = right.text, right.value
    if right.kind == "str":
        if op == "==":
            return lambda a: bool(text) and a.get(name) == text

        def strings(a: Mapping[str, str]) -> bool:
            v = a.get(name)
            return bool(v) and cmp(v, text)

        return strings
    coerce = _COERCE[right.kind]
    # Only == and != fall back to the literal as written; orderings of mismatched kinds are false.
    fallback = op in ("==", "!=")

    def typed(a: Mapping[str, str]) -> bool:
        v = a.get(name)
        if not v:
            return False
        c = coerce(v)
        if c is None:
            return fallback and cmp(v, text)
        return cmp(c, target)

    return typed


def _membership(left: _Operand, items: list[_Lit], negate: bool) -> Predicate:
    if isinstance(left, _Lit):
        hit = any(_compare("==", left, item)({}) for item in items)
        return (lambda _a: True) if hit != negate else (lambda _a: False)
    name = left.name
    if all(item.kind == "str" for item in items):
        texts = frozenset(item.text for item in items) - {""}
        if negate:
            return lambda a: bool(v := a.get(name)) and v not in texts
        return lambda a: a.get(name) in texts
    tests = tuple(_compare("==", left, item) for item in items)

    def member(a: Mapping[str, str]) -> bool:
        if not a.get(name):
            return False
        return any(t(a) for t in tests) != negate

    return member


def _string_op(op: str, left: _Operand, right: _Operand) -> Predicate:
    test = _STRING_OPS[op]
    if isinstance(left, _Col) and isinstance(right, _Lit):
        name, needle = left.name, right.text

        def fast(a: Mapping[str, str]) -> bool:
            v = a.get(name)
            return test(v, needle) if v else False

        return fast

    def side(o: _Operand) -> Callable[[Mapping[str, str]], str | None]:
        if isinstance(o, _Col):
            col = o.name
            return lambda a: a.get(col) or None  # empty counts as missing
        const = o.text
        return lambda _a: const

    get_l, get_r = side(left), side(right)

    def general(a: Mapping[str, str]) -> bool:
        x, y = get_l(a), get_r(a)
        return x is not None and y is not None and test(x, y)

    return general


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    ps = tuple(preds)

    def conj(a: Mapping[str, str]) -> bool:
        for p in ps:  # noqa: SIM110 -- a loop, not all(genexpr): no generator per row
            if not p(a):
                return False
        return True

    return conj


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    ps = tuple(preds)

    def disj(a: Mapping[str, str]) -> bool:
        for p in ps:  # noqa: SIM110 -- a loop, not any(genexpr): no generator per row
            if p(a):
                return True
        return False

    return disj


def _negate(p: Predicate) -> Predicate:
    return lambda a: not p(a)


# --- tokens ---------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "startswith", "endswith", "contains"})
_FUNCTIONS = ("exists", "date")
_TOKEN = re.compile(
    r"""(?P<date>\d{4}-\d\d-\d\d)(?![\w.])
      | (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
_JUNK_WORD = re.compile(r"[-\w.]+")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    """``ident``, ``kw`` (lower-cased text), ``str``, ``num``, ``date``, ``op`` or ``end``."""
    text: str
    pos: int
    value: object = None

    def describe(self) -> str:
        return "end of expression" if self.kind == "end" else f"'{self.text}'"

    def found(self) -> str:
        """``, found 'x'`` for messages; nothing at the end, where the caret already says so."""
        return "" if self.kind == "end" else f", found '{self.text}'"


def _tokenize(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(expr)
    while True:
        while i < n and expr[i].isspace():
            i += 1
        if i >= n:
            toks.append(_Tok("end", "", n))
            return toks
        c = expr[i]
        if c in "'\"":
            toks.append(_string(expr, i))
            i += len(toks[-1].text)
            continue
        m = _TOKEN.match(expr, i)
        if m is None:
            junk = _JUNK_WORD.match(expr, i)
            if c.isdigit() or (c in "-." and junk is not None and len(junk.group()) > 1):
                word = junk.group() if junk else c
                raise SegmentError(f"invalid number or date {word!r}", expr, i)
            hint = {"=": "use '=='", "!": "use 'not' or '!='", "&": "use 'and'", "|": "use 'or'"}.get(c)
            raise SegmentError(f"unexpected character {c!r}", expr, i, hint=hint)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "num":
            toks.append(_Tok("num", text, i, float(text)))
        elif kind == "date":
            toks.append(_Tok("date", text, i, _parse_date_literal(text, expr, i)))
        elif kind == "ident" and text.lower() in _KEYWORDS:
            toks.append(_Tok("kw", text.lower(), i))
        else:
            toks.append(_Tok(kind, text, i))
        i = m.end()


def _string(expr: str, start: int) -> _Tok:
    quote, i = expr[start], start + 1
    out: list[str] = []
    while i < len(expr):
        c = expr[i]
        if c == quote:
            return _Tok("str", expr[start : i + 1], start, "".join(out))
        if c == "\\":
            nxt = expr[i + 1] if i + 1 < len(expr) else ""
            if nxt not in _ESCAPES:
                raise SegmentError("unknown escape in string", expr, i, hint="use \\\\ \\' \\\" \\n or \\t")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    raise SegmentError("unterminated string", expr, start)


def _parse_date_literal(text: str, expr: str, pos: int) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SegmentError(f"invalid date {text!r}", expr, pos, hint="dates are YYYY-MM-DD") from None


# --- parser ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = _tokenize(expr)
        self.i = 0
        self.depth = 0
        self.columns: set[str] = set()

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def is_(self, kind: str, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == kind and tok.text == text

    def fail(self, message: str, tok: _Tok, hint: str | None = None) -> SegmentError:
        return SegmentError(message, self.expr, tok.pos, hint=hint)

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.peek()
        if tok.kind != "op" or tok.text != text:
            raise self.fail(f"expected '{text}' {what}{tok.found()}", tok)
        return self.next()

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise self.fail("empty expression", self.peek())
        pred = self.disjunction()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.describe()}", tok)
        return pred

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.is_("kw", "or"):
            self.next()
            terms.append(self.conjunction())
        return _any(terms)

    def conjunction(self) -> Predicate:
        terms = [self.negation()]
        while self.is_("kw", "and"):
            self.next()
            terms.append(self.negation())
        return _all(terms)

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail("expression nested too deeply", tok)

    def negation(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.next()
            self.nest(tok)
            inner = self.negation()
            self.depth -= 1
            return _negate(inner)
        return self.condition()

    def condition(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "(":
            self.next()
            self.nest(tok)
            inner = self.disjunction()
            self.expect(")", f"to close the '(' at column {tok.pos + 1}")
            self.depth -= 1
            return inner
        if tok.kind == "ident" and tok.text == "exists" and self.is_("op", "(", 1):
            self.next()
            self.next()
            col = self.next()
            if col.kind != "ident":
                raise self.fail(f"exists() takes a column name{col.found()}", col)
            self.columns.add(col.text)
            self.expect(")", "after the column name")
            name = col.text
            return lambda a: bool(a.get(name))
        left = self.operand(None)
        op = self.peek()
        if op.kind == "op" and op.text in _CMP:
            self.next()
            right = self.operand(op)
            kinds = (getattr(left, "kind", ""), getattr(right, "kind", ""))
            if "bool" in kinds and op.text not in ("==", "!="):
                raise self.fail(f"booleans can only be compared with == or !=, not '{op.text}'", op)
            return _compare(op.text, left, right)
        if op.kind == "kw" and op.text in _STRING_OPS:
            self.next()
            return _string_op(op.text, left, self.operand(op))
        if op.kind == "kw" and (op.text == "in" or (op.text == "not" and self.is_("kw", "in", 1))):
            negate = op.text == "not"
            self.i += 2 if negate else 1
            return _membership(left, self.items(), negate)
        if isinstance(left, _Lit) and left.kind == "bool":
            value = bool(left.value)
            return lambda _a: value
        raise self.fail(
            f"expected a comparison after {tok.describe()}{op.found()}",
            op,
            hint="==, !=, <, <=, >, >=, in, not in, startswith, endswith, contains",
        )

    def operand(self, after: _Tok | None) -> _Operand:
        tok = self.peek()
        if tok.kind == "ident" and self.is_("op", "(", 1):
            if tok.text == "exists":
                raise self.fail("exists() is a condition, not a value", tok)
            if tok.text != "date":
                known = ", ".join(f"{f}()" for f in _FUNCTIONS)
                raise self.fail(f"unknown function '{tok.text}'", tok, hint=f"functions: {known}")
            self.next()
            self.next()
            arg = self.next()
            if arg.kind != "str":
                raise self.fail(f'date() takes a string like "2026-01-31"{arg.found()}', arg)
            day = _parse_date_literal(str(arg.value), self.expr, arg.pos)
            self.expect(")", "after the date")
            return _Lit("date", day, day.isoformat())
        self.next()
        if tok.kind == "ident":
            self.columns.add(tok.text)
            return _Col(tok.text)
        if tok.kind == "str":
            return _Lit("str", tok.value, str(tok.value))
        if tok.kind == "num":
            return _Lit("num", tok.value, tok.text)
        if tok.kind == "date":
            return _Lit("date", tok.value, tok.text)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return _Lit("bool", tok.text == "true", tok.text)
        if after is None:
            raise self.fail(f"expected a condition{tok.found()}", tok)
        raise self.fail(f"expected a value after '{after.text}'{tok.found()}", tok)

    def items(self) -> list[_Lit]:
        self.expect("[", "to start the list")
        items: list[_Lit] = []
        while not self.is_("op", "]"):
            tok = self.peek()
            item = self.operand(self.toks[self.i - 1])
            if not isinstance(item, _Lit):
                raise self.fail("list items must be values, not columns", tok)
            items.append(item)
            if not self.is_("op", ","):
                break
            self.next()
        self.expect("]", "to end the list")
        return items


class Segment:
    """A compiled ``--where`` expression. Build it with :meth:`Segment.parse`."""

    __slots__ = ("_pred", "_with_device_fields", "columns", "expr")

    def __init__(self, expr: str, pred: Predicate, columns: frozenset[str]) -> None:
        self.expr = expr
        self._pred = pred
        self.columns = columns
        """Every column the expression reads, so the caller can warn about ones the audience lacks."""
        self._with_device_fields = bool(columns & {"token", "platform"})

    @classmethod
    def parse(cls, expr: str) -> Segment:
        """Parse and compile ``expr``; raises :class:`SegmentError` pointing at the problem."""
        parser = _Parser(expr)
        pred = parser.parse()
        return cls(expr, pred, frozenset(parser.columns))

    def matches(self, attrs: Mapping[str, str]) -> bool:
        """Whether a row with these columns is in the segment."""
        return self._pred(attrs)

    def matches_device(self, device: Device) -> bool:
        """Whether a device is in the segment; ``token`` and ``platform`` come from the device."""
        if self._with_device_fields:
            # Copy only when asked for: most expressions read ordinary columns.
            row = {**device.attrs, "token": device.token, "platform": str(device.platform)}
            return self._pred(row)
        return self._pred(device.attrs)

    def __repr__(self) -> str:
        return f"Segment({self.expr!r})"
