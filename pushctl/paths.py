"""Where pushctl keeps its files (XDG base directories on Linux)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value:
        return Path(value)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path.home() / fallback


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/pushctl`` (``~/.config/pushctl``)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "pushctl"


def data_dir() -> Path:
    """``$XDG_DATA_HOME/pushctl`` (``~/.local/share/pushctl``): journal, emulator state."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "pushctl"


def default_config_file() -> Path:
    return config_dir() / "config.toml"


def default_journal_file() -> Path:
    return data_dir() / "journal.sqlite3"


def default_emulator_state_dir() -> Path:
    return data_dir() / "emulator"
