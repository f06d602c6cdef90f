"""Profiles in and out: the TOML config file read into a :class:`Profile` (with environment
overrides and validation), and written back (``config init`` / ``config set``) keeping the user's
comments, with mode 0600.
"""

from pushctl.config.edit import save_profile, set_in_text, set_value, write_private
from pushctl.config.profiles import (
    ENV_OVERRIDES,
    PROVIDER_SECTIONS,
    JournalSettings,
    Profile,
    config_path,
    parse_age,
    redacted,
    resolve_profile,
)
from pushctl.config.sections import HmsSettings, WebPushSettings

__all__ = [
    "ENV_OVERRIDES",
    "PROVIDER_SECTIONS",
    "HmsSettings",
    "JournalSettings",
    "Profile",
    "WebPushSettings",
    "config_path",
    "parse_age",
    "redacted",
    "resolve_profile",
    "save_profile",
    "set_in_text",
    "set_value",
    "write_private",
]
