from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl import paths
from pushctl.cli.app import app
from pushctl.errors import ExitCode


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env, terminal_width=200)
    # Rich wraps stderr at the console width; unwrap so messages can be matched whole.
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_init_writes_private_commented_file_and_show_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    code, out, err = run("--config", str(path), "config", "init")
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.count("\n#") > 20  # the starter explains its keys
    for name in ("[profiles.default.apns]", "profiles.staging", "profiles.production"):
        assert name in text

    code, out, err = run("--config", str(path), "config", "set", "apns.cert_file", "push.p12",
                         env={"PUSHCTL_APNS_CERT_PASSWORD": "hunter2-secret"})
    assert code == 0, err
    assert "# cert_file" not in path.read_text()  # the commented example line was filled in
    code, out, err = run("--config", str(path), "-o", "json", "config", "show",
                         env={"PUSHCTL_APNS_CERT_PASSWORD": "hunter2-secret"})
    assert code == 0, err
    data = json.loads(out)
    assert len(out.strip().splitlines()) == 1
    assert data["source"] == str(path)
    assert data["profile"] == "default"
    assert data["apns"]["environment"] == "sandbox"
    assert data["apns"]["cert_file"] == str(Path.cwd() / "push.p12")  # relative to where it was typed
    assert data["apns"]["cert_password_env"] == "PUSHCTL_APNS_CERT_PASSWORD"
    assert "hunter2" not in out + err


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("# mine\n")
    code, _, err = run("--config", str(path), "config", "init")
    assert code == ExitCode.USAGE
    assert "--force" in err and str(path) in err
    assert path.read_text() == "# mine\n"
    code, _, _ = run("--config", str(path), "config", "init", "--force")
    assert code == 0
    assert "default_profile" in path.read_text()


def test_init_uses_profile_name_and_xdg_default() -> None:
    code, out, err = run("--profile", "staging", "config", "init")
    assert code == 0, err
    path = paths.default_config_file()
    assert 'default_profile = "staging"' in path.read_text()
    code, out, err = run("-o", "json", "config", "path")
    assert json.loads(out) == {"path": str(path), "exists": True}


def test_show_table_marks_env_overrides(samples: Path) -> None:
    code, out, err = run("--config", str(samples / "config.toml"), "-o", "table", "config", "show",
                         env={"PUSHCTL_APNS_TOPIC": "com.example.override"})
    assert code == 0, err
    assert "com.example.override" in out
    assert "$PUSHCTL_APNS_TOPIC" in out
    assert str(samples / "config.toml") in out


def test_show_without_any_config_uses_defaults() -> None:
    code, out, err = run("-o", "json", "config", "show")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] is None
    assert data["apns"]["url"] == "https://api.push.apple.com"


def test_show_reports_errors_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[profiles.default.apns]\ntopik = 'x'\n")
    code, out, err = run("--config", str(path), "config", "show")
    assert code == ExitCode.USAGE
    assert out == ""
    assert f"{path}:2: field 'profiles.default.apns.topik'" in err
    assert "Traceback" not in err


def test_unknown_profile_via_env(tmp_path: Path, samples: Path) -> None:
    code, _, err = run("--config", str(samples / "config.toml"), "config", "show",
                       env={"PUSHCTL_PROFILE": "nope"})
    assert code == ExitCode.USAGE
    assert "emulator" in err


@pytest.mark.parametrize("via_env", [False, True])
def test_set_then_path(tmp_path: Path, via_env: bool) -> None:
    path = tmp_path / "c.toml"
    args = [] if via_env else ["--config", str(path)]
    env = {"PUSHCTL_CONFIG": str(path)} if via_env else None
    code, out, err = run(*args, "config", "set", "sender.concurrency", "12", env=env)
    assert code == 0, err
    assert "concurrency = 12" in path.read_text()
    code, out, err = run(*args, "-o", "table", "config", "path", env=env)
    assert out.strip() == str(path)
    code, out, err = run(*args, "config", "set", "sender.concurrency", "twelve", env=env)
    assert code == ExitCode.USAGE
    assert "number" in err


def test_set_stores_a_relative_path_absolute_against_the_current_directory(
    tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "elsewhere" / "y.toml"
    monkeypatch.chdir(samples)
    code, _, err = run("--config", str(config), "config", "set", "apns.key_file",
                       "credentials/AuthKey_EMU0000001.p8")
    assert code == 0, err
    key = samples / "credentials" / "AuthKey_EMU0000001.p8"
    assert f'key_file = "{key}"' in config.read_text()
    assert f"set apns.key_file = {key} in {config}" in err
    code, _, err = run("--config", str(config), "config", "set", "fcm.service_account",
                       "../samples/./credentials/service-account.json")
    assert code == 0, err
    code, out, err = run("--config", str(config), "-o", "json", "config", "show")
    assert code == 0, err
    data = json.loads(out)
    assert data["apns"]["key_file"] == str(key)
    assert data["fcm"]["service_account"] == str(samples / "credentials" / "service-account.json")


def test_set_keeps_home_relative_and_absolute_paths_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "y.toml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert run("--config", str(config), "config", "set", "apns.key_file", "~/keys/AuthKey.p8")[0] == 0
    assert run("--config", str(config), "config", "set", "ca_file", "/etc/pushctl/ca.pem")[0] == 0
    assert run("--config", str(config), "config", "set", "apns.topic", "com.example.app")[0] == 0
    text = config.read_text()
    assert 'key_file = "~/keys/AuthKey.p8"' in text  # kept portable, expanded when read
    assert 'ca_file = "/etc/pushctl/ca.pem"' in text and 'topic = "com.example.app"' in text
    code, out, err = run("--config", str(config), "-o", "json", "config", "show")
    assert code == 0, err
    assert json.loads(out)["apns"]["key_file"] == str(tmp_path / "home" / "keys" / "AuthKey.p8")


def test_missing_config_hint_quotes_the_whole_command(tmp_path: Path) -> None:
    path = tmp_path / "no such dir" / "y.toml"
    code, out, err = run("--config", str(path), "config", "show")
    assert code == ExitCode.USAGE
    assert out == ""
    assert f"run `pushctl config init --config '{path}'`" in err
    assert "` --config" not in err
    plain = tmp_path / "y.toml"
    code, _, err = run("--config", str(plain), "config", "show")
    assert f"run `pushctl config init --config {plain}`" in err
    # the suggested command works as printed
    assert run("--config", str(plain), "config", "init")[0] == 0
    assert run("config", "init", "--config", str(path))[0] == 0 and path.exists()
