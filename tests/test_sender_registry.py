"""The provider registry and starting/closing providers together."""

from __future__ import annotations

import asyncio

import pytest
from test_sender_fakes import FakeProvider

import pushctl.providers as registry
from pushctl.errors import AuthRefused, ConfigError
from pushctl.providers.base import started


def test_builtin_providers_are_registered_lazily() -> None:
    assert registry.PROVIDERS == {
        "apns": "pushctl.providers.apns:create",
        "fcm": "pushctl.providers.fcm:create",
        "webpush": "pushctl.providers.webpush:create",
        "hms": "pushctl.providers.hms:create",
    }
    assert {"apns", "fcm", "webpush", "hms"} <= set(registry.available_providers())


def test_factory_is_imported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.PROVIDERS, "fake", "test_sender_fakes:FakeProvider")
    assert registry.get_provider_factory("fake") is FakeProvider


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'xiaomi'") as info:
        registry.get_provider_factory("xiaomi")
    assert "apns" in str(info.value)


class Tracking(FakeProvider):
    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(name)
        self.fail = fail
        self.state = "new"

    async def start(self) -> None:
        if self.fail:
            raise AuthRefused(f"{self.name} refused the credentials")
        self.state = "started"

    async def close(self) -> None:
        self.state = "closed"


def test_started_opens_and_closes_all() -> None:
    a, b = Tracking("apns"), Tracking("fcm")

    async def scenario() -> None:
        async with started([a, b]) as running:
            assert running == [a, b] and a.state == b.state == "started"

    asyncio.run(scenario())
    assert a.state == b.state == "closed"


def test_started_closes_the_others_when_one_is_refused() -> None:
    a, b = Tracking("apns"), Tracking("fcm", fail=True)

    async def scenario() -> None:
        async with started([a, b]):
            raise AssertionError("must not get here")

    with pytest.raises(AuthRefused, match="fcm refused"):
        asyncio.run(scenario())
    assert a.state == "closed" and b.state == "new"
