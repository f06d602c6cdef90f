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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, ctx, args))

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


def _subcommand_flags(group: click.Group, ctx: click.Context) -> set[str]:
    flags: set[str] = set()
    stack: list[click.Command] = [group]
    while stack:
        command = stack.pop()
        if command is not group:
            for param in command.params:
                flags.update(getattr(param, "opts", ()))
                flags.update(getattr(param, "secondary_opts", ()))
        if isinstance(command, click.Group):
            stack.extend(c for name in command.list_commands(ctx) if (c := command.get_command(ctx, name)))
    return flags


def hoist_global_options(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """Let global options follow the subcommand too (``pushctl runs show ID --output json``).

    Global options a subcommand does not define itself are moved in front of the subcommand;
    everything after ``--`` is left alone.
    """
    owned = _subcommand_flags(group, ctx)
    takes_value: dict[str, bool] = {}
    for param in group.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt not in owned and opt not in ("--help", "-h", "--version"):
                    takes_value[opt] = not (param.is_flag or param.count)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    seen_command = False
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if seen_command and name in takes_value:
            front.append(arg)
            if takes_value[name] and "=" not in arg and i + 1 < len(args):
                front.append(args[i + 1])
                i += 1
        else:
            if not arg.startswith("-"):
                seen_command = True
            rest.append(arg)
        i += 1
    return front + rest


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
    from pushctl.transport.loop import own_process

    own_process()
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="pushctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = int(ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as exc:
        # One line, like every other error (click's usage block adds nothing --help doesn't).
        where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else "pushctl"
        sys.stderr.write(f"error: {exc.format_message()} (see '{where} --help')\n")
        code = int(ExitCode.USAGE)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
