"""`pushctl forget`: a user's or a token's rows leave the journal (really: not in the file's bytes),
the totals of past runs stay, a second run finds nothing, and a forgotten token is a new device."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result

REPO = Path(__file__).resolve().parent.parent
WELCOME = str(REPO / "samples/templates/welcome.yaml")
AUDIENCE = REPO / "samples/audience.csv"
U1003_TOKEN = "a2cec255404e4fb440034d6608697a8d41bed440e50454f31af3176813e02ea6"
DEAD_TOKEN = "deadb8a18a8902073fec8df4f50947aaeb26c57d21fa5d328263dfe574de7399"  # u1008, Unregistered


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def send(journal: Path, audience: Path = AUDIENCE, *extra: str) -> list[dict[str, Any]]:
    args = ["send", WELCOME, "--audience", str(audience), "--emulator", "--journal", str(journal), *extra]
    code, out, err = invoke("-o", "json", *args)
    assert code in (0, 1), err
    return [json.loads(line) for line in out.splitlines()]


def summary(journal: Path, campaign: str) -> dict[str, Any]:
    args = ["runs", "show", campaign, "--show", "none", "--journal", str(journal)]
    code, out, err = invoke("-o", "json", *args)
    assert code in (0, 1), err
    return dict(json.loads(out.splitlines()[-1]))


def listing(journal: Path) -> list[dict[str, Any]]:
    code, out, err = invoke("-o", "json", "runs", "list", "--journal", str(journal))
    assert code == 0, err
    runs = [json.loads(line) for line in out.splitlines()]
    for run in runs:
        run.pop("removed")  # the only field meant to change
    return runs


def dump(journal: Path) -> str:
    """What `sqlite3 J .dump` prints (via Python's iterdump: the same SQL text)."""
    conn = sqlite3.connect(journal)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def raw_bytes(journal: Path) -> bytes:
    return b"".join(p.read_bytes() for p in Journal.files(journal) if p.exists())


def test_forget_a_user_removes_their_token_and_keeps_the_totals(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    campaign = send(journal)[-1]["campaign"]
    before, listed = summary(journal, campaign), listing(journal)
    assert dump(journal).count(U1003_TOKEN) == 2  # the device row and the user link
    assert before["total"] == 15  # the sample audience: 15 devices on four platforms

    code, out, err = invoke("-o", "json", "forget", "--user", "u1003", "--journal", str(journal))
    assert code == 0, err
    report = json.loads(out)
    assert report["removed"] == {"devices": 1, "device_users": 1} and report["rows"] == 2
    assert (report["users"], report["tokens"], report["campaigns"]) == (1, 1, [campaign])
    assert report["vacuum"] == "done"

    assert dump(journal).count(U1003_TOKEN) == 0
    assert U1003_TOKEN.encode() not in raw_bytes(journal)  # gone from the file, not just unlinked
    assert b"u1003" not in raw_bytes(journal)
    assert summary(journal, campaign) == before  # runs show: the same totals, reasons, platforms
    assert listing(journal) == listed
    assert os.stat(journal).st_mode & 0o777 == 0o600  # VACUUM kept the file private

    # Idempotent: nothing left to remove, nothing changes.
    code, out, err = invoke("-o", "json", "forget", "--user", "u1003", "--journal", str(journal))
    assert code == 0, err
    again = json.loads(out)
    assert (again["removed"], again["rows"], again["campaigns"]) == ({}, 0, [])
    assert summary(journal, campaign) == before

    code, out, err = invoke("-o", "table", "runs", "show", campaign, "--journal", str(journal))
    assert code == 0 and "1 devices' rows were removed (forgotten)" in err
    assert "a4c1…4fd1" in out and "a2ce…" not in out  # listed: the others only
    assert "15 devices" in out


def test_forget_tokens_and_lists_in_table_mode(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    campaign = send(journal)[-1]["campaign"]
    before = summary(journal, campaign)
    listed = tmp_path / "erase.csv"
    listed.write_text("user_id,token\nu1001,\n,deadb8a18a8902073fec8df4f50947aaeb26c57d21fa5d328263dfe574de7399\n")
    plain = tmp_path / "erase.txt"
    plain.write_text("# one value per line: a user id or a token\nu1002\n")
    code, out, err = invoke(
        "-o", "table", "forget",
        "--token", "0bad88b886e7577496a2c8773e130f7eb19731662b5e803b61ba4168160adb59",
        "--from", str(listed), "--from", str(plain), "--journal", str(journal),
    )  # fmt: skip
    assert code == 0, err
    assert "devices: 4, device_users: 4" in out and campaign in out and "run totals are unchanged" in out
    text = dump(journal)
    for gone in ("u1001", "u1002", "u1008", "u1009", DEAD_TOKEN):
        assert gone not in text
    assert "u1003" in text  # nobody else
    assert summary(journal, campaign) == before


def test_forget_in_shard_journals_by_glob(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    for name in ("a.sqlite3", "b.sqlite3"):
        send(shards / name)
    code, out, err = invoke("-o", "json", "forget", "-u", "u1003", "--journal", str(shards / "*.sqlite3"))
    assert code == 0, err
    reports = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["journal"]).name for r in reports] == ["a.sqlite3", "b.sqlite3"]
    assert all(r["rows"] == 2 for r in reports)
    assert all(U1003_TOKEN not in dump(shards / name) for name in ("a.sqlite3", "b.sqlite3"))
    code, _, err = invoke("forget", "-u", "u1003", "--journal", str(tmp_path / "none" / "*.sqlite3"))
    assert code == 2 and "no journal matches" in err


def test_a_forgotten_token_is_a_new_device_unless_suppressed(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    send(journal)
    known = ["-o", "json", "send", WELCOME, "--audience", str(AUDIENCE), "--emulator"]
    known += ["--journal", str(journal)]

    def outcome_of_dead(*extra: str) -> tuple[str, str]:
        code, out, err = invoke(*known, "--skip-known-invalid", *extra)
        assert code in (0, 1), err
        row = next(json.loads(line) for line in out.splitlines() if DEAD_TOKEN in line)
        return row["outcome"], row["reason"]

    assert outcome_of_dead("--campaign", "second") == ("skipped", "known_invalid")
    assert invoke("forget", "--token", DEAD_TOKEN, "--journal", str(journal))[0] == 0
    # The journal no longer knows it was invalid: sent to like any new device, the operator's call.
    assert outcome_of_dead("--campaign", "third") == ("invalid_token", "Unregistered")
    assert invoke("forget", "--token", DEAD_TOKEN, "--journal", str(journal))[0] == 0
    suppress = tmp_path / "opt-out.txt"
    suppress.write_text(DEAD_TOKEN + "\n")
    assert outcome_of_dead("--campaign", "fourth", "--suppress", str(suppress)) == ("skipped", "suppressed")


def test_a_campaign_being_sent_keeps_its_rows_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "J"
    token = "ab" * 32
    with Journal(path) as journal:
        for campaign in ("done", "live"):
            run = journal.open_run(campaign, template_fp="t", audience_fp="a", options={})
            run.note_users([(token, "u1")])
            run.record(Result(token, Platform.IOS, Outcome.DELIVERED, status=200, attempts=1))
            run.flush()
            if campaign == "done":
                run.finish()
        live = run
        code, out, err = invoke("-o", "json", "forget", "--user", "u1", "--journal", str(path))
        assert code == 5  # campaign locked: not everything could be erased
        assert "campaign live is being sent" in err and "run the same pushctl forget again" in err
        report = json.loads(out)
        assert (report["campaigns"], report["running"]) == (["done"], ["live"])
        assert report["vacuum"].startswith("put off: campaign live is being sent")
        live.finish()
    code, out, err = invoke("-o", "json", "forget", "--user", "u1", "--journal", str(path))
    assert code == 0, err
    assert json.loads(out)["campaigns"] == ["live"] and token not in dump(path)


def test_nothing_to_forget_and_no_journal_are_input_errors(tmp_path: Path) -> None:
    journal = tmp_path / "missing.sqlite3"
    code, _, err = invoke("forget", "--journal", str(journal))
    assert code == 2 and "nothing to forget" in err
    code, _, err = invoke("forget", "--user", "u1", "--journal", str(journal))
    assert code == 2 and "no journal at" in err and not journal.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n")
    code, _, err = invoke("forget", "--from", str(bad), "--journal", str(journal))
    assert code == 2 and "field '--from': no 'token' or 'user_id' column" in err


def test_sqlite3_dump_shows_no_trace_of_the_user(tmp_path: Path) -> None:
    """The issue's check, with the sqlite3 shell itself when the machine has it."""
    journal = tmp_path / "J"
    send(journal)
    assert invoke("forget", "--user", "u1003", "--journal", str(journal))[0] == 0
    try:
        done = subprocess.run(["sqlite3", str(journal), ".dump"], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        dumped = dump(journal)  # no sqlite3 shell here: Python's iterdump prints the same rows
    else:
        dumped = done.stdout
    assert "INSERT INTO devices" in dumped.replace('"', "") and dumped.count(U1003_TOKEN) == 0
