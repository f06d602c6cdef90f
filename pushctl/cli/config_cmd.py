"""`pushctl config`: init, show, set and path for the TOML profile file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pushctl.cli.state import get_state
from pushctl.config import ENV_OVERRIDES, config_path, redacted, resolve_profile, set_value, write_private
from pushctl.errors import ConfigError

config_app = typer.Typer(
    name="config",
    help="Create, inspect and edit config profiles (TOML).",
    no_args_is_help=True,
)

STARTER = """\
# pushctl configuration (TOML). Docs: `pushctl config --help`, README "Configuration".
#
# Select a profile with --profile NAME or $PUSHCTL_PROFILE; without one, `default_profile`
# below is used. Relative paths are relative to this file's directory; ~ expands.
# (`pushctl config set` stores a relative path made absolute from the directory you run it in.)
# Every key can also come from the environment (PUSHCTL_APNS_KEY_FILE, PUSHCTL_FCM_SERVICE_ACCOUNT,
# ... see the README), which wins over this file.
# Secrets are never stored here: only paths to key files and the *name* of the environment
# variable that holds a certificate password or an HMS secret. Keep this file private (mode 0600).

default_profile = "{name}"

[profiles.{name}]
# ca_file = "~/.local/share/pushctl/emulator/ca.pem"  # extra CA to trust (TLS verification stays on)

[profiles.{name}.apns]
# Token auth (recommended): the .p8 key from developer.apple.com → Certificates, IDs & Profiles → Keys.
# key_file = "~/keys/AuthKey_ABC123DEFG.p8"
# key_id = "ABC123DEFG"                    # 10 characters, shown next to the key
# team_id = "DEF123GHIJ"                   # 10 characters, shown under Membership
# topic = "com.example.app"                # your app's bundle id (apns-topic)
# Certificate auth instead of key_file/key_id/team_id:
# cert_file = "~/keys/push.p12"            # or a PEM certificate, with cert_key_file = "key.pem"
# cert_password_env = "PUSHCTL_APNS_CERT_PASSWORD"  # env var holding the .p12 password
environment = "sandbox"                    # sandbox (development builds) | production
# endpoint = "https://127.0.0.1:2197"      # overrides the environment's Apple host (emulator)

[profiles.{name}.fcm]
# The service-account key from Firebase console → Project settings → Service accounts
# (NOT google-services.json, which is the app's client config).
# service_account = "~/keys/service-account.json"
# endpoint = "https://127.0.0.1:8444"      # instead of https://fcm.googleapis.com (emulator)
# token_uri = "https://127.0.0.1:8444/token"  # instead of the service account's token_uri

# Web Push (browsers' push services, no Firebase project): `pushctl webpush keygen ~/keys/vapid.pem`
# makes the key pair and prints the application server key your web app subscribes with.
# [profiles.{name}.webpush]
# vapid_private_key = "~/keys/vapid.pem"
# subject = "mailto:push@example.com"      # a contact for the push services (mailto: or https:)

# Huawei Push Kit: AppGallery Connect → Project settings → App information.
# [profiles.{name}.hms]
# app_id = "104523561"
# client_secret_file = "~/keys/hms-secret.txt"  # else the secret comes from $PUSHCTL_HMS_CLIENT_SECRET

[profiles.{name}.sender]
# concurrency = 500                        # requests in flight
# rate = 0                                 # notifications per second; 0 = unlimited
max_attempts = 8                           # per device, including the first try
# quiet_hours = "22:00-08:00"              # in each device's time zone
# cap = "3/24h"                            # at most 3 notifications per device per 24 hours
# default_timezone = "UTC"                 # for devices without a timezone column
# journal = "~/.local/share/pushctl/journal.sqlite3"

# How long the journal keeps each device's results (personal data): runs that ended longer ago
# lose their per-device rows at the start of each send and with `pushctl runs prune` (run
# summaries stay). Unset: kept until you prune or forget them.
# [profiles.{name}.journal]
# retention = "90d"                        # hours, days or weeks: 36h, 90d, 12w

# Users' preferences: a template's (or rule's) category that users cannot opt out of (service
# messages such as account security). Other categories follow each user's choice.
# [profiles.{name}.preferences]
# mandatory_categories = "security"

# A staging profile: uncomment and adjust. Use it with --profile staging.
# [profiles.staging.apns]
# environment = "sandbox"
# key_file = "~/keys/AuthKey_ABC123DEFG.p8"
# key_id = "ABC123DEFG"
# team_id = "DEF123GHIJ"
# topic = "com.example.app.staging"
# [profiles.staging.fcm]
# service_account = "~/keys/staging-service-account.json"

# A production profile: uncomment and adjust. Use it with --profile production.
# [profiles.production.apns]
# environment = "production"
# key_file = "~/keys/AuthKey_ABC123DEFG.p8"
# key_id = "ABC123DEFG"
# team_id = "DEF123GHIJ"
# topic = "com.example.app"
# [profiles.production.fcm]
# service_account = "~/keys/production-service-account.json"
# [profiles.production.sender]
# rate = 500
# quiet_hours = "22:00-08:00"
"""


@config_app.command("init")
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config file (mode 0600)."""
    state = get_state()
    path = config_path(state.config_path)
    if path.exists() and not force:
        raise ConfigError("config file already exists", file=path, hint="use --force to overwrite it")
    name = state.profile or "default"
    write_private(path, STARTER.format(name=name))
    if state.terminal.json:
        state.terminal.json_line({"path": str(path), "profile": name, "created": True})
    else:
        state.terminal.print(str(path))
    state.terminal.info(f"wrote {path} (profile '{name}'); next: pushctl config set apns.key_file PATH")


@config_app.command("show")
def show() -> None:
    """Print the resolved profile (file + environment), with every secret redacted."""
    state = get_state()
    profile = resolve_profile(state.config_path, state.profile)
    data = redacted(profile)
    if state.terminal.json:
        state.terminal.json_line(data)
        return
    overridden = {f"{s}.{k}" if s else k: var for var, (s, k) in ENV_OVERRIDES.items() if os.environ.get(var)}
    rows = [(key, _text(value), f"${overridden[key]}" if key in overridden else "")
            for key, value in _flatten(data) if key not in ("profile", "source")]
    source = str(profile.source) if profile.source else "no config file: built-in defaults"
    state.terminal.table(["key", "value", "from env"], rows,
                         title=f"profile {profile.name}", caption=f"source: {source}")


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


@config_app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="apns.topic (current profile) or profiles.NAME.apns.topic")],
    value: Annotated[str, typer.Argument(help="The value; numbers and paths are typed by the key.")],
) -> None:
    """Set one key in the config file (created if missing), keeping its comments."""
    state = get_state()
    path = config_path(state.config_path)
    stored = set_value(path, key, value, profile=state.profile)
    shown = f" = {stored}" if isinstance(stored, str) and stored != value else ""  # a path made absolute
    state.terminal.info(f"set {key}{shown} in {path}")


@config_app.command("path")
def path_() -> None:
    """Print the config file in use (--config, $PUSHCTL_CONFIG or the user config dir)."""
    state = get_state()
    path: Path = config_path(state.config_path)
    if state.terminal.json:
        state.terminal.json_line({"path": str(path), "exists": path.exists()})
    else:
        state.terminal.print(str(path))


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group."""
    app.add_typer(config_app)
