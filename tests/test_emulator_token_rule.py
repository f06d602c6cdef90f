"""TooManyProviderTokenUpdates: per connection by default, key-wide with strict-apns.toml."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_emulator_apns import client, make_jwt, push

from pushctl.emulator import Emulator, Scenario
from pushctl.errors import InputError

REPO = Path(__file__).resolve().parent.parent


def reason(r: object) -> tuple[int, str]:
    import httpx

    assert isinstance(r, httpx.Response)
    return r.status_code, r.json().get("reason", "") if r.content else ""


def test_default_rule_lets_each_connection_sign_its_own_token(tmp_path: Path) -> None:
    now = int(time.time())
    older, newer = make_jwt(iat=now - 60), make_jwt(iat=now)
    with Emulator(tmp_path / "emu") as emu, client(emu) as first:
        assert push(first, emu, auth=older).status_code == 200
        with client(emu) as second:  # a restarted process, another pod: its own fresh token
            assert push(second, emu, auth=newer).status_code == 200
        # Replacing the token on the same connection within 20 minutes is what APNs refuses.
        assert reason(push(first, emu, auth=newer)) == (429, "TooManyProviderTokenUpdates")
        assert push(first, emu, auth=older).status_code == 200  # the current token still works


def test_strict_rule_refuses_a_new_token_for_the_key_from_anywhere(tmp_path: Path) -> None:
    now = int(time.time())
    older, newer = make_jwt(iat=now - 60), make_jwt(iat=now)
    scenario = Scenario.load(REPO / "samples" / "scenarios" / "strict-apns.toml")
    assert scenario.options.token_update_rule == "key"
    with Emulator(tmp_path / "emu", scenario=scenario) as emu:
        with client(emu) as first:
            assert push(first, emu, auth=older).status_code == 200
        with client(emu) as second:
            assert reason(push(second, emu, auth=newer)) == (429, "TooManyProviderTokenUpdates")
            assert push(second, emu, auth=older).status_code == 200  # reusing the current token is fine


@pytest.mark.parametrize("rule", ["connection", "key"])
def test_a_token_update_after_the_interval_is_accepted(tmp_path: Path, rule: str) -> None:
    now = int(time.time())
    with (
        Emulator(tmp_path / "emu", token_update_rule=rule, token_update_interval=30) as emu,
        client(emu) as c,
    ):
        assert push(c, emu, auth=make_jwt(iat=now - 100)).status_code == 200
        assert push(c, emu, auth=make_jwt(iat=now - 70)).status_code == 200  # 30 s later: allowed
        assert reason(push(c, emu, auth=make_jwt(iat=now - 50))) == (429, "TooManyProviderTokenUpdates")


def test_unknown_rule_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[options]\ntoken_update_rule = "pod"\n')
    with pytest.raises(InputError) as info:
        Scenario.load(path)
    assert "token_update_rule" in str(info.value) and info.value.hint == "use connection or key"
