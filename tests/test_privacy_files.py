"""Private by default: every file pushctl creates with tokens, user ids or secrets is 0600 (dirs 0700)
whatever the umask; an existing file others can read is kept as it is, with a warning naming the fix.

Every test runs under ``umask 022`` (the usual default, which would give 0644 files).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result
from pushctl.paths import create_private, exposure_warning, make_private_dir, open_private

REPO = Path(__file__).resolve().parent.parent
WELCOME = str(REPO / "samples/templates/welcome.yaml")
AUDIENCE = str(REPO / "samples/audience.csv")


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):o}"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})
    return result.exit_code, result.stdout, result.stderr


def test_send_creates_journal_results_and_prune_list_0600(tmp_path: Path, isolated_dirs: Path) -> None:
    journal, results, prune = tmp_path / "J", tmp_path / "R.csv", tmp_path / "P.txt"
    code, _, err = invoke(
        "-o", "json", "send", WELCOME, "--audience", AUDIENCE, "--emulator",
        "--journal", str(journal), "--results", str(results), "--invalid-tokens", str(prune),
    )  # fmt: skip
    assert code == 1, err  # the sample holds invalid tokens on purpose
    assert "open to other users" not in err
    modes = {p.name: mode(p) for p in (journal, results, prune)}
    assert modes == {"J": "600", "R.csv": "600", "P.txt": "600"}
    assert prune.read_text().count("\n") == 6  # the files hold what they should
    assert mode(tmp_path / "locks") == "700"
    # The APNs JWT cache (credential-derived) and the data dir holding it.
    data = isolated_dirs / "data" / "pushctl"
    caches = [p for p in data.rglob("*") if p.is_file()]
    assert caches and {mode(p) for p in caches} == {"600"}
    assert {mode(d) for d in [data, *(p for p in data.rglob("*") if p.is_dir())]} == {"700"}


def _record_one(journal: Journal, campaign: str, token: str) -> None:
    run = journal.open_run(campaign, template_fp="t", audience_fp="a", options={})
    run.mark_inflight([(token, Platform.IOS, 1, "")])
    run.record(Result(token, Platform.IOS, Outcome.DELIVERED, status=200, attempts=1))
    run.finish()


def test_wal_and_shm_are_0600_while_open_and_after_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "new" / "journal.sqlite3"
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    with Journal(path) as journal:
        _record_one(journal, "c1", "ab" * 32)
        assert wal.exists() and shm.exists()
        assert (mode(path), mode(wal), mode(shm)) == ("600", "600", "600")
        assert mode(path.parent) == "700"  # a directory pushctl made
        journal._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _record_one(journal, "c2", "cd" * 32)
        assert (mode(path), mode(wal), mode(shm)) == ("600", "600", "600")
    assert not wal.exists()  # the last connection removed it
    with Journal(path) as journal:  # a new -wal and -shm, still private
        _record_one(journal, "c3", "ef" * 32)
        assert (mode(wal), mode(shm)) == ("600", "600")


def test_private_even_under_a_strange_umask(tmp_path: Path) -> None:
    os.umask(0o277)  # would leave a new file read-only (0400) and a directory 0500
    with open_private(tmp_path / "a" / "b" / "file.txt", "w") as fh:
        fh.write("x")
    assert mode(tmp_path / "a" / "b" / "file.txt") == "600"
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == ("700", "700")
    assert create_private(tmp_path / "c" / "j") and mode(tmp_path / "c" / "j") == "600"


def test_existing_files_and_dirs_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    make_private_dir(shared / "sub")
    assert (mode(shared), mode(shared / "sub")) == ("755", "700")
    existing = shared / "results.csv"
    existing.write_text("old\n")
    existing.chmod(0o644)
    with open_private(existing, "a") as fh:
        fh.write("new\n")
    assert mode(existing) == "644" and existing.read_text() == "old\nnew\n"
    warning = exposure_warning([existing, shared / "missing"], "results file")
    assert warning == f"results file {existing} is open to other users (mode 644); run chmod 600 {existing}"
    existing.chmod(0o600)
    assert exposure_warning([existing], "results file") is None


def test_an_existing_readable_journal_gets_a_warning_naming_the_fix(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    with Journal(journal) as j:
        _record_one(j, "c1", "ab" * 32)
    journal.chmod(0o644)
    code, _, err = invoke("runs", "list", "--journal", str(journal))
    assert code == 0
    assert f"journal {journal} is open to other users (mode 644); run chmod 600 {journal}" in err
    code, _, err = invoke(
        "-o", "json", "send", WELCOME, "--audience", AUDIENCE, "--emulator", "--journal", str(journal)
    )
    assert code == 1 and f"run chmod 600 {journal}" in err
    assert mode(journal) == "644"  # the owner's choice is kept; the warning says how to fix it
    journal.chmod(0o600)
    assert "chmod" not in invoke("runs", "list", "--journal", str(journal))[2]


def test_an_existing_readable_results_file_gets_a_warning(tmp_path: Path) -> None:
    results = tmp_path / "R.jsonl"
    results.write_text("")
    results.chmod(0o640)
    code, _, err = invoke(
        "-o", "json", "send", WELCOME, "--audience", AUDIENCE, "--emulator",
        "--journal", str(tmp_path / "J"), "--results", str(results),
    )  # fmt: skip
    assert code == 1
    assert f"results file {results} is open to other users (mode 640); run chmod 600 {results}" in err


def test_token_check_prune_list_and_run_exports_are_0600(tmp_path: Path) -> None:
    prune = tmp_path / "prune.csv"
    _, _, err = invoke("-o", "json", "tokens", "check", AUDIENCE, "--prune-list", str(prune))
    assert prune.exists() and mode(prune) == "600", err
    journal = tmp_path / "J"
    with Journal(journal) as j:
        _record_one(j, "c1", "ab" * 32)
    export, invalid = tmp_path / "export.csv", tmp_path / "invalid.txt"
    assert invoke("runs", "export", "c1", "--journal", str(journal), "--out", str(export))[0] == 0
    assert invoke("runs", "prune-list", "c1", "--journal", str(journal), "--out", str(invalid))[0] == 0
    assert (mode(export), mode(invalid)) == ("600", "600")
    assert "ab" * 32 in export.read_text()


def test_emulator_state_is_private(tmp_path: Path) -> None:
    state = tmp_path / "emu"
    with Emulator(state) as emu:
        config = emu.write_profile(tmp_path / "cfg" / "config.toml")
        assert mode(state) == "700"
        private = ["admin-token", "endpoints.json", "ca-key.pem", "server-key.pem", "service-account.json"]
        assert {name: mode(state / name) for name in private} == dict.fromkeys(private, "600")
        assert json.loads((state / "endpoints.json").read_text())["fcm_url"] == emu.fcm_url
        assert (mode(config), mode(config.parent)) == ("600", "700")


def test_journal_files_are_the_database_and_its_sqlite_companions(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    assert Journal.files(path) == [path, tmp_path / "j.sqlite3-wal", tmp_path / "j.sqlite3-shm"]
    with Journal(path):
        pass
    # Opened by plain sqlite3 later (as `sqlite3 J .dump` does): the companions follow the file.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    assert mode(tmp_path / "j.sqlite3-wal") == "600"
    conn.close()
