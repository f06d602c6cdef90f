"""`pushctl emulator run --workers N`: N processes behind the same ports, merged admin views, clean stop."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import admin_headers, client_context, read_admin_token
from pushctl.emulator.emulator import write_profile
from pushctl.emulator.oauth import TokenStore
from pushctl.emulator.workers import merge_admin, worker_seed

REPO = Path(__file__).resolve().parent.parent
_FCM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
DEVICES = 400


def _audience(path: Path, n: int) -> list[str]:
    """Half APNs, half FCM, with every 10th row repeated once more at the end (duplicates count)."""
    rng = random.Random(9)
    rows: list[tuple[str, str]] = []
    for i in range(n):
        if i % 2 == 0:
            rows.append((f"{i:08x}{rng.getrandbits(224):056x}", "ios"))
        else:
            tail = "".join(rng.choices(_FCM_CHARS, k=120))
            rows.append((f"f{i:07d}:APA91b{tail}", "android"))
    with path.open("w") as fh:
        fh.write("token,platform,name,user_id\n")
        for i, (token, platform) in enumerate(rows):
            fh.write(f"{token},{platform},User {i},u{i}\n")
    return [t for t, _ in rows]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start(state: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    cmd = [sys.executable, "-m", "pushctl", "emulator", "run", "--workers", "2",
           "--state-dir", str(state), "--no-profile", *extra]
    state.mkdir(parents=True)
    with (state.parent / "emulator.err").open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    endpoints = state / "endpoints.json"
    while not endpoints.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"the emulator did not start: {_stderr(state)}")
        time.sleep(0.05)
    return proc, json.loads(endpoints.read_text())


def _stderr(state: Path) -> str:
    return (state.parent / "emulator.err").read_text(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.mark.slow
def test_two_workers_share_the_ports_merge_the_inbox_and_stop_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    state = tmp_path / "emu"
    scenario = tmp_path / "scenario.toml"
    # A low stream limit makes pushctl open several connections (the kernel spreads connections).
    scenario.write_text("[options]\nmax_concurrent_streams = 25\n")
    proc, info = _start(state, "--scenario", str(scenario))
    try:
        workers = info["workers"]
        assert isinstance(workers, list) and len(workers) == 2
        pids = [int(w["pid"]) for w in workers]
        assert all(_alive(pid) for pid in pids)
        config = write_profile(
            tmp_path / "config.toml", "emulator",
            ca_file=Path(str(info["ca_file"])), apns_url=str(info["apns_url"]),
            fcm_url=str(info["fcm_url"]), token_uri=str(info["token_uri"]),
        )
        tokens = _audience(tmp_path / "audience.csv", DEVICES)
        runner = CliRunner()
        send = [
            "--config", str(config), "--profile", "emulator", "--output", "json",
            "send", "samples/templates/welcome.yaml", "--audience", str(tmp_path / "audience.csv"),
            "--max-connections", "4", "--concurrency", "100",
        ]
        first = runner.invoke(app, [*send, "--journal", str(tmp_path / "j1.sqlite3")])
        assert first.exit_code == 0, first.stderr[-2000:]
        # The same audience again under another campaign: every device then received two.
        second = runner.invoke(
            app, [*send, "--journal", str(tmp_path / "j2.sqlite3"), "--campaign", "again"]
        )
        assert second.exit_code == 0, second.stderr[-2000:]
        summary = json.loads(first.stdout.splitlines()[-1])
        assert summary["outcomes"]["delivered"] == DEVICES

        # The merged inbox, through the CLI (which asks the shared FCM port).
        inbox = runner.invoke(app, ["--output", "json", "emulator", "inbox", "--state-dir", str(state)])
        assert inbox.exit_code == 0, inbox.stderr
        counts = {row["token"]: row["count"] for row in map(json.loads, inbox.stdout.splitlines())}
        assert counts == dict.fromkeys(tokens, 2)

        # Stats on the shared port, merged: both workers served pushes of both providers.
        token = read_admin_token(state)
        with httpx.Client(
            http2=True, verify=client_context(str(info["ca_file"])), timeout=10, headers=admin_headers(token)
        ) as client:
            stats = client.get(f"{info['fcm_url']}/_emulator/stats").json()
            assert stats["inbox_total"] == 2 * DEVICES
            assert stats["apns"]["200"] + stats["fcm"]["200"] == 2 * DEVICES
            per_worker = {w["pid"]: w for w in stats["workers"]}
            assert set(per_worker) == set(pids)
            for w in per_worker.values():
                assert w["inbox_total"] > 0, stats
            assert sum(w["inbox_total"] for w in per_worker.values()) == 2 * DEVICES

            one = tokens[1]
            detail = client.get(f"{info['fcm_url']}/_emulator/inbox", params={"token": one}).json()
            assert detail["count"] == 2
            times = [d["received_at"] for d in detail["deliveries"]]
            assert times == sorted(times)

            assert client.delete(f"{info['fcm_url']}/_emulator/inbox").json()["cleared"] is True
            assert client.get(f"{info['fcm_url']}/_emulator/inbox").json() == {"total": 0, "counts": {}}
    finally:
        code = _stop(proc)
    assert code == 0, _stderr(state)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)]
    assert not (state / "endpoints.json").exists()


@pytest.mark.slow
def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    proc, info = _start(tmp_path / "emu")
    pids = [int(w["pid"]) for w in info["workers"]]  # type: ignore[attr-defined]
    assert _stop(proc, signal.SIGTERM) == 0
    time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)]


@pytest.mark.slow
def test_a_port_in_use_is_an_input_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pushctl", "emulator", "run", "--workers", "2",
             "--state-dir", str(tmp_path / "emu"), "--no-profile", "--apns-port", str(port)],
            cwd=REPO, capture_output=True, timeout=60,
        )
    assert result.returncode != 0
    assert b"cannot listen" in result.stderr


def test_worker_seeds_are_deterministic_and_distinct() -> None:
    assert worker_seed(None, 3) is None
    assert worker_seed(7, 0) == 7
    seeds = [worker_seed(7, i) for i in range(4)]
    assert len(set(seeds)) == 4
    assert seeds == [worker_seed(7, i) for i in range(4)]


def test_signed_access_tokens_are_accepted_by_another_worker() -> None:
    secret = os.urandom(32)
    issuer, other, stranger = TokenStore(secret), TokenStore(secret), TokenStore(os.urandom(32))
    token = issuer.issue("sa@example.iam.gserviceaccount.com", "proj", 60)
    record = other.lookup(token)
    assert record is not None and record.project_id == "proj"
    assert stranger.lookup(token) is None
    assert other.lookup(token[:-2] + "AA") is None
    other.expire_all()
    assert other.lookup(token) is None
    short = issuer.issue("sa@example.iam.gserviceaccount.com", "proj", -1)
    assert other.lookup(short) is None


def test_merge_admin_sums_counts_and_orders_deliveries() -> None:
    a = {"total": 3, "counts": {"t1": 2, "t2": 1}}
    b = {"total": 2, "counts": {"t1": 1, "t3": 1}}
    assert merge_admin("GET", "/_emulator/inbox", [a, b]) == {
        "total": 5, "counts": {"t1": 3, "t2": 1, "t3": 1}
    }
    da = {"token": "t1", "count": 1, "deliveries": [{"received_at": 2.0}]}
    db = {"token": "t1", "count": 1, "deliveries": [{"received_at": 1.0}]}
    merged = merge_admin("GET", "/_emulator/inbox?token=t1", [da, db])
    assert merged["count"] == 2 and [d["received_at"] for d in merged["deliveries"]] == [1.0, 2.0]
    sa = {"apns": {"200": 2}, "fcm": {}, "oauth": {"200": 1}, "inbox_total": 2, "connections": 1, "worker": 1}
    sb = {"apns": {"200": 1, "400 BadDeviceToken": 1}, "fcm": {"200": 3}, "oauth": {}, "inbox_total": 4,
          "worker": 0}
    stats = merge_admin("GET", "/_emulator/stats", [sa, sb])
    assert stats["apns"] == Counter({"200": 3, "400 BadDeviceToken": 1})
    assert stats["fcm"] == {"200": 3} and stats["oauth"] == {"200": 1} and stats["inbox_total"] == 6
    assert stats["connections"] == 1
    assert [w["worker"] for w in stats["workers"]] == [0, 1]
    assert merge_admin("DELETE", "/_emulator/inbox", [{}, {}]) == {"cleared": True, "workers": 2}
