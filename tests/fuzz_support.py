"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py): settings, strategies, files.

Every parser a user feeds is run on generated input, unstructured (random text and bytes) and
structured (near-valid documents built from the pieces that once broke things: aliases, deep
brackets, control characters, huge numbers, Jinja that multiplies). The property is always the
same: a clean result or a located InputError (or, for credentials, a credential error), never any
other exception, and each example within its deadline. ``PUSHCTL_FUZZ_EXAMPLES=2000`` hunts
longer than the suite's 60 examples per test.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST = settings(
    max_examples=int(os.environ.get("PUSHCTL_FUZZ_EXAMPLES", "60")),
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_files = itertools.count()  # a fresh file name per example (tmp_path is shared by a test's examples)


def fresh(tmp_path: Path, suffix: str, data: str | bytes) -> Path:
    """A new file in ``tmp_path`` holding ``data``."""
    path = tmp_path / f"f{next(_files)}{suffix}"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# -- strategies -----------------------------------------------------------------------------

any_text = st.text(st.characters(codec="utf-8"), max_size=300)
any_bytes = st.binary(max_size=300)


def pieces(*parts: str, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text made of the given pieces: near-valid documents, where parsers break."""
    return st.lists(st.sampled_from(parts), max_size=max_size).map("".join)


TOKENS = [
    "ab" * 32,
    "dead" * 16,
    "0bad" * 16,
    "AbC123_-:" * 5,
    "fcm:APA91b" + "x" * 40,
    "",
    " ",
    "zz",
    "ab" * 3000,
    "<740f4707 bebcf74f>",
    '{"endpoint": "https://x"}',
    "https://push.example/1",
]
