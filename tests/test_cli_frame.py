from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from pushctl import __version__
from pushctl.cli.app import app
from pushctl.errors import ExitCode, exit_code_table


def test_version_flag() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"pushctl {__version__}"


def test_help_lists_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=100)
    assert result.exit_code == 0
    for code in ExitCode:
        assert f"{int(code):>3}  " in result.stdout
    assert exit_code_table().splitlines()[0] in result.stdout


def test_unknown_option_is_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pushctl", "--no-such-option"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == ExitCode.USAGE
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: No such option '--no-such-option'.")
    assert line.endswith("(see 'pushctl --help')")


def test_global_options_may_follow_the_subcommand(tmp_path: object) -> None:
    result = CliRunner().invoke(
        app,
        ["render", "samples/templates/welcome.yaml", "--audience", "samples/audience.csv", "--row", "1",
         "--output", "json", "-q"],
    )
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip().splitlines()[0]
    import json

    assert json.loads(line)["line"] == 2
    assert result.stderr == ""


def test_hoisting_leaves_arguments_after_double_dash_alone() -> None:
    import typer

    from pushctl.cli.app import hoist_global_options

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    ctx = typer.Context(group)
    assert hoist_global_options(group, ctx, ["runs", "list", "--output", "json"]) == [
        "--output", "json", "runs", "list"]
    assert hoist_global_options(group, ctx, ["runs", "--", "--output"]) == ["runs", "--", "--output"]
