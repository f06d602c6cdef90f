"""``json.loads`` with a nesting bound, so 100,000 nested brackets are an answer, not a crash.

The standard decoder recurses once per level and raises ``RecursionError`` deep down; that
escaped as an internal error. :func:`loads_bounded` counts brackets first (one C-speed pass),
and only a text with more brackets than the bound is measured properly.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JsonTooDeep(ValueError):
    """The JSON text nests deeper than the bound (a ValueError, like every other JSON error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested deeper than the limit of {limit} levels")
        self.msg = str(self)


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text (strings do not count)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads_bounded(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON like ``json.loads``; :class:`JsonTooDeep` when it nests deeper than ``max_depth``.

    Every failure is a ``ValueError`` (``UnicodeDecodeError`` and ``JSONDecodeError`` included).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig") if text.startswith(b"\xef\xbb\xbf") else text.decode("utf-8")
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise JsonTooDeep(max_depth)
    try:
        return json.loads(text)
    except RecursionError:  # cannot happen within the bound; kept so it never escapes
        raise JsonTooDeep(max_depth) from None
