"""The words of the ``--where`` language: its error, its values and its tokenizer.

:mod:`pushctl.audience.segment` (which holds the language reference) parses the tokens made here and
compiles them into predicates; this module knows nothing of the grammar.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pushctl.errors import InputError, clip

LitKind = Literal["str", "num", "date", "bool"]


CARET_WINDOW = 60
"""Characters of the expression shown either side of an error's position."""


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
        """Two lines: the expression and a ``^`` under the offending position.

        A long expression is shown as a window of :data:`CARET_WINDOW` characters either side of
        the position, the cuts marked ``…``: a 100 KB ``--where`` is not repeated whole.
        """
        start = max(0, self.position - CARET_WINDOW)
        end = self.position + CARET_WINDOW
        text = self.expr[start:end]
        # Newlines and tabs become spaces so the expression stays on one line with the same columns;
        # wide (CJK) characters take two cells, so the caret pads by display width.
        shown = ("…" if start else "") + "".join(" " if c in "\t\r\n" else c for c in text)
        shown += "…" if end < len(self.expr) else ""
        before = shown[: self.position - start + (1 if start else 0)]
        pad = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in before)
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


# --- tokens ---------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "startswith", "endswith", "contains"})
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
        return "end of expression" if self.kind == "end" else f"'{clip(self.text)}'"

    def found(self) -> str:
        """``, found 'x'`` for messages; nothing at the end, where the caret already says so."""
        return "" if self.kind == "end" else f", found '{clip(self.text)}'"


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
                raise SegmentError(f"invalid number or date {clip(word, quote=True)}", expr, i)
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
        raise SegmentError(f"invalid date {clip(text, quote=True)}", expr, pos,
                           hint="dates are YYYY-MM-DD") from None
