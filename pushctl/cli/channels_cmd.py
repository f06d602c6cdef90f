"""`pushctl channels`: the APNs broadcast channels (iOS 18 Live Activities) of the profile's app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from pushctl.cli.state import get_state
from pushctl.runtime import run as run_loop

T = TypeVar("T")

channels_app = typer.Typer(
    name="channels",
    help="Manage APNs broadcast channels (iOS 18 Live Activities) of the profile's app.",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Channel id (see `pushctl channels list`).")]


def _with_channels(action: Callable[[Any], Awaitable[T]]) -> T:
    from pushctl.campaign import Channels
    from pushctl.config import resolve_profile

    state = get_state()
    profile = resolve_profile(state.config_path, state.profile)

    async def go() -> T:
        async with Channels(profile) as channels:
            return await action(channels)

    return run_loop(go())


@channels_app.command("create")
def create(
    storage_policy: Annotated[
        int,
        typer.Option(
            "--storage-policy",
            min=0,
            max=1,
            help="1: APNs keeps the latest message for devices that join late; 0: it keeps none.",
        ),
    ] = 0,
) -> None:
    """Create a channel and print its id (share it with the apps that show the Live Activity)."""
    channel_id = _with_channels(lambda c: c.create(storage_policy))
    terminal = get_state().terminal
    if terminal.json:
        terminal.json_line({"channel_id": channel_id, "message_storage_policy": storage_policy})
    else:
        terminal.print(channel_id)


@channels_app.command("list")
def list_cmd() -> None:
    """Every channel of the app (APNs keeps up to 10,000 per environment)."""
    ids: list[str] = _with_channels(lambda c: c.list())
    terminal = get_state().terminal
    if terminal.json:
        for channel_id in ids:
            terminal.json_line({"channel_id": channel_id})
    elif ids:
        terminal.table(["channel id"], [(i,) for i in ids], caption=f"{len(ids)} channel(s)")
    else:
        terminal.info("no channels")


@channels_app.command("show")
def show(channel_id: IdArgument) -> None:
    """A channel's settings (message storage policy, push type)."""
    settings: dict[str, Any] = _with_channels(lambda c: c.read(channel_id))
    terminal = get_state().terminal
    if terminal.json:
        terminal.json_line({"channel_id": channel_id, **settings})
    else:
        terminal.table(["", ""], [("channel id", channel_id), *settings.items()])


@channels_app.command("delete")
def delete(channel_id: IdArgument) -> None:
    """Delete a channel once its event is over (the 10,000-channel allowance is per app)."""
    _with_channels(lambda c: c.delete(channel_id))
    get_state().terminal.info(f"deleted channel {channel_id}")


def register(app: typer.Typer) -> None:
    """Add the ``channels`` command group."""
    app.add_typer(channels_app, name="channels")
