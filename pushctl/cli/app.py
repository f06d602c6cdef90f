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
from pushctl.cli.commands import COMMANDS, load_command
from pushctl.cli.console import OutputFormat, Terminal
from pushctl.cli.state import State, get_state
from pushctl.errors import ExitCode, PushctlError, clip, exit_code_table

EPILOG = "Exit codes:\n\n\b\n" + exit_code_table()
MESSAGE_LIMIT = 2000
"""Longest error message printed (a message never needs more; input echoed in it is clipped)."""


class PushctlGroup(TyperGroup):
    """Root group: loads each command's module only when it runs (see :mod:`.commands`), and
    turns every error raised by a command into an exit code and one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the table, not from the commands: listing them must not import them.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=entry.summary).get_short_help_str(limit))
            for name, entry in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
                f"internal error: {type(exc).__name__}: {clip(str(exc), 200)} "
                "(run again with --debug for a traceback)"
            )
            raise click.exceptions.Exit(int(ExitCode.UNAVAILABLE)) from None


def _command_flags(command: click.Command, ctx: click.Context) -> set[str]:
    """Every option a command (and, for a group, its subcommands) defines."""
    flags: set[str] = set()
    stack: list[click.Command] = [command]
    while stack:
        current = stack.pop()
        for param in current.params:
            flags.update(getattr(param, "opts", ()))
            flags.update(getattr(param, "secondary_opts", ()))
        if isinstance(current, click.Group):
            stack.extend(c for name in current.list_commands(ctx) if (c := current.get_command(ctx, name)))
    return flags


def hoist_global_options(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """Let global options follow the subcommand too (``pushctl runs show ID --output json``).

    Global options the invoked subcommand does not define itself are moved in front of it;
    everything after ``--`` is left alone. Only the invoked command is looked at (and so
    loaded): the others stay unimported.
    """
    takes_value: dict[str, bool] = {}
    for param in group.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt not in ("--help", "-h", "--version"):
                    takes_value[opt] = not (param.is_flag or param.count)
    command_name = _first_command(args, takes_value)
    command = group.get_command(ctx, command_name) if command_name else None
    owned = _command_flags(command, ctx) if command is not None else set()
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
        if seen_command and name in takes_value and name not in owned:
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


def _first_command(args: list[str], takes_value: dict[str, bool]) -> str | None:
    """The subcommand's name: the first argument that is neither a global option nor its value."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
        if takes_value.get(arg, False):
            i += 1  # skip the option's value
        i += 1
    return None


def _report(state: State, exc: PushctlError) -> None:
    if state.debug:
        traceback.print_exc(file=sys.stderr)
    # Messages clip what they repeat of the user's input; this is the net under all of them.
    state.terminal.error(clip(str(exc), MESSAGE_LIMIT))


app = typer.Typer(
    cls=PushctlGroup,
    name="pushctl",
    help="Send, validate and rehearse push campaigns (APNs, FCM, Web Push, HMS).",
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
    """Send, validate and rehearse push campaigns (APNs, FCM, Web Push, HMS)."""
    state = get_state(ctx)
    state.terminal = Terminal(output=output, quiet=quiet, verbose=verbose, color=not no_color)
    state.profile = profile
    state.config_path = config
    state.debug = debug


def main() -> None:
    """Console-script entry point."""
    from pushctl.runtime import own_process

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
