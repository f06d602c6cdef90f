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
from collections.abc import Callable, Mapping
from typing import Any

from pushctl.audience.segment_lex import (
    _COERCE,
    SegmentError,
    _as_date,
    _as_number,
    _Col,
    _Lit,
    _Operand,
    _parse_date_literal,
    _Tok,
    _tokenize,
)
from pushctl.errors import clip
from pushctl.model import Device

__all__ = ["Segment", "SegmentError"]

Predicate = Callable[[Mapping[str, str]], bool]

_MAX_DEPTH = 64
"""Nesting limit for parentheses and ``not``, so hostile input cannot exhaust the stack."""

_FUNCTIONS = ("exists", "date")


# --- compiling ------------------------------------------------------------------------------

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
            self.expect(")", f"to close the '(' opened at column {tok.pos + 1},")
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
                raise self.fail(f"booleans can only be compared with == or !=, not '{clip(op.text)}'", op)
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
                raise self.fail(f"unknown function '{clip(tok.text)}'", tok, hint=f"functions: {known}")
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
        raise self.fail(f"expected a value after '{clip(after.text)}'{tok.found()}", tok)

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
