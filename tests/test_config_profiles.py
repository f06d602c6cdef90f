from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from pushctl import paths
from pushctl.config import Profile, config_path, redacted, resolve_profile, save_profile, set_value
from pushctl.errors import ConfigError, ExitCode

BASIC = """\
default_profile = "staging"

[profiles.staging]
ca_file = "ca/emulator.pem"

[profiles.staging.apns]
environment = "sandbox"
key_file = "keys/AuthKey_ABC123DEFG.p8"
key_id = "ABC123DEFG"
team_id = "DEF123GHIJ"
topic = "com.example.staging"

[profiles.production.apns]
key_file = "/abs/AuthKey.p8"
topic = "com.example.app"

[profiles.production.fcm]
service_account = "~/keys/sa.json"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_path_precedence(tmp_path: Path) -> None:
    explicit, from_env = tmp_path / "a.toml", tmp_path / "b.toml"
    assert config_path(explicit, {"PUSHCTL_CONFIG": str(from_env)}) == explicit
    assert config_path(None, {"PUSHCTL_CONFIG": str(from_env)}) == from_env
    assert config_path(None, {}) == paths.default_config_file()
    # conftest points XDG_CONFIG_HOME at a temp dir, so the default is never the real one.
    assert paths.default_config_file() == Path(os.environ["XDG_CONFIG_HOME"]) / "pushctl" / "config.toml"


def test_xdg_default_file_is_read(tmp_path: Path) -> None:
    default = paths.default_config_file()
    default.parent.mkdir(parents=True)
    default.write_text('[profiles.default.apns]\ntopic = "from.xdg"\n')
    assert resolve_profile(None, None, {}).apns.topic == "from.xdg"
    other = write(tmp_path, '[profiles.default.apns]\ntopic = "from.env"\n')
    assert resolve_profile(None, None, {"PUSHCTL_CONFIG": str(other)}).apns.topic == "from.env"


def test_default_profile_and_relative_paths(tmp_path: Path) -> None:
    path = write(tmp_path, BASIC)
    profile = resolve_profile(path, None, {})
    assert profile.name == "staging"
    assert profile.source == path
    assert profile.apns.key_file == tmp_path / "keys/AuthKey_ABC123DEFG.p8"
    assert profile.ca_file == tmp_path / "ca/emulator.pem"
    assert profile.apns.url == "https://api.sandbox.push.apple.com"
    assert profile.apns.auth == "token"
    assert not profile.fcm.configured


def test_named_profile_absolute_and_home_paths(tmp_path: Path) -> None:
    profile = resolve_profile(write(tmp_path, BASIC), "production", {})
    assert profile.apns.key_file == Path("/abs/AuthKey.p8")
    assert profile.fcm.service_account == Path("~/keys/sa.json").expanduser()
    assert profile.apns.environment == "production"
    assert profile.apns.url == "https://api.push.apple.com"
    assert profile.fcm.url == "https://fcm.googleapis.com"


def test_env_overrides_win_over_file(tmp_path: Path) -> None:
    env = {
        "PUSHCTL_APNS_TOPIC": "com.example.env",
        "PUSHCTL_APNS_ENVIRONMENT": "production",
        "PUSHCTL_APNS_ENDPOINT": "https://127.0.0.1:2197/",
        "PUSHCTL_FCM_SERVICE_ACCOUNT": "sa.json",
        "PUSHCTL_CONCURRENCY": "64",
        "PUSHCTL_RATE": "12.5",
        "PUSHCTL_MAX_ATTEMPTS": "2",
    }
    profile = resolve_profile(write(tmp_path, BASIC), None, env)
    assert profile.apns.topic == "com.example.env"
    assert profile.apns.environment == "production"
    assert profile.apns.url == "https://127.0.0.1:2197"
    assert profile.fcm.service_account == Path("sa.json")
    assert (profile.sender.concurrency, profile.sender.rate, profile.sender.max_attempts) == (64, 12.5, 2)


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_profile(write(tmp_path, BASIC), None, {"PUSHCTL_CONCURRENCY": "lots"})
    assert info.value.field == "PUSHCTL_CONCURRENCY"
    with pytest.raises(ConfigError, match="sandbox"):
        resolve_profile(write(tmp_path, BASIC), None, {"PUSHCTL_APNS_ENVIRONMENT": "dev"})


def test_missing_file_gives_empty_default_unless_explicit(tmp_path: Path) -> None:
    profile = resolve_profile(None, None, {})
    assert profile == Profile(name="default")
    assert not profile.apns.configured
    with pytest.raises(ConfigError) as info:
        resolve_profile(tmp_path / "nope.toml", None, {})
    assert info.value.file == str(tmp_path / "nope.toml")
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(ConfigError, match="not found"):
        resolve_profile(None, "staging", {})


def test_unknown_profile_lists_existing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_profile(write(tmp_path, BASIC), "prod", {})
    assert "production, staging" in str(info.value)
    bad_default = write(tmp_path, 'x = 1\n', "other.toml")
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_profile(bad_default, None, {})
    dangling = write(tmp_path, '\ndefault_profile = "gone"\n[profiles.a]\n', "d.toml")
    with pytest.raises(ConfigError) as info:
        resolve_profile(dangling, None, {})
    assert info.value.line == 2
    assert "'gone'" in str(info.value)


def test_unknown_key_names_file_line_and_valid_keys(tmp_path: Path) -> None:
    text = BASIC.replace('topic = "com.example.staging"', 'topic = "x"\nkeyfile = "typo.p8"')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_profile(path, None, {})
    err = info.value
    assert err.field == "profiles.staging.apns.keyfile"
    assert err.line == text.splitlines().index('keyfile = "typo.p8"') + 1
    assert "key_file" in err.message
    assert str(err).startswith(f"{path}:{err.line}: field 'profiles.staging.apns.keyfile'")


def test_unknown_section_key_found_in_dotted_form(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.a]\napns.topic = "t"\nfcm.bogus = 1\n')
    with pytest.raises(ConfigError) as info:
        resolve_profile(path, "a", {})
    assert info.value.line == 3


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.a]\n\n[profiles.a.apns]\ntopic = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        resolve_profile(path, "a", {})
    assert info.value.line == 4
    assert "invalid TOML" in info.value.message
    assert "(at line" not in info.value.message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("concurrency = \"many\"", "whole number"),
        ("concurrency = true", "whole number"),
        ("max_attempts = 0", ">= 1"),
        ("rate = -1", ">= 0"),
    ],
)
def test_wrong_types(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, f"[profiles.default.sender]\n{line}\n")
    with pytest.raises(ConfigError, match=expected) as info:
        resolve_profile(path, None, {})
    assert info.value.line == 2


def test_wrong_type_for_table_and_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="table"):
        resolve_profile(write(tmp_path, '[profiles.default]\napns = "x"\n'), None, {})
    with pytest.raises(ConfigError, match="URL"):
        resolve_profile(write(tmp_path, '[profiles.default.fcm]\nendpoint = "127.0.0.1"\n'), None, {})


def test_save_profile_merges_and_is_private(tmp_path: Path) -> None:
    path = write(tmp_path, BASIC)
    profile = Profile(name="new")
    profile.apns.topic = "com.example.new"
    profile.sender.rate = 5.0
    save_profile(path, profile, make_default=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = tomllib.loads(path.read_text())
    assert doc["default_profile"] == "new"
    assert "staging" in doc["profiles"]
    loaded = resolve_profile(path, None, {})
    assert (loaded.name, loaded.apns.topic, loaded.sender.rate) == ("new", "com.example.new", 5.0)


def test_set_value_typed_and_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "# keep me\n" + BASIC)
    set_value(path, "apns.topic", "com.example.changed")
    set_value(path, "profiles.production.sender.concurrency", "32")
    set_value(path, "profiles.brand_new.apns.key_file", "k.p8")
    text = path.read_text()
    assert text.startswith("# keep me\n")
    assert resolve_profile(path, None, {}).apns.topic == "com.example.changed"
    assert resolve_profile(path, "production", {}).sender.concurrency == 32
    # typed on the command line: relative to the current directory, not the config file's
    assert resolve_profile(path, "brand_new", {}).apns.key_file == Path.cwd() / "k.p8"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_value_rejects_bad_keys_and_values(tmp_path: Path) -> None:
    path = write(tmp_path, BASIC)
    before = path.read_text()
    with pytest.raises(ConfigError, match="valid keys"):
        set_value(path, "apns.colour", "x")
    with pytest.raises(ConfigError, match="number"):
        set_value(path, "sender.rate", "fast")
    with pytest.raises(ConfigError, match="sandbox"):
        set_value(path, "apns.environment", "dev")
    assert path.read_text() == before


def test_set_value_falls_back_to_rewrite_for_dotted_layouts(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.default]\napns.topic = "a"\n')
    set_value(path, "apns.key_id", "ABC123DEFG")
    profile = resolve_profile(path, None, {})
    assert (profile.apns.topic, profile.apns.key_id) == ("a", "ABC123DEFG")


def test_redacted_hides_userinfo_and_keeps_names(tmp_path: Path) -> None:
    profile = Profile(name="p")
    profile.apns.cert_file = tmp_path / "c.p12"
    profile.apns.endpoint = "https://user:hunter2@127.0.0.1:2197"
    out = redacted(profile)
    assert "hunter2" not in repr(out)
    assert out["apns"]["cert_password_env"] == "PUSHCTL_APNS_CERT_PASSWORD"
    assert out["apns"]["cert_file"] == str(tmp_path / "c.p12")
    assert out["apns"]["url"] == "https://***@127.0.0.1:2197"


def test_sample_config_emulator_profile(samples: Path) -> None:
    profile = resolve_profile(samples / "config.toml", None, {})
    assert profile.name == "emulator"
    assert profile.apns.key_file == samples / "credentials/AuthKey_EMU0000001.p8"
    assert profile.apns.key_file.exists()
    assert profile.fcm.service_account is not None and profile.fcm.service_account.exists()
    assert profile.apns.url == "https://127.0.0.1:2197"
    assert profile.fcm.url == "https://127.0.0.1:8444"
    assert profile.apns.environment == "sandbox"
