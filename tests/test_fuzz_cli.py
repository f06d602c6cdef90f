"""The CLI on generated and random files: ``render`` (file as template, and as audience),
``tokens check`` and ``send --dry-run`` end in 0, 1 or 2 with one-line messages; never 4 (an
internal error), never a traceback, never an echo of a huge input (see fuzz_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_support import FAST, TOKENS, any_bytes, any_text, fresh, pieces
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pushctl.cli.app import app

REPO = Path(__file__).resolve().parent.parent
WELCOME = REPO / "samples" / "templates" / "welcome.yaml"
AUDIENCE = REPO / "samples" / "audience.csv"
CREDENTIALS = REPO / "samples" / "credentials"

template_text = pieces(
    "title: ", "body: ", "data:\n  k: ", "{{ name }}", "{{ 'a' * 10**9 }}", "{% for i in range(99999) %}",
    "{% endfor %}", "&a ", "*a", "[", "]", "{", "}", "\n", "  ", "'", '"', "\x01", "9" * 5000, "badge: ",
    "locales:\n  fr:\n    title: ", "variants:\n  A: {weight: 1}\n", "{{ missing }}", "---\n",
)  # fmt: skip
audience_text = pieces("token,platform,name\n", *TOKENS, ",", "\n", '"', "ios", "android", "{", "}", "\x00",
                       '{"token": "' + "ab" * 32 + '", "x": [[[[[]]]]]}\n', "[" * 100)  # fmt: skip
file_data = st.one_of(any_text, any_bytes, template_text, audience_text)
REAL_FILES = [REPO / "pyproject.toml", REPO / "README.md", REPO / "pushctl" / "errors.py",
              CREDENTIALS / "AuthKey_EMU0000001.p8", CREDENTIALS / "service-account.json",
              REPO / "samples" / "scenarios" / "flaky.toml", REPO / "samples" / "audience.jsonl", WELCOME]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile with the sample credentials: ``send --dry-run`` builds real payloads, offline."""
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    key, account = CREDENTIALS / "AuthKey_EMU0000001.p8", CREDENTIALS / "service-account.json"
    path.write_text(
        f'default_profile = "p"\n[profiles.p.apns]\nkey_file = "{key}"\nkey_id = "EMU0000001"\n'
        f'team_id = "EMUTEAM001"\ntopic = "com.example.pushctl"\n'
        f'[profiles.p.fcm]\nservice_account = "{account}"\n'
    )
    return path


def check_cli(config: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["--config", str(config), *args], terminal_width=200)
    err = result.stderr
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, err[-2000:])
    assert "internal error" not in err and "Traceback" not in err, (args, err[-2000:])
    assert all(len(line) <= 2100 for line in err.splitlines()), args


def sweep(config: Path, path: Path) -> None:
    check_cli(config, "render", str(path), "--audience", str(AUDIENCE), "--on-bad-row", "skip")
    check_cli(config, "render", str(WELCOME), "--audience", str(path))
    check_cli(config, "tokens", "check", str(path))
    check_cli(config, "send", str(path), "--audience", str(AUDIENCE), "--dry-run")
    check_cli(config, "send", str(WELCOME), "--audience", str(path), "--dry-run", "--on-bad-row", "skip")


@settings(FAST, max_examples=max(1, FAST.max_examples // 3))  # five commands an example
@given(data=file_data, suffix=st.sampled_from([".yaml", ".csv", ".jsonl", ".txt"]))
def test_generated_files_through_the_cli(
    tmp_path: Path, config: Path, data: str | bytes, suffix: str
) -> None:
    sweep(config, fresh(tmp_path, suffix, data))


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_of_every_kind_through_the_cli(config: Path, path: Path) -> None:
    sweep(config, path)
