"""Config profiles: TOML in (tomllib), environment overrides; TOML out is in ``config_edit``.

A profile is resolved in this order (later wins):

1. the ``[profiles.<name>]`` table of the config file (``--config``, else ``$PUSHCTL_CONFIG``,
   else ``$XDG_CONFIG_HOME/pushctl/config.toml``); the name comes from ``--profile`` /
   ``$PUSHCTL_PROFILE``, else the file's ``default_profile``, else ``default``;
2. the environment variables below.

=============================  ==============================  ==========================================
variable                       overrides                       example
=============================  ==============================  ==========================================
PUSHCTL_APNS_KEY_FILE          ``apns.key_file``               ``~/keys/AuthKey_ABC123DEFG.p8``
PUSHCTL_APNS_KEY_ID            ``apns.key_id``                 ``ABC123DEFG``
PUSHCTL_APNS_TEAM_ID           ``apns.team_id``                ``DEF123GHIJ``
PUSHCTL_APNS_TOPIC             ``apns.topic``                  ``com.example.app``
PUSHCTL_APNS_ENVIRONMENT       ``apns.environment``            ``sandbox`` or ``production``
PUSHCTL_APNS_ENDPOINT          ``apns.endpoint``               ``https://127.0.0.1:2197``
PUSHCTL_APNS_CERT_FILE         ``apns.cert_file``              ``~/keys/push.p12``
PUSHCTL_APNS_CERT_KEY_FILE     ``apns.cert_key_file``          ``~/keys/push-key.pem``
PUSHCTL_FCM_SERVICE_ACCOUNT    ``fcm.service_account``         ``~/keys/service-account.json``
PUSHCTL_FCM_ENDPOINT           ``fcm.endpoint``                ``https://127.0.0.1:8444``
PUSHCTL_FCM_TOKEN_URI          ``fcm.token_uri``               ``https://127.0.0.1:8444/token``
PUSHCTL_WEBPUSH_VAPID_PRIVATE_KEY ``webpush.vapid_private_key`` ``~/keys/vapid.pem``
PUSHCTL_WEBPUSH_SUBJECT        ``webpush.subject``             ``mailto:push@example.com``
PUSHCTL_WEBPUSH_ENDPOINT       ``webpush.endpoint``            ``https://127.0.0.1:8445`` (every subscription)
PUSHCTL_HMS_APP_ID             ``hms.app_id``                  ``104523561``
PUSHCTL_HMS_CLIENT_SECRET_FILE ``hms.client_secret_file``      ``~/keys/hms-secret.txt``
PUSHCTL_HMS_ENDPOINT           ``hms.endpoint``                ``https://127.0.0.1:8446``
PUSHCTL_HMS_TOKEN_URL          ``hms.token_url``               ``https://127.0.0.1:8446/oauth2/v3/token``
PUSHCTL_CA_FILE                ``ca_file``                     ``~/.local/share/pushctl/emulator/ca.pem``
PUSHCTL_CONCURRENCY            ``sender.concurrency``          ``500``
PUSHCTL_RATE                   ``sender.rate``                 ``1000`` (per second; 0 = unlimited)
PUSHCTL_MAX_ATTEMPTS           ``sender.max_attempts``         ``5``
=============================  ==============================  ==========================================

The ``.p12`` / PEM key password is never a CLI argument and never stored in the file: it is
read from the variable named by ``apns.cert_password_env`` (default
``PUSHCTL_APNS_CERT_PASSWORD``), else asked for interactively. Likewise the HMS client secret:
``hms.client_secret_file``, else the variable named by ``hms.client_secret_env`` (default
``PUSHCTL_HMS_CLIENT_SECRET``).

Relative paths in the file are relative to the file's directory; ``~`` expands everywhere.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from pushctl import paths
from pushctl.config.sections import (
    ENVIRONMENTS,
    ApnsSettings,
    FcmSettings,
    HmsSettings,
    PreferencesSettings,
    SenderSettings,
    WebPushSettings,
)
from pushctl.errors import ConfigError, clip
from pushctl.inputs import CONFIG_MAX_BYTES, load_toml, read_bounded_text


@dataclass
class JournalSettings:
    """The ``[profiles.<name>.journal]`` table: how long the journal keeps personal data."""

    retention: str | None = None
    """e.g. ``90d``: the per-device rows of runs that ended longer ago are deleted at the start of
    each ``pushctl send`` and by ``pushctl runs prune`` (run summaries are kept)."""

    @property
    def retention_period(self) -> timedelta | None:
        return parse_age(self.retention, field="journal.retention") if self.retention else None


_AGE = re.compile(r"(\d{1,6})\s*([hdw])")  # 999,999 weeks: past that, timedelta overflows
_AGE_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, *, field: str | None = None) -> timedelta:
    """``90d``, ``12w`` or ``36h`` (hours, days, weeks; > 0) as a timedelta; ConfigError otherwise."""
    m = _AGE.fullmatch(text.strip().lower())
    if m is None or int(m.group(1)) == 0:
        raise ConfigError(f"not an age: {clip(text, quote=True)}", field=field,
                          hint="a whole number of hours, days or weeks, e.g. 36h, 90d, 12w")
    return timedelta(seconds=int(m.group(1)) * _AGE_UNITS[m.group(2)])


@dataclass
class Profile:
    """One resolved profile; ``source`` is the file it came from (None: no file)."""

    name: str
    apns: ApnsSettings = field(default_factory=ApnsSettings)
    fcm: FcmSettings = field(default_factory=FcmSettings)
    webpush: WebPushSettings = field(default_factory=WebPushSettings)
    hms: HmsSettings = field(default_factory=HmsSettings)
    ca_file: Path | None = None
    sender: SenderSettings = field(default_factory=SenderSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    preferences: PreferencesSettings = field(default_factory=PreferencesSettings)
    source: Path | None = None


SECTIONS: dict[str, type[Any]] = {
    "apns": ApnsSettings,
    "fcm": FcmSettings,
    "webpush": WebPushSettings,
    "hms": HmsSettings,
    "sender": SenderSettings,
    "journal": JournalSettings,
    "preferences": PreferencesSettings,
}
PROVIDER_SECTIONS = ("apns", "fcm", "webpush", "hms")
"""Sections whose ``configured`` says pushctl may send to that provider (registry names)."""
PROFILE_KEYS = ("ca_file", *SECTIONS)
TOP_KEYS = ("default_profile", "profiles")
_PATH_FIELDS = {"key_file", "cert_file", "cert_key_file", "service_account", "journal", "ca_file",
                "vapid_private_key", "client_secret_file"}
_URL_FIELDS = {"endpoint", "token_uri", "token_url", "channels_endpoint"}
_INT_FIELDS = {"concurrency", "max_attempts"}
_FLOAT_FIELDS = {"rate"}

ENV_OVERRIDES: dict[str, tuple[str | None, str]] = {
    "PUSHCTL_APNS_KEY_FILE": ("apns", "key_file"),
    "PUSHCTL_APNS_KEY_ID": ("apns", "key_id"),
    "PUSHCTL_APNS_TEAM_ID": ("apns", "team_id"),
    "PUSHCTL_APNS_TOPIC": ("apns", "topic"),
    "PUSHCTL_APNS_ENVIRONMENT": ("apns", "environment"),
    "PUSHCTL_APNS_ENDPOINT": ("apns", "endpoint"),
    "PUSHCTL_APNS_CERT_FILE": ("apns", "cert_file"),
    "PUSHCTL_APNS_CERT_KEY_FILE": ("apns", "cert_key_file"),
    "PUSHCTL_FCM_SERVICE_ACCOUNT": ("fcm", "service_account"),
    "PUSHCTL_FCM_ENDPOINT": ("fcm", "endpoint"),
    "PUSHCTL_FCM_TOKEN_URI": ("fcm", "token_uri"),
    "PUSHCTL_WEBPUSH_VAPID_PRIVATE_KEY": ("webpush", "vapid_private_key"),
    "PUSHCTL_WEBPUSH_SUBJECT": ("webpush", "subject"),
    "PUSHCTL_WEBPUSH_ENDPOINT": ("webpush", "endpoint"),
    "PUSHCTL_HMS_APP_ID": ("hms", "app_id"),
    "PUSHCTL_HMS_CLIENT_SECRET_FILE": ("hms", "client_secret_file"),
    "PUSHCTL_HMS_ENDPOINT": ("hms", "endpoint"),
    "PUSHCTL_HMS_TOKEN_URL": ("hms", "token_url"),
    "PUSHCTL_CA_FILE": (None, "ca_file"),
    "PUSHCTL_CONCURRENCY": ("sender", "concurrency"),
    "PUSHCTL_RATE": ("sender", "rate"),
    "PUSHCTL_MAX_ATTEMPTS": ("sender", "max_attempts"),
    "PUSHCTL_MANDATORY_CATEGORIES": ("preferences", "mandatory_categories"),
}


def config_path(explicit: Path | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """The config file to use: ``--config``, else ``$PUSHCTL_CONFIG``, else the XDG default."""
    if explicit is not None:
        return explicit.expanduser()
    if env.get("PUSHCTL_CONFIG"):
        return Path(env["PUSHCTL_CONFIG"]).expanduser()
    return paths.default_config_file()


def load_document(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a config file; ConfigError with file and line for syntax errors."""
    if not os.path.lexists(path):
        raise ConfigError("config file not found", file=path, hint="run `pushctl config init`")
    text = read_bounded_text(path, what="config file", limit=CONFIG_MAX_BYTES, error=ConfigError)
    doc = load_toml(text, file=path, error=ConfigError)
    for key in doc:
        if key not in TOP_KEYS:
            raise _unknown_key(path, text, (), key, TOP_KEYS)
    if "default_profile" in doc and not isinstance(doc["default_profile"], str):
        raise ConfigError("must be a string", file=path, line=find_key_line(text, (), "default_profile"),
                          field="default_profile")
    if not isinstance(doc.get("profiles", {}), dict):
        raise ConfigError("must be a table", file=path, field="profiles")
    return doc, text


def resolve_profile(path: Path | None, name: str | None, env: Mapping[str, str] = os.environ) -> Profile:
    """Load the named profile (or the file's default) and apply environment overrides.

    ``path`` None means ``$PUSHCTL_CONFIG`` or the XDG default; a missing file is an
    error only when it was given explicitly or a profile other than ``default`` was asked for.
    """
    explicit = path is not None or bool(env.get("PUSHCTL_CONFIG"))
    file = config_path(path, env)
    if not file.exists():
        if explicit or (name is not None and name != "default"):
            hint = "run `pushctl config init" + (f" --config {shlex.quote(str(file))}`" if explicit else "`")
            raise ConfigError("config file not found", file=file, hint=hint)
        return _apply_env(Profile(name="default"), env)
    doc, text = load_document(file)
    profiles = doc.get("profiles", {})
    chosen = name or doc.get("default_profile") or "default"
    if chosen not in profiles:
        if name is None and chosen == "default":
            # No profile selected anywhere: commands that need none (render, emulator) still work.
            return _apply_env(Profile(name="default", source=file), env)
        known = ", ".join(sorted(profiles)) or "none"
        line = find_key_line(text, (), "default_profile") if name is None else None
        raise ConfigError(f"unknown profile '{clip(chosen)}' (profiles in this file: {known})",
                          file=file, line=line, field=None if name else "default_profile")
    profile = _build_profile(file, text, chosen, profiles[chosen])
    return _apply_env(profile, env)


def _build_profile(file: Path, text: str, name: str, table: Any) -> Profile:
    where: tuple[str, ...] = ("profiles", name)
    if not isinstance(table, dict):
        raise ConfigError("profile must be a table", file=file, field=f"profiles.{name}")
    profile = Profile(name=name, source=file)
    for key, value in table.items():
        if key not in PROFILE_KEYS:
            raise _unknown_key(file, text, where, key, PROFILE_KEYS)
        if key == "ca_file":
            profile.ca_file = cast(Path, _convert(file, text, where, key, value, file.parent))
            continue
        if not isinstance(value, dict):
            raise ConfigError("must be a table", file=file, line=find_key_line(text, where, key),
                              field=f"profiles.{name}.{key}")
        settings = getattr(profile, key)
        valid = tuple(f.name for f in fields(settings))
        for sub, subvalue in value.items():
            if sub not in valid:
                raise _unknown_key(file, text, (*where, key), sub, valid)
            setattr(settings, sub, _convert(file, text, (*where, key), sub, subvalue, file.parent))
    return profile


def _unknown_key(
    file: Path, text: str, where: tuple[str, ...], key: str, valid: tuple[str, ...]
) -> ConfigError:
    dotted = ".".join((*where, key))
    return ConfigError(f"unknown key (valid keys here: {', '.join(valid)})", file=file,
                       line=find_key_line(text, where, key), field=dotted)


def _convert(
    file: Path | str, text: str, where: tuple[str, ...], key: str, value: Any, base: Path | None
) -> Any:
    """Check a file or environment value's type and turn it into the field's Python type."""
    dotted = ".".join((*where, key))

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, got {clip(value, quote=True)}", file=file,
                           line=find_key_line(text, where, key) if text else None, field=dotted)

    if key in _INT_FIELDS:
        low = 1 if key == "max_attempts" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise fail(f"a whole number >= {low}")
        return value
    if key == "mandatory_categories" and isinstance(value, list):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail("a list of category names")
        return ", ".join(v.strip() for v in value)
    if key in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise fail("a number >= 0")
        return float(value)
    if not isinstance(value, str) or not value:
        raise fail("a non-empty string")
    if key == "environment" and value not in ENVIRONMENTS:
        raise fail("'sandbox' or 'production'")
    if key == "retention":
        try:
            parse_age(value)
        except ConfigError:
            raise fail("an age such as 90d, 12w or 36h") from None
    if key in _URL_FIELDS:
        if not value.startswith(("https://", "http://")):
            raise fail("an https:// URL")
        return value.rstrip("/") if key.endswith("endpoint") else value
    if key == "subject" and not value.startswith(("mailto:", "https://")):
        raise fail("a mailto: or https: contact (the VAPID 'sub' claim)")
    if key in _PATH_FIELDS:
        p = Path(value).expanduser()
        return base / p if base is not None and not p.is_absolute() else p
    return value


def _apply_env(profile: Profile, env: Mapping[str, str]) -> Profile:
    for var, (section, key) in ENV_OVERRIDES.items():
        raw = env.get(var)
        if not raw:
            continue
        value: Any = raw
        if key in _INT_FIELDS | _FLOAT_FIELDS:
            try:
                value = int(raw) if key in _INT_FIELDS else float(raw)
            except ValueError:
                raise ConfigError(f"expected a number, got {clip(raw, quote=True)}", field=var) from None
        try:
            value = _convert(f"${var}", "", (), key, value, None)
        except ConfigError as exc:
            raise ConfigError(exc.message, field=var) from None
        setattr(profile if section is None else getattr(profile, section), key, value)
    return profile


# -- the profile as a table (shown by `redacted`, written by config_edit) --


def profile_table(profile: Profile) -> dict[str, Any]:
    """The profile as a TOML-ready table (None values left out, paths as strings)."""
    table: dict[str, Any] = {}
    if profile.ca_file is not None:
        table["ca_file"] = str(profile.ca_file)
    for section in SECTIONS:
        settings = getattr(profile, section)
        sub = {f.name: _plain(getattr(settings, f.name)) for f in fields(settings)
               if getattr(settings, f.name) is not None}
        if sub:
            table[section] = sub
    return table


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


# -- locating keys in the text (tomllib gives no positions) -------------------

_HEADER = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def _split_key(raw: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in raw.split("."))


def find_key_line(text: str, where: tuple[str, ...], key: str) -> int | None:
    """1-based line where ``where.key`` is assigned or its table starts (best effort)."""
    target = (*where, key)
    header: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        if m := _HEADER.match(line):
            header = _split_key(m.group(1))
            if header[: len(target)] == target:
                return number
        elif (m := _ASSIGN.match(line)) and (*header, *_split_key(m.group(1)))[: len(target)] == target:
            return number
    return None


def redacted(profile: Profile) -> dict[str, Any]:
    """The resolved profile for display. Profiles hold file *paths* and env var *names* only,
    never key material; URLs lose any ``user:password@`` part all the same."""
    out: dict[str, Any] = {"profile": profile.name, "source": str(profile.source) if profile.source else None}
    table = profile_table(profile)
    out["ca_file"] = table.get("ca_file")
    for section in SECTIONS:
        out[section] = {k: _strip_userinfo(v) if isinstance(v, str) else v
                        for k, v in table.get(section, {}).items()}
    out["apns"]["url"] = _strip_userinfo(profile.apns.url)
    out["apns"]["cert_password_env"] = profile.apns.password_env if profile.apns.cert_file else None
    out["fcm"]["url"] = _strip_userinfo(profile.fcm.url)
    if profile.hms.configured:
        out["hms"]["url"] = _strip_userinfo(profile.hms.url)
        out["hms"]["client_secret_env"] = None if profile.hms.client_secret_file else profile.hms.secret_env
    return out


def _strip_userinfo(value: str) -> str:
    return re.sub(r"^(https?://)[^/@]*@", r"\1***@", value)
