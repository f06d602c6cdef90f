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
