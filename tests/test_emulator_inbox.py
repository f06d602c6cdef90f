"""Inbox: exact counts with duplicates, collapse groups, 100k records, the admin endpoint and CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
from test_emulator_apns import GOOD, client, push
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Delivery, Emulator, Inbox, client_context


def test_counts_and_duplicates_are_exact(emulator: Emulator) -> None:
    other = "cd" * 32
    with client(emulator) as c:
        for token, collapse in [(GOOD, "a"), (GOOD, "a"), (GOOD, None), (other, "b"), (other, None)]:
            headers = {"apns-collapse-id": collapse} if collapse else None
            assert push(c, emulator, token, headers=headers).status_code == 200
        assert push(c, emulator, "dead" + "00" * 30).status_code == 410
    inbox = emulator.inbox
    assert (inbox.total(), inbox.count(GOOD), inbox.count(other)) == (5, 3, 2)
    assert inbox.tokens() == {GOOD, other}
    assert inbox.duplicates() == {GOOD: 3, other: 2}
    assert {k: len(v) for k, v in inbox.by_collapse_id().items()} == {"a": 2, "b": 1}
    assert inbox.received(GOOD)[0].payload == {"aps": {"alert": "hi"}}
    inbox.clear()
    assert inbox.total() == 0 and inbox.received(GOOD) == []


def test_100k_records_are_indexed_not_scanned() -> None:
    inbox = Inbox()
    for i in range(100_000):
        inbox.record(Delivery(f"t{i % 1000}", "ios", "apns", {}, message_id=str(i)))
    assert inbox.total() == 100_000
    assert inbox.count("t7") == 100
    # received() comes from the per-token index: in insertion order, only that token's records.
    assert [d.message_id for d in inbox.received("t7")[:3]] == ["7", "1007", "2007"]
    assert len(inbox.duplicates()) == 1000


def test_admin_endpoint_serves_large_inboxes(emulator: Emulator) -> None:
    for i in range(20_000):  # far beyond one HTTP/2 flow-control window
        emulator.inbox.record(Delivery(GOOD, "ios", "apns", {"aps": {"alert": "x" * 20}}, message_id=str(i)))
    admin = emulator.admin_headers()
    with httpx.Client(http2=True, verify=client_context(emulator.ca_file), headers=admin) as c:
        data = c.get(f"{emulator.fcm_url}/_emulator/inbox", params={"token": GOOD}).json()
        stats = c.get(f"{emulator.fcm_url}/_emulator/stats").json()
    assert data["count"] == 20_000 and data["deliveries"][-1]["message_id"] == "19999"
    assert stats["inbox_total"] == 20_000


def test_open_connections_counts_clients_until_they_hang_up(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        assert emu.open_connections() == 0
        with client(emu) as c:
            assert push(c, emu).status_code == 200
            assert emu.open_connections() == emu.stats()["connections"] == 1
        deadline = time.monotonic() + 5
        while emu.open_connections() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emu.open_connections() == 0


def test_write_profile_merges_and_keeps_default(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_profile = "prod"\n[profiles.prod.apns]\nkey_id = "REAL000001"\n')
    emulator.write_profile(config)
    data = tomllib.loads(config.read_text())
    assert data["default_profile"] == "prod"
    assert data["profiles"]["prod"]["apns"]["key_id"] == "REAL000001"
    profile = data["profiles"]["emulator"]
    assert profile["apns"]["endpoint"] == emulator.apns_url
    assert profile["fcm"]["token_uri"] == emulator.token_uri
    assert Path(profile["apns"]["key_file"]).is_file() and Path(profile["ca_file"]).is_file()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_write_profile_keeps_comments_and_never_adds_a_default(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '# my notes\n[profiles.prod]\n# production keys live in the vault\nca_file = "/x"\n'
        '[profiles.emulator.apns]\ntopic = "stale"\n'
    )
    emulator.write_profile(config)
    emulator.write_profile(config)  # twice: still one emulator profile
    text = config.read_text()
    assert "# my notes" in text and "# production keys live in the vault" in text
    data = tomllib.loads(text)
    assert "default_profile" not in data
    assert data["profiles"]["emulator"]["apns"]["topic"] == "com.example.pushctl"
    assert text.count("[profiles.emulator.apns]") == 1


def test_inbox_json_redacts_the_provider_token(emulator: Emulator) -> None:
    from pushctl.emulator import Delivery

    delivery = Delivery(
        "ab" * 32, "ios", "apns", {"aps": {}}, headers={"authorization": "bearer eyJ.secret.sig"}
    )
    assert delivery.to_json()["headers"]["authorization"] == "bearer <redacted>"


def test_emulator_run_cli(tmp_path: Path) -> None:
    state, config = tmp_path / "state", tmp_path / "config.toml"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pushctl",
            "--config",
            str(config),
            "emulator",
            "run",
            "--state-dir",
            str(state),
            "--apns-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["profile"] == str(config.resolve())
        # The printed curl line reads its headers (topic, sample JWT) from a 0600 file.
        headers_file = state / "curl-apns-headers.txt"
        assert f"@{headers_file}" in info["curl"]
        assert stat.S_IMODE(headers_file.stat().st_mode) == 0o600
        headers = dict(line.split(": ", 1) for line in headers_file.read_text().splitlines())
        with httpx.Client(http2=True, verify=client_context(info["ca_file"])) as c:
            r = c.post(f"{info['apns_url']}/3/device/{GOOD}", content=b'{"aps":{}}', headers=headers)
        assert r.status_code == 200
        assert "eyJ" not in json.dumps(info)  # the curl line reads the JWT from a file
        if shutil.which("curl"):
            tried = subprocess.run(info["curl"] + " -s -o /dev/null -w '%{http_code}'", shell=True,
                                   capture_output=True, text=True, timeout=30, check=False)
            assert tried.stdout == "200", tried.stderr
        listed = CliRunner().invoke(app, ["-o", "json", "emulator", "inbox", "--state-dir", str(state)])
        assert listed.exit_code == 0, listed.output
        sent = 2 if shutil.which("curl") else 1  # the curl line pushes to the same sample token
        assert json.loads(listed.stdout) == {"token": GOOD, "count": sent}
        one = CliRunner().invoke(
            app, ["-o", "json", "emulator", "inbox", "--state-dir", str(state), "-t", GOOD]
        )
        assert r.headers["apns-id"] in [json.loads(line)["message_id"] for line in one.stdout.splitlines()]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert not (state / "endpoints.json").exists()
    assert tomllib.loads(config.read_text())["profiles"]["emulator"]["apns"]["endpoint"] == info["apns_url"]


def test_inbox_cli_without_emulator_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["emulator", "inbox", "--state-dir", str(tmp_path)])
    assert result.exit_code == 4
    assert "no running emulator" in result.stderr


def test_a_second_emulator_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    import json as _json

    from typer.testing import CliRunner

    from pushctl.cli.app import app

    state = tmp_path / "state"
    state.mkdir()
    (state / "endpoints.json").write_text(_json.dumps({"pid": os.getpid()}))  # a live process
    result = CliRunner().invoke(app, ["emulator", "run", "--state-dir", str(state), "--no-profile"])
    assert result.exit_code == 2
    assert f"already running with state dir {state}" in result.stderr
