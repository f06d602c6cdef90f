"""`pushctl broadcast`: one message to an FCM topic / condition or an APNs broadcast channel."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from pushctl.cli.console import Terminal
from pushctl.cli.progress import event_printer
from pushctl.cli.results_view import result_json_line, short_token
from pushctl.cli.state import get_state
from pushctl.errors import InputError
from pushctl.paths import default_journal_file
from pushctl.runtime import run as run_loop

HELP = """Send one message to an FCM topic or condition, or to an APNs broadcast channel.

Everyone subscribed gets it, sent once instead of device by device. Breaking news: --fcm-topic
news, or --fcm-condition "'news' in topics && 'sport' in topics". Live scores: --apns-channel ID
(see `pushctl channels`) with a liveactivity template that has apns.payload.aps.content-state.
The broadcast is journaled as a campaign of one send with the service's message id (`pushctl
runs`); the same command again does not send it twice.

Try it on the built-in emulator (the sample devices follow topic news and a sample channel):

  pushctl broadcast samples/templates/breaking-news.yaml --fcm-topic news --emulator
"""


def broadcast(
    template: Annotated[Path, typer.Argument(help="YAML template.", show_default=False)],
    fcm_topic: Annotated[
        str | None, typer.Option("--fcm-topic", help="FCM topic (without /topics/).")
    ] = None,
    fcm_condition: Annotated[
        str | None,
        typer.Option("--fcm-condition", help="FCM condition, e.g. \"'a' in topics && 'b' in topics\"."),
    ] = None,
    apns_channel: Annotated[
        str | None, typer.Option("--apns-channel", help="APNs broadcast channel id (base64).")
    ] = None,
    emulator: Annotated[
        bool, typer.Option("--emulator", help="Send to a fresh built-in emulator with a scratch journal.")
    ] = False,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="FCM validate_only: checked, not delivered.")
    ] = False,
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="Campaign id (default: derived and printed).")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", envvar="PUSHCTL_JOURNAL", help="Journal database.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Reuse --campaign although its template changed.")
    ] = False,
) -> None:
    from pushctl.campaign import BroadcastSpec, run_broadcast
    from pushctl.cli.send_cmd import in_process_emulator
    from pushctl.config import resolve_profile

    chosen = [
        (k, v)
        for k, v in (
            ("fcm-topic", fcm_topic),
            ("fcm-condition", fcm_condition),
            ("apns-channel", apns_channel),
        )
        if v
    ]
    if len(chosen) != 1:
        raise InputError("give exactly one of --fcm-topic, --fcm-condition and --apns-channel")
    kind, target = chosen[0]
    if validate_only and kind == "apns-channel":
        raise InputError("APNs has no dry run: --validate-only is for FCM only", field="--validate-only")
    state = get_state()
    terminal = state.terminal
    with contextlib.ExitStack() as stack:
        emu: Any = None
        if emulator:
            profile, scratch, emu = stack.enter_context(in_process_emulator(None))
            journal_path = journal or scratch / "journal.sqlite3"
        else:
            profile = resolve_profile(state.config_path, state.profile)
            journal_path = journal or profile.sender.journal or default_journal_file()
        spec = BroadcastSpec(
            template=template,
            kind=cast(Any, kind),
            target=target,
            profile=profile,
            journal_path=journal_path,
            campaign_id=campaign,
            force=force,
            validate_only=validate_only,
        )
        report = run_loop(run_broadcast(spec, on_event=event_printer(terminal)))
        terminal.info(f"campaign {report.campaign_id}")
        if report.result is None:
            terminal.info(
                f"{spec.label} was already sent in this campaign: nothing sent "
                "(give a new --campaign to send it again)"
            )
        if emu is not None and report.result is not None and report.result.provider_id:
            _fan_out(terminal, emu, report.result.provider_id)
        _present(terminal, spec.label, report)
    raise typer.Exit(int(report.summary.exit_code()))


def _fan_out(terminal: Terminal, emu: Any, message_id: str) -> None:
    """What the in-process emulator delivered for this message (its devices' inbox)."""
    received = [d.token for d in emu.inbox.all() if d.message_id.endswith(message_id.rsplit("/", 1)[-1])]
    names = ", ".join(short_token(t) for t in received) or "nobody is subscribed"
    terminal.info(f"emulator: delivered to {len(received)} device(s): {names}")


def _present(terminal: Terminal, label: str, report: Any) -> None:
    result = report.result
    if terminal.json:
        if result is not None:
            terminal.json_line(result_json_line(result))
        terminal.json_line(report.summary.to_dict())
        return
    if result is not None:
        terminal.table(
            ["target", "outcome", "reason", "status", "id"],
            [(label, str(result.outcome), result.reason, result.status or "", result.provider_id)],
            title="broadcast",
        )


def register(app: typer.Typer) -> None:
    """Add `pushctl broadcast`."""
    app.command("broadcast", help=HELP)(broadcast)
