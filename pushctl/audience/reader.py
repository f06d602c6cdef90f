"""Streaming audience readers: CSV, JSON Lines and plain text, from a file or stdin.

One pass, flat memory: rows are parsed, validated and de-duplicated as they stream by,
so a 1,000,000-row audience never sits in memory (duplicates are found with a
:class:`~pushctl.audience.tokens.TokenSet` of 64-bit hashes, not a set of strings).

Formats (chosen by ``fmt``, else by extension: ``.csv``; ``.jsonl``/``.ndjson``; anything
else is text; stdin without ``fmt`` is sniffed from its first line):

- CSV: a header row with a ``token`` column (or, for Web Push, ``endpoint`` or ``subscription``);
  an optional ``platform`` column.
- JSON Lines: one object per line with a ``token`` key (or a Web Push ``subscription`` object, or
  the ``PushSubscription.toJSON()`` object itself); numbers/booleans become strings, other
  nested objects or arrays make the row bad.
- Text: one token (or subscription JSON) per line; blank lines and ``#`` comments are skipped.

Every other column becomes ``Device.attrs`` (empty values are dropped). ``platform`` is
``ios``, ``android``, ``web``, ``webpush`` or ``hms`` (case-insensitive; ``apns``, ``fcm`` and
``huawei`` are accepted too); ``web`` is an FCM *web* registration token, sent through FCM,
``webpush`` a Web Push subscription sent to its own push service (its keys are the ``p256dh``
and ``auth`` attributes, see :mod:`.subscription`). When it is absent the platform is inferred
from the token:

1. only hex digits and at least 32 characters            -> ``ios`` (APNs)
2. a subscription JSON (``{...}``) or an ``https://`` URL -> ``webpush``
3. only ``A-Z a-z 0-9 _ : -`` and at least 32 characters  -> ``android`` (FCM)
4. otherwise a bad row: "cannot tell the platform of this token; add a platform column".

HMS tokens look like FCM ones: rows of Huawei devices need ``platform`` ``hms``.

Line numbers are physical, 1-based lines (a CSV record spanning lines reports its first).
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pushctl.audience.subscription import (
    AUTH,
    P256DH,
    SUBSCRIPTION_COLUMNS,
    looks_like_subscription,
    parse_subscription_json,
    subscription_from_mapping,
    subscription_problem,
)
from pushctl.audience.tokens import TokenSet, infer_platform, normalize_token, token_problem
from pushctl.errors import AudienceError, clip
from pushctl.inputs import check_regular_file, loads_bounded, size_text
from pushctl.model import Device, Platform

__all__ = [
    "AudienceReader",
    "AudienceStats",
    "BadRow",
    "DuplicateRow",
    "Format",
    "TokenSet",
    "count_rows",
    "infer_platform",
    "normalize_token",
    "parse_platform",
    "token_problem",
]

Format = Literal["csv", "jsonl", "text"]
SAMPLE_LIMIT = 100
MAX_ROW_CHARS = 64 * 1024
"""Longest audience line (a row of tokens and attributes is well under 1 KB)."""
MAX_FIELD_CHARS = 8 * 1024
"""Longest attribute value (a push payload is at most 4 KB; tokens have their own 4 KB limit)."""
STDIN_NAME = "<stdin>"

_PLATFORMS = {
    "ios": Platform.IOS,
    "apns": Platform.IOS,
    "android": Platform.ANDROID,
    "fcm": Platform.ANDROID,
    "web": Platform.WEB,
    "webpush": Platform.WEBPUSH,
    "hms": Platform.HMS,
    "huawei": Platform.HMS,
}
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def parse_platform(value: str) -> Platform | None:
    """``ios``/``apns``, ``android``/``fcm``, ``web``, ``webpush`` or ``hms``/``huawei`` (any case)
    as a Platform, else None."""
    return _PLATFORMS.get(value.strip().lower())


@dataclass(slots=True, frozen=True)
class BadRow:
    """A row that cannot become a Device, and why."""

    source: str
    line: int
    field: str
    message: str
    token: str = ""
    """The (normalized) token, when the row had one: for prune lists."""
    platform: str = ""
    """The row's declared platform value as written, or ``""``."""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: field '{self.field}': {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(slots=True, frozen=True)
class DuplicateRow:
    """A token seen again on ``line`` (first seen on ``first_line``)."""

    token: str
    line: int
    first_line: int


@dataclass(slots=True)
class AudienceStats:
    """Counts of one read; the samples keep only the first :data:`SAMPLE_LIMIT` of each."""

    rows: int = 0
    devices: int = 0
    bad_rows: int = 0
    bad_samples: list[BadRow] = field(default_factory=list)
    duplicates: int = 0
    duplicate_samples: list[DuplicateRow] = field(default_factory=list)


# A parsed row before validation: (line, raw token, raw platform, attrs).
_Row = tuple[int, str, str, dict[str, str]]


class AudienceReader:
    """Streams the Devices of one audience file (or stdin with ``path="-"``); one pass.

    ``stats`` fills in as rows stream by; ``source`` is the file name as given (``<stdin>``
    for ``-``); ``on_skip`` may be replaced before iterating.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: Format | None = None,
        on_bad_row: Literal["fail", "skip"] = "fail",
        stdin: IO[str] | None = None,
        dedupe: bool = True,
        on_skip: Callable[[BadRow], None] | None = None,
    ) -> None:
        self._stdin_mode = str(path) == "-"
        self.source = STDIN_NAME if self._stdin_mode else str(path)
        self._path = Path(path)
        self._stdin = stdin
        self._on_bad_row = on_bad_row
        self.on_skip = on_skip
        self.keep: Callable[[str], bool] | None = None
        """Only the rows whose token this accepts exist for this reader (a shard of the audience:
        ``send --shard`` / ``--workers``); set before iterating. Rows of other shards are skipped
        unchecked, so bad rows and duplicates are counted by exactly one shard."""
        self._seen = TokenSet() if dedupe else None
        self._fingerprint: str | None = None
        self._hasher = hashlib.sha256()
        self._started = False
        self.stats = AudienceStats()
        if fmt is None and not self._stdin_mode:
            fmt = _EXTENSIONS.get(self._path.suffix.lower(), "text")
        self.fmt: Format | None = fmt
        if not self._stdin_mode:
            if not os.path.lexists(self._path):
                raise AudienceError("no such file", file=self.source)
            check_regular_file(self._path, what="audience file", error=AudienceError,
                               hint="to read from a pipe, give - and redirect it to stdin")

    # -- public ------------------------------------------------------------

    def __iter__(self) -> Iterator[Device]:
        if self._started:
            raise RuntimeError("an AudienceReader streams its source once; create a new one")
        self._started = True
        return self._devices()

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the audience bytes; for stdin, available once fully read."""
        if self._fingerprint is not None:
            return self._fingerprint
        if self._stdin_mode:
            raise RuntimeError("the fingerprint of stdin is known only after reading it all")
        digest = hashlib.sha256()
        try:
            with self._path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise AudienceError(f"cannot read: {exc.strerror or exc}", file=self.source) from None
        self._fingerprint = digest.hexdigest()
        return self._fingerprint

    # -- reading -----------------------------------------------------------

    def _devices(self) -> Iterator[Device]:
        line = 0
        try:
            if self._stdin_mode:
                lines = self._stdin_lines()
                fh = None
            else:
                # newline="" so the csv module sees embedded newlines; utf-8-sig drops a BOM.
                fh = self._path.open(encoding="utf-8-sig", newline="")
                lines = _bounded_lines(fh.readline, self.source)
        except OSError as exc:
            raise AudienceError(f"cannot read: {exc.strerror or exc}", file=self.source) from None
        try:
            fmt = self.fmt
            if fmt is None:
                fmt, lines = _sniff(lines)
            parse = {"csv": self._csv_rows, "jsonl": self._jsonl_rows, "text": self._text_rows}[fmt]
            for item in parse(lines):
                if isinstance(item, BadRow):
                    self.stats.rows += 1
                    self._bad(item)
                    continue
                line = item[0]
                self.stats.rows += 1
                device = self._device(item)
                if device is not None:
                    self.stats.devices += 1
                    yield device
        except UnicodeDecodeError:
            raise AudienceError("not UTF-8 text", file=self.source, line=line + 1) from None
        except csv.Error as exc:
            raise AudienceError(f"CSV: {exc}", file=self.source, line=line + 1) from None
        except OSError as exc:
            raise AudienceError(f"cannot read: {exc.strerror or exc}", file=self.source) from None
        finally:
            if fh is not None:
                fh.close()
        if self._stdin_mode:
            self._fingerprint = self._hasher.hexdigest()

    def _stdin_lines(self) -> Iterator[str]:
        # sys.stdin is looked up at read time so test runners that swap it are honoured.
        stream = self._stdin if self._stdin is not None else sys.stdin
        update = self._hasher.update
        for text in _bounded_lines(stream.readline, self.source):
            update(text.encode("utf-8", "surrogatepass"))
            yield text

    def _bad(self, bad: BadRow) -> None:
        if self._on_bad_row == "fail":
            raise AudienceError(
                bad.message,
                file=bad.source,
                line=bad.line,
                field=bad.field or None,
                hint="fix the row, or skip bad rows with --on-bad-row skip",
            )
        self.stats.bad_rows += 1
        if len(self.stats.bad_samples) < SAMPLE_LIMIT:
            self.stats.bad_samples.append(bad)
        if self.on_skip is not None:
            self.on_skip(bad)

    def _device(self, row: _Row) -> Device | None:
        line, raw_token, raw_platform, attrs = row
        if attrs and max(map(len, attrs.values())) > MAX_FIELD_CHARS:
            name = next(k for k, v in attrs.items() if len(v) > MAX_FIELD_CHARS)
            limit = size_text(MAX_FIELD_CHARS)
            message = f"{len(attrs[name]):,} characters, over the {limit} limit for a field"
            self._bad(BadRow(self.source, line, clip(name, 40), message, "", raw_platform[:20]))
            return None
        if raw_token[:1] == "{" or raw_token.lstrip()[:1] == "{":
            # A whole Web Push subscription (PushSubscription.toJSON()) in place of a token.
            parsed = parse_subscription_json(raw_token)
            if isinstance(parsed, str):
                if self.keep is not None and not self.keep(raw_token):
                    return None
                self._bad(BadRow(self.source, line, "token", parsed, "", raw_platform))
                return None
            raw_token = parsed.endpoint
            attrs = {**attrs, P256DH: parsed.p256dh, AUTH: parsed.auth}
        token = normalize_token(raw_token)
        if self.keep is not None and not self.keep(token):
            return None
        if not token:
            self._bad(BadRow(self.source, line, "token", "empty token", "", raw_platform))
            return None
        # Fast path: the exact lowercase spelling needs no strip/lower.
        platform = _PLATFORMS.get(raw_platform)
        if platform is not None:
            pass
        elif raw_platform.strip():
            platform = parse_platform(raw_platform)
            if platform is None:
                shown = clip(raw_platform.strip(), quote=True)
                message = f"unknown platform {shown} (use ios, android, web, webpush or hms)"
                self._bad(BadRow(self.source, line, "platform", message, token, raw_platform))
                return None
        else:
            platform = infer_platform(token)
            if platform is None:
                message = "cannot tell the platform of this token; add a platform column"
                self._bad(BadRow(self.source, line, "token", message, token, raw_platform))
                return None
        if platform is Platform.WEB and looks_like_subscription(token):
            platform = Platform.WEBPUSH  # "web" in a file written before Web Push was supported
        if platform is Platform.WEBPUSH:
            problem = subscription_problem(token, attrs)
        else:
            problem = token_problem(token, platform)
        if problem is not None:
            self._bad(BadRow(self.source, line, "token", problem, token, raw_platform))
            return None
        if self._seen is not None and not self._seen.add(token, line):
            self.stats.duplicates += 1
            if len(self.stats.duplicate_samples) < SAMPLE_LIMIT:
                first = self._seen.first_line(token) or 0
                self.stats.duplicate_samples.append(DuplicateRow(token, line, first))
            return None
        return Device(token, platform, attrs, self.source, line)

    # -- formats -----------------------------------------------------------

    def _csv_rows(self, lines: Iterator[str]) -> Iterator[_Row | BadRow]:
        reader = csv.reader(lines)
        header: list[str] = []
        while not any(cell.strip() for cell in header):
            try:
                header = next(reader)
            except StopIteration:
                raise AudienceError(
                    "empty file; expected a header row with a 'token' column", file=self.source, line=1
                ) from None
        names = [name.strip() for name in header]
        lowered = [name.lower() for name in names]
        if "token" not in lowered and not any(c in lowered for c in SUBSCRIPTION_COLUMNS):
            found = clip(", ".join(repr(n) for n in names if n) or "none", 200)
            raise AudienceError(
                f"no 'token' column (columns found: {found})",
                file=self.source,
                line=reader.line_num,
                field="token",
                hint="Web Push audiences may have 'endpoint' (with 'p256dh' and 'auth') "
                "or 'subscription' instead",
            )
        ti = lowered.index("token") if "token" in lowered else -1
        pi = lowered.index("platform") if "platform" in lowered else -1
        # Web Push rows may carry the subscription instead of a token (see .subscription).
        alt = [lowered.index(c) for c in SUBSCRIPTION_COLUMNS if c in lowered]
        attr_cols = [(i, name) for i, name in enumerate(names) if name and i not in (ti, pi, *alt)]
        width = len(names)
        previous = reader.line_num
        for record in reader:
            start, previous = previous + 1, reader.line_num
            n = len(record)
            if n == 0 or (n == 1 and not record[0].strip()):
                continue
            if n > width and any(v.strip() for v in record[width:]):
                yield BadRow(self.source, start, "", f"row has {n} fields but the header has {width}")
                continue
            token = record[ti] if 0 <= ti < n else ""
            if alt and not token.strip():
                token = next((record[i] for i in alt if i < n and record[i].strip()), "")
            platform = record[pi] if 0 <= pi < n else ""
            attrs = {name: v for i, name in attr_cols if i < n and (v := record[i].strip())}
            yield (start, token, platform, attrs)

    def _jsonl_rows(self, lines: Iterable[str]) -> Iterator[_Row | BadRow]:
        for line, text in enumerate(lines, 1):
            text = text.strip()
            if not text:
                continue
            try:
                obj = loads_bounded(text)
            except ValueError as exc:
                yield BadRow(self.source, line, "", f"invalid JSON: {getattr(exc, 'msg', exc)}")
                continue
            if not isinstance(obj, dict):
                yield BadRow(self.source, line, "", f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield self._json_row(line, obj)

    def _json_row(self, line: int, obj: dict[str, object]) -> _Row | BadRow:
        nested = obj.get("subscription")
        if isinstance(nested, dict) or (isinstance(obj.get("keys"), dict) and "token" not in obj):
            return self._subscription_row(line, obj, nested if isinstance(nested, dict) else obj)
        if "token" not in obj:
            for key in SUBSCRIPTION_COLUMNS:
                if isinstance(obj.get(key), str):
                    obj = {**obj, "token": obj[key]}
                    del obj[key]
                    break
        values: dict[str, str] = {}
        for key, value in obj.items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                return BadRow(self.source, line, clip(key, 40), "nested objects and arrays are not supported")
            text = ("true" if value else "false") if isinstance(value, bool) else str(value).strip()
            if text:
                values[key] = text
        if "token" not in obj:
            return BadRow(self.source, line, "token", "missing 'token' key")
        token = values.pop("token", "")
        platform = values.pop("platform", "")
        return (line, token, platform, values)

    def _subscription_row(self, line: int, obj: dict[str, object], sub: dict[str, object]) -> _Row | BadRow:
        """A JSON Lines row holding a subscription object (``subscription`` or the row itself)."""
        parsed = subscription_from_mapping(sub)
        if isinstance(parsed, str):
            return BadRow(self.source, line, "subscription", parsed)
        dropped = ("subscription", "keys", "endpoint", "expirationTime")
        rest = {k: v for k, v in obj.items() if k not in dropped}
        row = self._json_row(line, {**rest, "token": parsed.endpoint})
        if isinstance(row, BadRow):
            return row
        return (row[0], row[1], row[2], {**row[3], P256DH: parsed.p256dh, AUTH: parsed.auth})

    def _text_rows(self, lines: Iterable[str]) -> Iterator[_Row | BadRow]:
        for line, text in enumerate(lines, 1):
            text = text.strip()
            if text and not text.startswith("#"):
                yield (line, text, "", {})


def count_rows(audience: str, fmt: str | None) -> int | None:
    """Rows in an audience file, for progress bars and ``--spread``: its lines, less the header of
    a CSV. None for stdin and for anything but a regular file (which the reader refuses)."""
    if audience == "-" or not os.path.isfile(audience):
        return None
    path = Path(audience)
    lines = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
    except OSError:
        return None
    if fmt == "csv" or (fmt is None and path.suffix.lower() == ".csv"):
        lines -= 1
    return max(lines, 0)


def _bounded_lines(readline: Callable[[int], str], source: str) -> Iterator[str]:
    """Lines from ``readline``, refusing one longer than :data:`MAX_ROW_CHARS` before it is read
    whole (``/dev/zero`` or a file without newlines would otherwise fill the memory)."""
    number = 0
    while text := readline(MAX_ROW_CHARS + 1):
        number += 1
        if len(text) > MAX_ROW_CHARS:
            raise AudienceError(
                f"line is longer than the {size_text(MAX_ROW_CHARS)} limit for an audience row",
                file=source, line=number, hint="is this an audience file?",
            )  # fmt: skip
        yield text


def _sniff(lines: Iterator[str]) -> tuple[Format, Iterator[str]]:
    """Guess the format of a stream from its first non-blank line; return it and the lines again."""
    head: list[str] = []
    fmt: Format = "text"
    for text in lines:
        head.append(text)
        stripped = text.strip()
        if not stripped:
            continue
        if stripped.startswith("{"):
            fmt = "jsonl"
        elif "," in stripped and "token" in (c.strip().lower() for c in stripped.split(",")):
            fmt = "csv"
        break
    return fmt, _chain(head, lines)


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest
