"""The emulator's rate limits (issue 11): per-second project quotas on both sides, per-device 429s
on FCM, and injected errors with their own FCM message; plus the fixed windows behind them."""

from __future__ import annotations

from pathlib import Path

from test_emulator_apns import GOOD, push
from test_emulator_apns import client as apns_client
from test_emulator_fcm import TOKEN, error_code, get_token, send
from test_emulator_fcm import client as fcm_client

from pushctl.emulator import Emulator
from pushctl.emulator.scenario import RateWindows


def test_rate_windows_refuse_above_the_limit_until_the_window_ends() -> None:
    now = [100.0]
    windows = RateWindows(clock=lambda: now[0])
    assert [windows.refuse("p", 2, 1.0) for _ in range(3)] == [None, None, 1]
    now[0] = 100.4
    assert windows.refuse("p", 2, 1.0) == 1  # 0.6 s left: a whole second in Retry-After
    assert windows.refuse("other", 2, 1.0) is None  # keys are independent
    now[0] = 101.0
    assert windows.refuse("p", 2, 1.0) is None  # a new window
    now[0] = 101.5
    assert windows.refuse("m", 1, 60.0) is None and windows.refuse("m", 1, 60.0) == 60
    assert windows.refuse("p", 0, 1.0) is None  # 0 = unlimited


def test_fcm_per_second_project_quota_answers_429_with_retry_after(tmp_path: Path) -> None:
    with Emulator(tmp_path, fcm_quota_per_second=3) as emu, fcm_client(emu) as c:
        access = get_token(c, emu).json()["access_token"]
        answers = [send(c, emu, access=access) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    refused = answers[-1]
    assert error_code(refused) == "QUOTA_EXCEEDED"
    assert refused.headers["retry-after"] == "1"
    assert "device" not in refused.json()["error"]["message"].lower()  # the project's quota
    assert emu.inbox.total() == 3


def test_apns_side_quota_refuses_every_token_with_retry_after(tmp_path: Path) -> None:
    with Emulator(tmp_path, apns_quota_per_second=2) as emu, apns_client(emu) as c:
        answers = [push(c, emu, GOOD[:-2] + f"{i:02x}") for i in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 429, 429]
    assert answers[2].json()["reason"] == "TooManyRequests"
    assert answers[2].headers["retry-after"] == "1"


def test_fcm_device_rate_limit_names_the_device(tmp_path: Path) -> None:
    with Emulator(tmp_path, device_rate_limit=1) as emu, fcm_client(emu) as c:
        access = get_token(c, emu).json()["access_token"]
        first, again = send(c, emu, access=access), send(c, emu, access=access)
        other = send(c, emu, {"token": TOKEN + "b", "data": {"k": "v"}}, access=access)
    assert (first.status_code, again.status_code, other.status_code) == (200, 429, 200)
    assert error_code(again) == "QUOTA_EXCEEDED"
    assert again.json()["error"]["message"] == "Device message rate exceeded."
    assert "retry-after" not in again.headers


def test_an_injected_error_may_carry_its_own_message(tmp_path: Path) -> None:
    fault = {"status": 429, "rate": 1.0, "retry_after": 2, "provider": "fcm",
             "message": "Device message rate exceeded."}
    with Emulator(tmp_path, errors=[fault]) as emu, fcm_client(emu) as c:
        r = send(c, emu)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert error_code(r) == "QUOTA_EXCEEDED"
    assert r.json()["error"]["message"] == "Device message rate exceeded."
