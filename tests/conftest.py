"""Shared fixtures. Every test runs with its own config and data directories,
so no test reads or writes the user's real ~/.config/pushctl or journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(autouse=True)
def isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for var in ("PUSHCTL_CONFIG", "PUSHCTL_PROFILE", "NO_COLOR", "PUSHCTL_NOW"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running in-process emulator (APNs + FCM on free loopback ports, its own CA and state dir).

    Yields a :class:`pushctl.emulator.Emulator`; tests needing options build their own
    ``Emulator(tmp_path, **options)`` instead.
    """
    from pushctl.emulator import Emulator

    with Emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(autouse=True)
def collect_garbage_after_test() -> Iterator[None]:
    """Collect garbage at the end of every test, so an unclosed socket or transport is reported
    (warnings are errors) by the test that leaked it, not by whichever test runs when the
    collector happens to fire."""
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis-protocol server for this test session (see tests/redis_support.py)."""
    from redis_support import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()
