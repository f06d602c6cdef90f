"""``tomllib.loads`` whose every failure is a located :class:`~pushctl.errors.InputError`.

tomllib raises ``TOMLDecodeError`` for syntax, but ``RecursionError`` for arrays nested a few
hundred deep and ``ValueError`` for an integer of more than 4,300 digits; both escaped as
internal errors.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pushctl.errors import InputError, clip

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_AT_ANYWHERE = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)")


def load_toml(text: str, *, file: str | Path | None, error: type[InputError] = InputError) -> dict[str, Any]:
    """Parse TOML; ``error`` with the file and (for syntax errors) the line on any failure."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _AT_LINE.search(message)
        line = int(match.group(1)) if match else None
        problem = clip(_AT_ANYWHERE.sub("", message), 200)
        raise error(f"invalid TOML: {problem}", file=file, line=line) from None
    except RecursionError:
        raise error("invalid TOML: arrays or tables nested too deeply", file=file) from None
    except ValueError as exc:  # int("9" * 5000): Python's limit on digits
        raise error(f"invalid TOML value: {clip(str(exc).split(';')[0], 200)}", file=file) from None
