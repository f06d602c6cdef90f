"""The emulator's admin endpoints (inbox, stats) need the state dir's token; the emulator listens on
loopback only. Another local user reaches the port but cannot read the 0600 token in the 0700 dir."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import (
    ADMIN_TOKEN_FILE,
    Delivery,
    Emulator,
    EmulatorWorkers,
    admin_headers,
    client_context,
    read_admin_token,
)

TOKEN = "ab" * 32


def _get(emu: Emulator | EmulatorWorkers, path: str, http2: bool, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(http2=http2, verify=client_context(emu.ca_file), timeout=10) as client:
        return client.get(emu.fcm_url + path, headers=headers)


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
def test_inbox_and_stats_refuse_requests_without_the_token(tmp_path: Path, http2: bool) -> None:
    with Emulator(tmp_path / "emu") as emu:
        emu.inbox.record(Delivery(TOKEN, "ios", "apns", {"aps": {"alert": "secret plan"}}))
        for path in ("/_emulator/inbox", f"/_emulator/inbox?token={TOKEN}", "/_emulator/stats"):
            missing = _get(emu, path, http2, {})
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert "secret plan" not in missing.text and TOKEN not in missing.text
            assert _get(emu, path, http2, {"authorization": "Basic dXNlcjpwdw=="}).status_code == 401
            wrong = _get(emu, path, http2, admin_headers("not-the-token"))
            assert wrong.status_code == 403 and TOKEN not in wrong.text
            assert _get(emu, path, http2, emu.admin_headers()).status_code == 200
        with httpx.Client(http2=http2, verify=client_context(emu.ca_file)) as client:
            assert client.delete(emu.fcm_url + "/_emulator/inbox").status_code == 401
        assert emu.inbox.total() == 1  # not cleared by the refused DELETE
        inbox = _get(emu, f"/_emulator/inbox?token={TOKEN}", http2, emu.admin_headers()).json()
        assert inbox["deliveries"][0]["payload"]["aps"]["alert"] == "secret plan"
        # In-process helpers keep working without any token.
        assert emu.inbox.count(TOKEN) == 1 and emu.stats()["inbox_total"] == 1


def test_the_token_comes_from_the_state_dir_and_is_kept_across_starts(tmp_path: Path) -> None:
    state = tmp_path / "emu"
    with Emulator(state) as emu:
        first = emu.admin_token
    assert read_admin_token(state) == first and len(first) >= 40
    with Emulator(state) as emu:
        assert emu.admin_token == first  # a second emulator on the same state dir: same credentials
    (state / ADMIN_TOKEN_FILE).chmod(0o644)  # exposed: it is replaced by a new, private one
    with Emulator(state) as emu:
        assert emu.admin_token != first
        assert (state / ADMIN_TOKEN_FILE).stat().st_mode & 0o777 == 0o600


def test_workers_private_admin_ports_need_the_token_too(tmp_path: Path) -> None:
    with EmulatorWorkers(tmp_path / "emu", workers=2) as emu:
        assert _get(emu, "/_emulator/stats", True, {}).status_code == 401
        assert _get(emu, "/_emulator/stats", True, emu.admin_headers()).json()["workers"]
        for worker in emu.workers:
            parts = urlsplit(worker.admin_url)
            assert parts.hostname == "127.0.0.1"
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            try:
                conn.request("GET", "/_emulator/inbox")
                assert conn.getresponse().status == 401
            finally:
                conn.close()
        assert emu.admin("GET", "/_emulator/inbox")[0] == 200


def test_cli_inbox_sends_the_token_and_explains_a_refusal(tmp_path: Path) -> None:
    state = tmp_path / "emu"
    runner = CliRunner()
    with Emulator(state) as emu:
        emu.inbox.record(Delivery(TOKEN, "ios", "apns", {"aps": {"alert": "hi"}}))
        ok = runner.invoke(app, ["-o", "json", "emulator", "inbox", "--state-dir", str(state)])
        assert ok.exit_code == 0, ok.stderr
        assert ok.stdout.strip() == '{"token": "' + TOKEN + '", "count": 1}'
        (state / ADMIN_TOKEN_FILE).write_text("stale\n")
        refused = runner.invoke(app, ["emulator", "inbox", "--state-dir", str(state)])
        assert refused.exit_code == 2
        assert "refused its admin token (403)" in refused.stderr and str(state) in refused.stderr


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_emulator_listens_on_loopback_only(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        for url in (emu.apns_url, emu.fcm_url):
            assert urlsplit(url).hostname == "127.0.0.1"
        for server in emu._servers:
            assert {sock.getsockname()[0] for sock in server.sockets} == {"127.0.0.1"}
        address = _non_loopback_address()
        if address is not None:  # the port cannot be reached on the machine's other addresses
            port = urlsplit(emu.fcm_url).port
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
