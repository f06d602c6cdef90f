"""Issue 11, defect 6: the smaller ones, each through the CLI as a user meets it.

(`runs show` after a resume is in test_runs_resume_rate.py; `tokens check /dev/zero` in
test_inputs_hostile_cli.py.)"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.credentials import permission_warning

REPO = Path(__file__).resolve().parent.parent
WELCOME = str(REPO / "samples" / "templates" / "welcome.yaml")
AUDIENCE = str(REPO / "samples" / "audience.csv")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.stdout, result.stderr


def test_render_of_a_header_only_csv_says_there_are_no_rows(tmp_path: Path) -> None:
    audience = tmp_path / "a.csv"
    audience.write_text("token,platform,name\n")
    code, out, err = invoke("render", WELCOME, "--audience", str(audience))
    assert code == 2
    assert out == ""
    assert err.strip() == f"error: {audience}: the audience has no device rows (add rows below the header)"


def test_render_with_a_filter_matching_nothing_says_why(tmp_path: Path) -> None:
    audience = tmp_path / "a.txt"
    audience.write_text("ab" * 32 + "\n")
    code, out, err = invoke("render", WELCOME, "--audience", str(audience), "--platform", "android")
    assert code == 0 and out == ""
    assert "no device to render: no android device among the 1 rows" in err


def _profile_with_key(tmp_path: Path, key_file: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "p"\n[profiles.p.apns]\n'
        f'key_file = "{key_file}"\nkey_id = "ABCDEFGHIJ"\nteam_id = "ABCDEFGHIJ"\ntopic = "com.example.app"\n'
    )
    return config


def test_credentials_check_on_a_directory_gives_no_chmod_advice(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    code, out, err = invoke("--config", str(_profile_with_key(tmp_path, keys), ), "-o", "json",
                            "credentials", "check")
    assert code == 3
    assert "is a directory" in out
    assert "chmod" not in out + err
    assert "1 check, 1 failed" in err and "1 checks" not in err
    assert permission_warning(keys) is None
    assert permission_warning(Path("/dev/null")) is None


def test_credentials_check_counts_in_good_english(tmp_path: Path) -> None:
    key = REPO / "samples" / "credentials" / "AuthKey_EMU0000001.p8"
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "p"\n[profiles.p.apns]\n'
        f'key_file = "{key}"\nkey_id = "EMU0000001"\nteam_id = "EMUTEAM001"\ntopic = "com.example.app"\n'
    )
    code, _, err = invoke("--config", str(config), "-o", "json", "credentials", "check")
    assert code == 0
    assert "1 check, all ok" in err


def test_a_huge_where_identifier_is_not_echoed_whole() -> None:
    where = "x" * 100_000 + " ~ 1"
    code, out, err = invoke("send", WELCOME, "--audience", AUDIENCE, "--dry-run", "--emulator",
                            "--where", where)
    assert code == 2 and out == ""
    assert "unexpected character '~' at column 100002" in err
    assert max(len(line) for line in err.splitlines()) < 200
    assert "…" in err  # the cut is marked


def test_a_huge_token_is_not_echoed_whole(tmp_path: Path) -> None:
    audience = tmp_path / "a.txt"
    audience.write_text("ab" * 30_000 + "\n")  # 60,000 hex characters: a row under the 64 KB limit
    for args in (["render", WELCOME, "--audience", str(audience)],
                 ["send", WELCOME, "--audience", str(audience), "--dry-run", "--emulator"]):
        code, _, err = invoke(*args)
        assert code == 2, err
        assert "60000 characters long (over 4 KB)" in err
        assert max(len(line) for line in err.splitlines()) < 300


def test_a_long_unknown_template_key_is_clipped(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text("title: hi\n? " + "k" * 50_000 + "\n: 1\n")  # an explicit key: no 1,024 limit
    code, _, err = invoke("render", str(template), "--audience", AUDIENCE)
    assert code == 2
    assert "unknown key 'kkkk" in err and "50,000 characters" in err
    assert len(err) < 1000
