"""Emulator faults and connection behaviour, observed by a raw h2 client: GOAWAY, stream limits,
dropped connections, idle timeouts, seeded error rates, latency, scenario files."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.connection
import h2.events
import httpx
import pytest
from test_emulator_apns import DEFAULT_JWT, GOOD, TOPIC, client, push

from pushctl.emulator import Emulator, Scenario, client_context
from pushctl.errors import InputError

REPO = Path(__file__).resolve().parent.parent


class RawH2:
    """A blocking HTTP/2 client that exposes every event (SETTINGS, GOAWAY...) to the test."""

    def __init__(self, emu: Emulator) -> None:
        port = int(emu.apns_url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = client_context(emu.ca_file).wrap_socket(sock, server_hostname="127.0.0.1")
        self.conn = h2.connection.H2Connection()
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events: list[Any] = []
        self.closed = False

    def push(self, token: str = GOOD, auth: str = DEFAULT_JWT) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", "127.0.0.1"),
                (":path", f"/3/device/{token}"),
                ("authorization", f"bearer {auth}"),
                ("apns-topic", TOPIC),
            ],
        )
        self.conn.send_data(sid, b'{"aps":{}}', end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def read_until(self, done: Callable[[list[Any]], bool], timeout: float = 5) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not done(self.events) and not self.closed and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionError, OSError):
                data = b""
            if not data:
                self.closed = True
                break
            self.events += self.conn.receive_data(data)
            self.sock.sendall(self.conn.data_to_send())
        return self.events

    def statuses(self) -> dict[int, str]:
        return {
            e.stream_id: dict(e.headers)[b":status"].decode()
            for e in self.events
            if isinstance(e, h2.events.ResponseReceived)
        }

    def stream_limits(self) -> list[int]:
        return [
            e.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value
            for e in self.events
            if isinstance(e, h2.events.RemoteSettingsChanged)
            and h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in e.changed_settings
        ]

    def close(self) -> None:
        self.sock.close()


def _ended(n: int) -> Callable[[list[Any]], bool]:
    return lambda ev: sum(isinstance(e, h2.events.StreamEnded) for e in ev) >= n


def test_goaway_after_n_streams(tmp_path: Path) -> None:
    with Emulator(tmp_path, goaway_after=3) as emu:
        raw = RawH2(emu)
        sids = [raw.push() for _ in range(5)]
        events = raw.read_until(lambda ev: False, timeout=3)  # until the server closes
        raw.close()
    [goaway] = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway.last_stream_id == sids[2]
    assert raw.closed
    assert raw.statuses() == dict.fromkeys(sids[:3], "200")  # streams <= last_stream_id finished
    assert emu.inbox.count(GOOD) == 3


def test_httpx_recovers_from_goaway_on_new_connections(tmp_path: Path) -> None:
    with Emulator(tmp_path, goaway_after=2) as emu, client(emu) as c:
        codes = [push(c, emu).status_code for _ in range(5)]
    assert codes == [200] * 5
    assert emu.inbox.count(GOOD) == 5


def test_single_stream_until_authenticated(tmp_path: Path) -> None:
    with Emulator(tmp_path, single_stream_until_auth=True, max_concurrent_streams=500) as emu:
        raw = RawH2(emu)
        raw.read_until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev))
        raw.push()
        raw.read_until(lambda ev: len(raw.stream_limits()) >= 2)
        raw.close()
    assert raw.stream_limits() == [1, 500]


def test_stream_limit_drops_after_reject_and_climbs_back(tmp_path: Path) -> None:
    with Emulator(tmp_path, stream_drop_after_reject=True, max_concurrent_streams=8) as emu:
        raw = RawH2(emu)
        raw.push("dead" + "00" * 30)  # rejected: 410
        raw.read_until(_ended(1))
        for n in range(2, 6):
            raw.push()
            raw.read_until(_ended(n))
        raw.read_until(lambda ev: len(raw.stream_limits()) >= 5, timeout=1)
        raw.close()
    assert raw.stream_limits() == [8, 1, 2, 4, 8]


def _reset(raw: RawH2, sid: int) -> None:
    raw.conn.reset_stream(sid)
    raw.sock.sendall(raw.conn.data_to_send())


def test_a_stream_reset_mid_request_frees_its_slot(tmp_path: Path) -> None:
    with Emulator(tmp_path, max_concurrent_streams=1) as emu:
        raw = RawH2(emu)
        raw.read_until(lambda ev: len(raw.stream_limits()) >= 1)
        sid = raw.conn.get_next_available_stream_id()
        raw.conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                    (":authority", "127.0.0.1"), (":path", f"/3/device/{GOOD}")])
        raw.sock.sendall(raw.conn.data_to_send())  # headers only: the request is not complete
        time.sleep(0.2)
        _reset(raw, sid)
        second = raw.push()
        raw.read_until(lambda ev: second in raw.statuses())
        raw.close()
    assert raw.statuses() == {second: "200"}  # not refused: the abandoned stream no longer counts


def test_a_stream_reset_while_its_answer_is_delayed_is_counted_off_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 80
    with Emulator(tmp_path, latency_ms=400, max_concurrent_streams=limit) as emu:
        raw = RawH2(emu)
        raw.read_until(lambda ev: len(raw.stream_limits()) >= 1)
        _reset(raw, raw.push())  # h2 forgets the closed stream before its delayed answer is due
        batch = [raw.push() for _ in range(limit - 1)]
        raw.read_until(lambda ev: all(sid in raw.statuses() for sid in batch))
        again = [raw.push() for _ in range(limit)]  # the whole limit is free again
        raw.read_until(lambda ev: all(sid in raw.statuses() for sid in again))
        raw.close()
    statuses = raw.statuses()
    assert [statuses.get(sid) for sid in batch + again] == ["200"] * (2 * limit - 1)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_dropped_connection_records_nothing(tmp_path: Path) -> None:
    with Emulator(tmp_path, drop_after=1) as emu, client(emu) as c, pytest.raises(httpx.TransportError):
        push(c, emu)
    assert emu.inbox.total() == 0


def test_idle_timeout_sends_goaway_with_reason(tmp_path: Path) -> None:
    with Emulator(tmp_path, idle_timeout=0.3) as emu:
        raw = RawH2(emu)
        events = raw.read_until(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
        raw.close()
    [goaway] = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert b'"IdleTimeout"' in goaway.additional_data


def test_error_rates_are_deterministic_with_a_seed(tmp_path: Path) -> None:
    errors = [{"status": 429, "rate": 0.2, "retry_after": 1}, {"status": 500, "rate": 0.1}]

    def run(seed: int, where: str) -> tuple[list[int], int]:
        with Emulator(tmp_path / where, seed=seed, errors=errors) as emu, client(emu) as c:
            codes = [push(c, emu).status_code for _ in range(40)]
            return codes, emu.inbox.total()

    first, delivered = run(7, "a")
    again, _ = run(7, "b")
    other, _ = run(8, "c")
    assert first == again
    assert first != other
    assert set(first) == {200, 429, 500}
    assert delivered == first.count(200)  # injected errors never reach the inbox


def test_latency_is_applied(tmp_path: Path) -> None:
    with Emulator(tmp_path, latency_ms=150) as emu, client(emu) as c:
        push(c, emu)  # connection set-up outside the measurement
        start = time.monotonic()
        assert push(c, emu).status_code == 200
        assert time.monotonic() - start >= 0.15


def test_failing_token_endpoint(tmp_path: Path) -> None:
    with Emulator(tmp_path, token_error_rate=1.0, token_error_status=503) as emu, client(emu) as c:
        r = c.post(emu.token_uri, data={"grant_type": "x"})
    assert r.status_code == 503


def test_sample_scenarios_load(tmp_path: Path) -> None:
    files = sorted((REPO / "samples" / "scenarios").glob("*.toml"))
    assert files
    for path in files:
        scenario = Scenario.load(path)
        with Emulator(tmp_path / path.stem, scenario=scenario) as emu:
            assert emu.apns_url.startswith("https://127.0.0.1:")


def test_scenario_typos_are_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[faults]\ngoaway_afer = 3\n")
    with pytest.raises(InputError, match="goaway_afer"):
        Scenario.load(bad)


def test_scenario_registry_and_token_file(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("# pruned devices\n" + "cd" * 32 + "\n")
    path = tmp_path / "s.toml"
    path.write_text(
        'seed = 3\n[registry]\nnot_for_topic = ["'
        + "ef" * 32
        + '"]\n[registry.files]\nunregistered = "gone.txt"\n'
    )
    with Emulator(tmp_path / "state", scenario=Scenario.load(path)) as emu, client(emu) as c:
        gone = push(c, emu, "cd" * 32)
        other = push(c, emu, "ef" * 32)
    assert (gone.status_code, gone.json()["reason"]) == (410, "Unregistered")
    assert other.json()["reason"] == "DeviceTokenNotForTopic"
