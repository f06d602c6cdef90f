"""The Typer application: global options, command registration, and the one place
that maps errors to exit codes and one-line messages."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from pushctl import __version__
from pushctl.cli.console import OutputFormat, Terminal
from pushctl.cli.state import State, get_state
from pushctl.errors import ExitCode, PushctlError, exit_code_table

EPILOG = "Exit codes:\n\n\b\n" + exit_code_table()


class PushctlGroup(TyperGroup):
    """Root group: turns every error raised by a command into an exit code and one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PushctlError as exc:
            state = get_state(ctx)
            _report(state, exc)
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except (KeyboardInterrupt, click.exceptions.Abort):
            get_state(ctx).terminal.error("interrupted")
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except (click.exceptions.Exit, click.exceptions.ClickException):
            raise
        except BrokenPipeError:
            # `pushctl ... | head`: the reader left; stop quietly (Python's documented recipe).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            state = get_state(ctx)
            if state.debug:
                traceback.print_exc(file=sys.stderr)
            state.terminal.error(
                f"internal error: {type(exc).__name__}: {exc} (run again with --debug for a traceback)"
            )
            raise click.exceptions.Exit(int(ExitCode.UNAVAILABLE)) from None


def _report(state: State, exc: PushctlError) -> None:
    if state.debug:
        traceback.print_exc(file=sys.stderr)
    state.terminal.error(str(exc))


app = typer.Typer(
    cls=PushctlGroup,
    name="pushctl",
    help="Send, validate and rehearse mobile push campaigns (APNs and FCM).",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pushctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", envvar="PUSHCTL_PROFILE", help="Config profile to use.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="PUSHCTL_CONFIG", help="Config file (default: user config dir)."),
    ] = None,
    output: Annotated[
        OutputFormat | None,
        typer.Option(
            "--output", "-o", help="Result format; json is the default when stdout is not a terminal."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors (and results).")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More diagnostics.")] = 0,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colours (NO_COLOR is honoured too).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (never with local variables).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Send, validate and rehearse mobile push campaigns (APNs and FCM)."""
    state = get_state(ctx)
    state.terminal = Terminal(output=output, quiet=quiet, verbose=verbose, color=not no_color)
    state.profile = profile
    state.config_path = config
    state.debug = debug


def _register_commands() -> None:
    from pushctl.cli import commands

    commands.register_all(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="pushctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = int(ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        code = int(ExitCode.USAGE)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
