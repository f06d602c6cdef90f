"""Generated files (completions/, the README's CLI reference) must match the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from pushctl.cli.app import app
from pushctl.cli.completion_gen import generate

REPO = Path(__file__).resolve().parent.parent


def test_generated_files_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_generated_completions_cover_every_command() -> None:
    command = typer.main.get_command(app)
    bash = generate(command)["pushctl.bash"]
    assert isinstance(command, typer.core.TyperGroup)
    for name in command.list_commands(typer.Context(command)):
        assert name in bash


def test_readme_reference_has_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    for name in (
        "send",
        "render",
        "tokens check",
        "runs show",
        "credentials check",
        "config init",
        "emulator run",
    ):
        assert f"### `pushctl {name}`" in readme


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_completes_subcommands() -> None:
    script = REPO / "completions" / "pushctl.bash"
    probe = f"""
source {script}
COMP_WORDS=(pushctl ""); COMP_CWORD=1; _pushctl_complete; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(pushctl --ver); COMP_CWORD=1; _pushctl_complete; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(pushctl runs ""); COMP_CWORD=2; _pushctl_complete; echo "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    assert set(out[0].split()) == set(command.list_commands(typer.Context(command)))
    assert out[1].split() == ["--verbose", "--version"]
    assert set(out[2].split()) == {"list", "show", "report", "export", "prune-list", "prune", "merge"}
