"""Every table holding personal data is registered, so `forget` and retention cannot miss it.

A room that adds a journal table with a token- or user-like column (a device directory, trigger
state, preferences, engagement events...) must add one line to
``pushctl/journal/personal.py: PERSONAL_TABLES``; this test finds its ``CREATE TABLE`` in the
source (wherever it is) and in a freshly opened journal, and fails until it does.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from pushctl.journal import PERSONAL_TABLES, Journal, PersonalTable

PACKAGE = Path(__file__).resolve().parent.parent / "pushctl"

# Column names that hold (or point straight at) a person: device tokens, user / customer ids,
# contact details, a device's attributes, push subscriptions.
PERSONAL_COLUMN = re.compile(
    r"(^|_)(token|tokens|user|users|userid|user_id|customer|email|phone|msisdn|attrs|attributes|"
    r"subscription|endpoint|external_id|device_id|ip)($|_)",
    re.IGNORECASE,
)
CREATE_TABLE = re.compile(
    r"CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?(\w+)[\"`\]]?\s*\((.*?)\)\s*"
    r"(?:WITHOUT\s+ROWID\s*)?;",
    re.IGNORECASE | re.DOTALL,
)
CONSTRAINTS = ("primary", "unique", "foreign", "check", "constraint")


def columns_of(body: str) -> list[str]:
    """Column names in a CREATE TABLE body (table constraints left out)."""
    names = []
    depth, part, parts = 0, "", []
    for ch in body:  # split on top-level commas only (PRIMARY KEY (a, b) has its own)
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for piece in parts:
        piece = re.sub(r"--[^\n]*", "", piece).strip()
        if piece and piece.split()[0].lower() not in CONSTRAINTS:
            names.append(piece.split()[0].strip("\"`[]"))
    return names


def tables_in_source() -> dict[str, list[str]]:
    """Every ``CREATE TABLE`` in pushctl's source: table -> columns (temporary helper tables of
    erasure itself, made of one ``value`` column, included: they hold no column name to flag)."""
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for name, body in CREATE_TABLE.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, columns_of(body))
    return found


def unregistered(tables: dict[str, list[str]], registry: tuple[PersonalTable, ...]) -> list[str]:
    """Tables with a personal-looking column that the registry does not list."""
    registered = {t.table for t in registry}
    return sorted(
        f"{table} ({', '.join(c for c in cols if PERSONAL_COLUMN.search(c))})"
        for table, cols in tables.items()
        if table not in registered and any(PERSONAL_COLUMN.search(c) for c in cols)
    )


def test_the_source_scan_sees_the_journal_tables() -> None:
    tables = tables_in_source()
    assert {"runs", "devices", "device_users", "run_tallies"} <= set(tables)
    assert tables["devices"][:3] == ["campaign_id", "token", "platform"]
    assert "PRIMARY" not in tables["devices"]


def test_every_table_with_personal_columns_in_the_source_is_registered() -> None:
    missing = unregistered(tables_in_source(), PERSONAL_TABLES)
    assert not missing, (
        f"tables holding personal data but not registered: {missing}; add a PersonalTable line to "
        "pushctl/journal/personal.py (see DEVELOPERS.md, 'Personal data')"
    )


def test_every_table_of_a_new_journal_is_registered_when_personal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3"):
        pass
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        live = {n: [r[1] for r in conn.execute(f"PRAGMA table_info({n})")] for n in names}
    finally:
        conn.close()
    assert not unregistered(live, PERSONAL_TABLES)
    for entry in PERSONAL_TABLES:  # what each entry names exists, so erasure cannot miss silently
        if entry.table in live:
            for column in (entry.token, entry.user, entry.run, entry.at):
                assert column is None or column in live[entry.table], (entry.table, column)


def test_the_check_fails_for_a_room_that_forgets_to_register() -> None:
    room_sql = """
    CREATE TABLE IF NOT EXISTS directory_devices (
        user_id    TEXT NOT NULL,
        token      TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (user_id, token)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS trigger_stats (rule TEXT, fired INTEGER);
    """
    tables = {name: columns_of(body) for name, body in CREATE_TABLE.findall(room_sql)}
    assert unregistered(tables, PERSONAL_TABLES) == ["directory_devices (user_id, token, attributes)"]
    registered = (*PERSONAL_TABLES, PersonalTable("directory_devices", token="token", user="user_id"))
    assert unregistered(tables, registered) == []


def test_an_entry_names_a_token_or_a_user_column() -> None:
    with pytest.raises(ValueError, match="names its token or user column"):
        PersonalTable("stats", run="campaign_id")
