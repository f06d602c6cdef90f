"""Issue 11, defects 1-4: hostile files are one located line and exit 2, never a hang or an
internal error. Each test is a reproduction from the issue, run through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app

REPO = Path(__file__).resolve().parent.parent
AUDIENCE = str(REPO / "samples" / "audience.csv")
WELCOME = str(REPO / "samples" / "templates" / "welcome.yaml")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.stdout, result.stderr


def assert_one_located_line(code: int, err: str, where: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {where}"), err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


def alias_bomb() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join([*lines, "title: hi", "data: {k: *i}", ""])


@pytest.mark.parametrize("command", [["render", "--row", "1"], ["send", "--dry-run", "--emulator"]])
def test_a_yaml_alias_bomb_is_refused_naming_the_limit(tmp_path: Path, command: list[str]) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(alias_bomb())
    code, out, err = invoke(command[0], str(template), "--audience", AUDIENCE, *command[1:])
    assert_one_located_line(code, err, f"{template}:", "20,000 YAML nodes")
    assert out == ""


def test_a_control_character_in_a_template_is_a_located_yaml_error(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_bytes(b"title: hi\x01\nbody: x\n")
    code, _, err = invoke("render", str(template), "--audience", AUDIENCE)
    assert_one_located_line(code, err, f"{template}:1:", "control character #x01")


DEEP_MAPPING = "{a: " * 20_000 + "1" + "}" * 20_000
DEEP_SEQUENCE = "[" * 20_000 + "]" * 20_000


@pytest.mark.parametrize("data", ["&a {k: *a}", DEEP_MAPPING, DEEP_SEQUENCE])
def test_self_referencing_and_deep_templates_are_located_errors(tmp_path: Path, data: str) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(f"title: hi\ndata: {data}\n")
    code, _, err = invoke("render", str(template), "--audience", AUDIENCE)
    assert_one_located_line(code, err, f"{template}:2:")
    assert "recursive alias" in err or "64 levels" in err


@pytest.mark.parametrize("depth", [30_000, 100_000])
@pytest.mark.parametrize(
    "command",
    [["tokens", "check"], ["render", WELCOME, "--audience"],
     ["send", WELCOME, "--dry-run", "--emulator", "--audience"]],
    ids=["tokens-check", "render", "send-dry-run"],
)
def test_a_deeply_nested_jsonl_row_is_a_located_error(tmp_path: Path, depth: int, command: list[str]) -> None:
    audience = tmp_path / "n.jsonl"
    audience.write_text('{"token": "' + "ab" * 32 + '", "x": ' + "[" * depth + "]" * depth + "}\n")
    code, out, err = invoke(*command, str(audience))
    assert "internal error" not in err and "Traceback" not in err
    if depth > 32 * 1024:  # the line itself is over the row limit: the file cannot be read on
        assert_one_located_line(code, err, f"{audience}:1:", "longer than the 64 KB limit")
    elif command[0] == "tokens":  # a malformed row is a finding of the check: exit 1, on stdout
        assert code == 1
        finding = json.loads(out.splitlines()[0])
        assert finding["line"] == 1 and "nested deeper than the limit of 64 levels" in finding["message"]
    else:
        assert_one_located_line(code, err, f"{audience}:1:", "nested deeper than the limit of 64 levels")


def test_a_huge_repetition_in_a_template_is_refused_before_it_is_built(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text("body: \"{{ 'a' * 10**9 }}\"\n")
    code, _, err = invoke("render", str(template), "--audience", AUDIENCE)
    assert_one_located_line(code, err, f"{template}:1:", "field 'body'", "the limit is 100,000")


@pytest.mark.parametrize(
    "command",
    [["render", "/dev/zero", "--audience", AUDIENCE], ["tokens", "check", "/dev/zero"],
     ["render", WELCOME, "--audience", "/dev/zero"]],
)
def test_dev_zero_is_not_a_regular_file(command: list[str]) -> None:
    code, _, err = invoke(*command)
    assert_one_located_line(code, err, "/dev/zero:", "is not a regular file")


def test_a_template_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text("title: hi\n" + "# padding\n" * 110_000)
    code, _, err = invoke("render", str(template), "--audience", AUDIENCE)
    assert_one_located_line(code, err, f"{template}:", "larger than the 1 MB limit")


def test_a_config_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# padding\n" * 110_000)
    code, _, err = invoke("--config", str(config), "config", "show")
    assert_one_located_line(code, err, f"{config}:", "larger than the 1 MB limit")


def test_the_reproductions_stay_small_and_quick_under_a_memory_limit(tmp_path: Path) -> None:
    """The issue's check, as a new user runs it: a real process under ``ulimit -v 1500000``."""
    template = tmp_path / "bomb.yaml"
    template.write_text(alias_bomb())
    big = tmp_path / "big.yaml"
    big.write_text("body: \"{{ 'a' * 10**9 }}\"\n")
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1_500_000 * 1024,) * 2); "
        "from pushctl.cli.app import main; sys.argv[0] = 'pushctl'; main()"
    )
    for template_path in (template, big, Path("/dev/zero")):
        args = ["render", str(template_path), "--audience", AUDIENCE, "--row", "1"]
        proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
