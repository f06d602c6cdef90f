"""The committed completion scripts must match the CLI they complete."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from pushctl.cli.app import app
from pushctl.cli.completion_gen import generate

REPO = Path(__file__).resolve().parent.parent


def test_completions_are_up_to_date() -> None:
    scripts = generate(typer.main.get_command(app))
    for name, text in scripts.items():
        committed = (REPO / "completions" / name).read_text()
        assert committed == text, f"completions/{name} is stale: run python scripts/gen_completions.py"


def test_generated_completions_cover_every_command() -> None:
    command = typer.main.get_command(app)
    bash = generate(command)["pushctl.bash"]
    assert isinstance(command, typer.core.TyperGroup)
    for name in command.list_commands(typer.Context(command)):
        assert name in bash


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_completes_subcommands() -> None:
    script = REPO / "completions" / "pushctl.bash"
    probe = f"""
source {script}
COMP_WORDS=(pushctl ""); COMP_CWORD=1; _pushctl_complete; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(pushctl --ver); COMP_CWORD=1; _pushctl_complete; echo "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    assert set(out[0].split()) == set(command.list_commands(typer.Context(command)))
    assert out[1].split() == ["--verbose", "--version"]
