"""Users' preferences: which categories of notification each user (or device) wants.

A template (or a trigger rule) declares its ``category`` (``marketing``, ``orders``, ``social``...).
A device is left out (``skipped``, reason ``preference``) when any of these says its user — or the
device itself — opted out of that category:

- the audience row's (or the device directory's) ``pref_<category>`` column (``pref_marketing``:
  ``false``);
- a ``--preferences FILE`` (CSV or JSON Lines: ``user_id`` or ``token``, ``category``, ``opted_in``);
- the journal, filled by ``pushctl prefs import`` (a later import replaces a user's choice).

When sources disagree an opt-out wins: a stale "yes" never overrides a user's "no". Without any
choice a user is opted in. A value that is not a clear yes or no (``maybe``) counts as no.

Categories listed in the profile's ``preferences.mandatory_categories`` (service messages such as
account security) are sent whatever the preferences say. Names compare case-insensitively.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pushctl.errors import InputError
from pushctl.inputs import check_regular_file, loads_bounded, size_text
from pushctl.journal import PreferenceRow, PreferenceStore
from pushctl.model import Device

__all__ = [
    "PREFERENCE",
    "PreferenceFile",
    "PreferenceReadStats",
    "Preferences",
    "parse_opted_in",
    "read_preferences",
]

PREFERENCE = "preference"
"""The skip reason of a device whose user opted out of the category."""
_YES = frozenset({"true", "1", "yes", "y", "in", "on", "opted_in", "opt_in", "subscribed"})
_NO = frozenset({"false", "0", "no", "n", "out", "off", "opted_out", "opt_out", "unsubscribed"})


def parse_opted_in(value: Any) -> bool | None:
    """True / False for a clear yes or no (``true``, ``1``, ``yes``, ``in``...; ``false``, ``0``...),
    None otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _YES else False if text in _NO else None


MAX_PREFERENCE_LINE = 64 * 1024
"""The longest line a preferences file may hold (a row is a few short fields)."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a regular file, each within :data:`MAX_PREFERENCE_LINE`; streamed."""
    check_regular_file(path, what="the preferences file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the check
    except OSError as exc:
        raise InputError(f"cannot read the preferences file: {exc.strerror or exc}", file=path) from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_PREFERENCE_LINE + 1):
            number += 1
            if len(raw) > MAX_PREFERENCE_LINE:
                raise InputError(
                    f"line is longer than the {size_text(MAX_PREFERENCE_LINE)} limit for a preferences row",
                    file=path, line=number,
                )  # fmt: skip
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", file=path, line=number) from None


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        return
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or first[1].lstrip().startswith("{"):
        yield from _jsonl_rows(path, first, lines)
    else:
        yield from _csv_rows(path, first[1], lines)


def _jsonl_rows(
    path: Path, first: tuple[int, str], lines: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, line in itertools.chain([first], lines):
        if not line.strip():
            continue
        try:
            row = loads_bounded(line)
        except ValueError as exc:
            raise InputError(f"not JSON: {getattr(exc, 'msg', exc)}", file=path, line=number) from None
        if not isinstance(row, dict):
            raise InputError("not a JSON object", file=path, line=number)
        yield number, row


def _csv_rows(
    path: Path, first: str, lines: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    header = [h.strip() for h in _csv_values(path, 1, first)]
    if "category" not in header or not ({"user_id", "token"} & set(header)):
        raise InputError(
            "the header needs user_id or token, category and opted_in columns", file=path, line=1,
            hint="e.g. user_id,category,opted_in",
        )  # fmt: skip
    for number, line in lines:
        if not line.strip():
            continue
        values = _csv_values(path, number, line)
        if len(values) > len(header):
            raise InputError(f"{len(values)} values for {len(header)} columns", file=path, line=number)
        yield number, dict(zip(header, values, strict=False))


def _csv_values(path: Path, number: int, line: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error as exc:
        raise InputError(f"not CSV: {exc}", file=path, line=number) from None


@dataclass
class PreferenceReadStats:
    rows: int = 0
    bad_rows: int = 0
    bad_samples: list[str] = field(default_factory=list)


def read_preferences(
    path: Path, *, on_bad_row: Literal["fail", "skip"] = "fail", stats: PreferenceReadStats | None = None
) -> Iterator[PreferenceRow]:
    """The rows of a preferences file; a bad row is a located error, or skipped and counted."""
    stats = stats if stats is not None else PreferenceReadStats()
    for number, row in _rows(path):
        stats.rows += 1
        user = str(row.get("user_id") or "").strip() or None
        token = str(row.get("token") or "").strip() or None
        category = str(row.get("category") or "").strip().lower()
        opted = parse_opted_in(row.get("opted_in", ""))
        problem = None
        if not (user or token):
            problem = ("user_id", "give a user_id or a token")
        elif not category:
            problem = ("category", "missing (e.g. marketing)")
        elif opted is None:
            problem = ("opted_in", f"not a yes or no: {row.get('opted_in')!r} (true/false, yes/no, 1/0)")
        if problem is not None:
            if on_bad_row == "fail":
                raise InputError(problem[1], file=path, line=number, field=problem[0])
            stats.bad_rows += 1
            if len(stats.bad_samples) < 20:
                stats.bad_samples.append(f"{path}:{number}: field '{problem[0]}': {problem[1]}")
            continue
        assert opted is not None
        yield PreferenceRow(category, opted, user_id=user, token=None if user else token, source=str(path))


@dataclass
class PreferenceFile:
    """``--preferences FILE``, held in memory: opt-outs by user and by token."""

    users: dict[str, dict[str, bool]] = field(default_factory=dict)
    tokens: dict[str, dict[str, bool]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PreferenceFile:
        loaded = cls()
        for row in read_preferences(Path(path)):
            if row.user_id:
                loaded.users.setdefault(row.user_id, {})[row.category] = row.opted_in
            elif row.token:
                loaded.tokens.setdefault(row.token, {})[row.category] = row.opted_in
        return loaded

    def opted_out(self, category: str, user_id: str | None, token: str) -> bool:
        return (bool(user_id) and self.users.get(user_id or "", {}).get(category) is False) or (
            self.tokens.get(token, {}).get(category) is False
        )


class Preferences:
    """Decides, per device, whether its user wants a category (see the module docstring)."""

    def __init__(
        self,
        *,
        file: PreferenceFile | None = None,
        store: PreferenceStore | None = None,
        mandatory: Iterable[str] = (),
    ) -> None:
        self.file = file
        self.store = store
        self.mandatory = frozenset(c.strip().lower() for c in mandatory)
        self._out_users: set[str] = set()
        self._out_tokens: set[str] = set()
        self._prefetched: tuple[str, frozenset[str]] | None = None

    def applies(self, category: str | None) -> bool:
        """Whether devices may be left out for this category at all (not mandatory, not none)."""
        return bool(category) and (category or "").lower() not in self.mandatory

    def prefetch(self, category: str, devices: Iterable[Device]) -> None:
        """Look the journal's opt-outs of these devices up in one query (a campaign's chunk)."""
        if self.store is None:
            return
        chunk = list(devices)
        users = [d.attrs.get("user_id", "") for d in chunk]
        tokens = [d.token for d in chunk]
        self._out_users, self._out_tokens = self.store.opted_out(users, tokens, category.lower())
        self._prefetched = (category.lower(), frozenset(tokens))

    def reason(self, category: str | None, device: Device, user_id: str | None = None) -> str:
        """``preference`` when the device's user (or the device) opted out of ``category``; else ``""``."""
        if not self.applies(category):
            return ""
        assert category is not None
        category = category.lower()
        user = user_id or device.attrs.get("user_id") or None
        column = _pref_column(device.attrs, category)
        if column is not None and parse_opted_in(column) is not True:
            return PREFERENCE
        if self.file is not None and self.file.opted_out(category, user, device.token):
            return PREFERENCE
        if self.store is not None:
            known = self._prefetched
            if known is not None and known[0] == category and device.token in known[1]:
                out_users, out_tokens = self._out_users, self._out_tokens
            else:
                out_users, out_tokens = self.store.opted_out([user] if user else [], [device.token], category)
            if device.token in out_tokens or (user is not None and user in out_users):
                return PREFERENCE
        return ""


def _pref_column(attrs: Mapping[str, str], category: str) -> str | None:
    wanted = f"pref_{category}"
    for key, value in attrs.items():
        if key.lower() == wanted:
            return value
    return None
