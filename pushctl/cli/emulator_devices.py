"""`pushctl emulator subscribe` and `pushctl emulator join`: emulated devices for a running emulator.

``subscribe`` issues a Web Push subscription (what a browser's ``pushManager.subscribe()`` returns)
whose keys the emulator can decrypt with; ``join`` subscribes devices to an FCM topic or an APNs
broadcast channel, as the apps on those devices would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from pushctl.cli.state import get_state
from pushctl.errors import InputError, ProviderUnavailable
from pushctl.paths import default_emulator_state_dir

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Emulator state dir: CA, certificates, endpoints.json."),
]


def admin_request(state_dir: Path | None, path: str, body: Any = None) -> Any:
    """GET (or, with ``body``, POST as JSON) an admin path of the running emulator, with the state
    dir's admin token; its JSON answer."""
    import httpx

    from pushctl.emulator import admin_headers, client_context, read_admin_token, read_endpoints

    directory = state_dir or default_emulator_state_dir()
    try:
        endpoints = read_endpoints(directory)
        token = read_admin_token(directory)
    except (OSError, ValueError):
        raise ProviderUnavailable(
            f"no running emulator found in {directory}", hint="start one with: pushctl emulator run"
        ) from None
    try:
        with httpx.Client(http2=True, verify=client_context(endpoints["ca_file"]), timeout=10) as client:
            url = endpoints["fcm_url"] + path
            headers = admin_headers(token)
            if body is None:
                response = client.get(url, headers=headers)
            else:
                response = client.post(url, json=body, headers=headers)
            if response.status_code in (401, 403):
                raise InputError(
                    f"the emulator at {endpoints['fcm_url']} refused its admin token "
                    f"({response.status_code})",
                    hint=f"is {directory} the state dir it was started with? (see --state-dir)",
                )
            if response.status_code == 404 and body is not None:
                raise InputError(str(response.json().get("error", "not found")))
            response.raise_for_status()
            return response.json()
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"cannot reach the emulator at {endpoints['fcm_url']}: {exc}") from None


def subscribe(
    ctx: typer.Context,
    application_server_key: Annotated[
        str | None,
        typer.Option(
            "--application-server-key",
            help="Bind the subscription to this VAPID public key "
            "(pushes signed by another key get 403, as browsers' push services answer).",
        ),
    ] = None,
    sub_id: Annotated[
        str | None,
        typer.Option("--id", help="Subscription id (default: a new emu… id); gone… ids answer 410."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Push service URL for the endpoint (default: the running emulator's)."
        ),
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print a new Web Push subscription (PushSubscription.toJSON()) the emulator can decrypt for.

    Its keys are the emulator's deterministic test keys for the id, so any emulator, on any machine,
    decrypts what is sent to it and keeps the plaintext in its inbox.
    """
    from pushctl.emulator import issue_subscription, read_endpoints

    if base_url is None:
        directory = state_dir or default_emulator_state_dir()
        try:
            base_url = str(read_endpoints(directory)["webpush_url"])
        except (OSError, ValueError, KeyError):
            raise ProviderUnavailable(
                f"no running emulator found in {directory}",
                hint="start one with `pushctl emulator run`, or give --base-url",
            ) from None
    if sub_id is not None and not sub_id.replace("-", "").replace("_", "").isalnum():
        raise InputError("ids use letters, digits, '-' and '_'", field="--id")
    subscription = issue_subscription(base_url, sub_id, application_server_key=application_server_key)
    terminal = get_state(ctx).terminal
    if terminal.json:
        terminal.json_line(subscription)
        return
    terminal.raw(json.dumps(subscription, indent=2) + "\n")
    terminal.info("add it to an audience as a 'subscription' column, or its endpoint/p256dh/auth as columns")


def join(
    ctx: typer.Context,
    tokens: Annotated[
        list[str], typer.Argument(help="Device tokens (FCM registration tokens or APNs tokens).")
    ],
    fcm_topic: Annotated[
        str | None, typer.Option("--fcm-topic", help="Subscribe FCM tokens to this topic.")
    ] = None,
    apns_channel: Annotated[
        str | None, typer.Option("--apns-channel", help="Subscribe APNs tokens to this broadcast channel id.")
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Subscribe emulated devices to an FCM topic or an APNs broadcast channel."""
    if (fcm_topic is None) == (apns_channel is None):
        raise InputError("give exactly one of --fcm-topic and --apns-channel")
    body: dict[str, Any] = {"tokens": tokens}
    body["fcm_topic" if fcm_topic else "apns_channel"] = fcm_topic or apns_channel
    answer = admin_request(state_dir, "/_emulator/subscribe", body)
    terminal = get_state(ctx).terminal
    if terminal.json:
        terminal.json_line(answer)
        return
    target = f"FCM topic {fcm_topic}" if fcm_topic else f"APNs channel {apns_channel}"
    terminal.info(f"{len(tokens)} device(s) joined {target}; {answer.get('subscribers')} subscribed in all")
