"""`pushctl emulator`: run the local APNs + FCM + Web Push + HMS emulator, read its inbox, issue client
certificates and Web Push subscriptions, subscribe devices to topics and channels."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from pushctl.cli.emulator_devices import admin_request
from pushctl.cli.state import get_state
from pushctl.errors import InputError, ProviderUnavailable
from pushctl.paths import default_config_file, default_emulator_state_dir

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Emulator state dir: CA, certificates, endpoints.json."),
]


def _sample_jwt() -> str:
    """The provider JWT pushctl itself uses for the emulator's throwaway sample key.

    Taken from pushctl's own signer and cache, so trying the curl line does not make the next
    `pushctl send` a "new token within 20 minutes" (429 TooManyProviderTokenUpdates).
    """
    from pushctl.credentials import load_apns_key
    from pushctl.emulator import SAMPLE_APNS_KEY, SAMPLE_KEY_ID, SAMPLE_TEAM_ID
    from pushctl.providers.apns import JwtSigner, jwt_cache_path

    key = load_apns_key(SAMPLE_APNS_KEY, SAMPLE_KEY_ID, SAMPLE_TEAM_ID)
    return JwtSigner(key, cache=jwt_cache_path(key)).token()


def _write_curl_headers(state_dir: Path) -> Path:
    """Write the curl example's request headers (topic + sample JWT) to a 0600 file.

    The curl line reads them with ``-H @file``, so no JWT is ever printed to the terminal or
    a log, even one for the throwaway sample key.
    """
    from pushctl.emulator import SAMPLE_TOPIC

    path = state_dir / "curl-apns-headers.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"apns-topic: {SAMPLE_TOPIC}\nauthorization: bearer {_sample_jwt()}\n")
    return path


def _write_curl_admin_headers(state_dir: Path, token: str) -> Path:
    """Write the admin endpoints' ``authorization`` header to a 0600 file for ``curl -H @file``
    (on the command line the token would show in ``ps`` to every local user)."""
    from pushctl.emulator import admin_headers
    from pushctl.paths import write_private

    path = state_dir / "curl-admin-headers.txt"
    write_private(path, "".join(f"{k}: {v}\n" for k, v in admin_headers(token).items()))
    return path


TOKEN_FORM_REFRESH = 1800.0
"""Seconds between rewrites of the token curl line's form: its JWT assertion lives one hour."""


def _write_curl_token_form(state_dir: Path, token_uri: str) -> Path:
    """Write the OAuth form (jwt-bearer grant + an assertion signed with the sample service account).

    The token curl line posts it with ``-d @file`` (0600), so no JWT is printed; ``emulator run``
    rewrites it every half hour, since Google refuses assertions older than an hour.
    """
    from urllib.parse import urlencode

    import jwt

    from pushctl.emulator import SAMPLE_SERVICE_ACCOUNT

    account = json.loads(SAMPLE_SERVICE_ACCOUNT.read_text())
    now = int(time.time())
    claims = {
        "iss": account["client_email"],
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": token_uri,
        "iat": now,
        "exp": now + 3600,
    }
    assertion = jwt.encode(
        claims, account["private_key"], algorithm="RS256", headers={"kid": account["private_key_id"]}
    )
    path = state_dir / "curl-token-form.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        fh.write(urlencode(form))
    return path


def _refuse_if_running(state_dir: Path) -> None:
    """One emulator per state dir: a second would overwrite endpoints.json under the first."""
    from pushctl.emulator import read_endpoints

    try:
        pid = int(read_endpoints(state_dir).get("pid", 0))
    except (OSError, ValueError, TypeError):
        return
    if pid <= 0:
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # left behind by an emulator that was killed
    except PermissionError:
        pass
    raise InputError(
        f"an emulator (pid {pid}) is already running with state dir {state_dir}",
        hint="stop it first, or give this one another --state-dir",
    )


def run(
    ctx: typer.Context,
    state_dir: StateDirOption = None,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario TOML: options, registry, faults.")
    ] = None,
    apns_port: Annotated[int, typer.Option("--apns-port", help="APNs port (0 = a free one).")] = 0,
    fcm_port: Annotated[
        int, typer.Option("--fcm-port", help="FCM + OAuth + admin port (0 = a free one).")
    ] = 0,
    webpush_port: Annotated[
        int, typer.Option("--webpush-port", help="Web Push service port (0 = a free one).")
    ] = 0,
    hms_port: Annotated[int, typer.Option("--hms-port", help="HMS OAuth + push port (0 = a free one).")] = 0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for injected faults.")] = None,
    profile_name: Annotated[
        str, typer.Option("--profile-name", help="Name of the profile written.")
    ] = "emulator",
    no_profile: Annotated[bool, typer.Option("--no-profile", help="Do not write a config profile.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes sharing the ports (SO_REUSEPORT); admin views are merged. "
            "One process serves ~3,500-4,500 requests/s: use 2 to benchmark pushctl on 2 cores.",
        ),
    ] = 1,
) -> None:
    """Run the emulator in the foreground until Ctrl-C."""
    from pushctl.emulator import ADMIN_TOKEN_FILE, SERVICE_ACCOUNT_FILE, Emulator, EmulatorWorkers, Scenario

    state = get_state(ctx)
    term = state.terminal
    _refuse_if_running(state_dir or default_emulator_state_dir())
    loaded = Scenario.load(scenario) if scenario is not None else None
    emu: Emulator | EmulatorWorkers
    if workers > 1:
        emu = EmulatorWorkers(
            state_dir or default_emulator_state_dir(),
            workers=workers,
            scenario=loaded,
            apns_port=apns_port,
            fcm_port=fcm_port,
            webpush_port=webpush_port,
            hms_port=hms_port,
            seed=seed,
        )
    else:
        emu = Emulator(
            state_dir or default_emulator_state_dir(),
            scenario=loaded,
            apns_port=apns_port,
            fcm_port=fcm_port,
            webpush_port=webpush_port,
            hms_port=hms_port,
            seed=seed,
        )
    try:
        emu.start()
    except OSError as exc:
        raise InputError(
            f"cannot listen: {exc}",
            hint="choose other ports with --apns-port / --fcm-port / --webpush-port / --hms-port",
        ) from None
    except RuntimeError as exc:  # a worker process failed to start
        raise ProviderUnavailable(str(exc)) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        profile = (
            None
            if no_profile
            else emu.write_profile(state.config_path or default_config_file(), profile_name)
        )
        curl = " ".join(
            [
                "curl --http2",
                "--cacert",
                shlex.quote(str(emu.ca_file)),
                "-X POST",
                f"{emu.apns_url}/3/device/{'ab' * 32}",
                "-H",
                shlex.quote(f"@{_write_curl_headers(emu.state_dir)}"),
                "-d",
                shlex.quote('{"aps":{"alert":"hi"}}'),
            ]
        )
        token_form = _write_curl_token_form(emu.state_dir, emu.token_uri)
        curl_token = " ".join(
            [
                "curl --http1.1",
                "--cacert",
                shlex.quote(str(emu.ca_file)),
                "-X POST",
                emu.token_uri,
                "-d",
                shlex.quote(f"@{token_form}"),
            ]
        )
        curl_inbox = " ".join(
            [
                "curl --cacert",
                shlex.quote(str(emu.ca_file)),
                "-H",
                shlex.quote(f"@{_write_curl_admin_headers(emu.state_dir, emu.admin_token)}"),
                f"{emu.fcm_url}/_emulator/inbox",
            ]
        )
        info: dict[str, Any] = {
            "apns_url": emu.apns_url,
            "fcm_url": emu.fcm_url,
            "token_uri": emu.token_uri,
            "webpush_url": emu.webpush_url,
            "hms_url": emu.hms_url,
            "ca_file": str(emu.ca_file),
            "service_account": str(emu.state_dir / SERVICE_ACCOUNT_FILE),
            "state_dir": str(emu.state_dir),
            "admin_token": str(emu.state_dir / ADMIN_TOKEN_FILE),
            "profile": str(profile) if profile else None,
            "profile_name": None if no_profile else profile_name,
        }
        if isinstance(emu, EmulatorWorkers):
            info["workers"] = f"{workers} (pids {', '.join(str(p) for p in emu.pids)})"
        if term.json:
            term.json_line({**info, "curl": curl, "curl_token": curl_token, "curl_inbox": curl_inbox})
        else:
            term.table(["", ""], [(k, v) for k, v in info.items() if v is not None], title="pushctl emulator")
            term.print("Try it (the headers file holds the topic and a JWT for the throwaway sample key):")
            term.raw(curl + "\n")  # unwrapped, so it can be copied and pasted
            term.print("An FCM access token over HTTP/1.1 (the form: an assertion of the sample account):")
            term.raw(curl_token + "\n")
            term.print("The inbox (admin endpoints need the state dir's token; the headers file holds it):")
            term.raw(curl_inbox + "\n")
        term.info("emulator running; press Ctrl-C to stop")
        written = time.monotonic()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop: exit 0
            while not stop.wait(0.5):
                if time.monotonic() - written > TOKEN_FORM_REFRESH:
                    _write_curl_token_form(emu.state_dir, emu.token_uri)
                    written = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emu.stop()
    term.info("emulator stopped")


def inbox(
    ctx: typer.Context,
    token: Annotated[
        str | None, typer.Option("--token", "-t", help="Show what this device received.")
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Show what a running emulator's devices received (counts, or one token's notifications)."""
    from urllib.parse import quote

    term = get_state(ctx).terminal
    if token is None:
        data = admin_request(state_dir, "/_emulator/inbox")
        if term.json:
            for tok, count in data["counts"].items():
                term.json_line({"token": tok, "count": count})
            return
        term.table(
            ["token", "received"], data["counts"].items(), caption=f"{data['total']} notifications in all"
        )
        return
    data = admin_request(state_dir, "/_emulator/inbox?token=" + quote(token, safe=""))
    if term.json:
        for delivery in data["deliveries"]:
            term.json_line(delivery)
        return
    rows = [
        (
            dt.datetime.fromtimestamp(d["received_at"], dt.UTC).isoformat(timespec="milliseconds"),
            d["provider"],
            d["collapse_id"] or "",
            d["message_id"],
            json.dumps(d["payload"], ensure_ascii=False),
        )
        for d in data["deliveries"]
    ]
    term.table(
        ["received", "provider", "collapse id", "id", "payload"],
        rows,
        caption=f"{data['count']} notification(s) for {token}",
    )


def issue_cert(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="Bundle id written into the certificate's subject UID.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where to write cert and key PEMs.")] = Path("."),
    environment: Annotated[
        str, typer.Option("--environment", help="sandbox, production or both.")
    ] = "sandbox",
    state_dir: StateDirOption = None,
) -> None:
    """Issue an APNs client certificate signed by the emulator's CA (for certificate auth)."""
    from pushctl.emulator import ensure_certificates, issue_client_certificate

    if environment not in ("sandbox", "production", "both"):
        raise InputError(
            f"unknown environment {environment!r}",
            field="--environment",
            hint="use sandbox, production or both",
        )
    term = get_state(ctx).terminal
    certs = ensure_certificates(state_dir or default_emulator_state_dir())
    cert, key = issue_client_certificate(certs, topic, out_dir, environment=environment)
    if term.json:
        term.json_line({"cert_file": str(cert.resolve()), "key_file": str(key.resolve())})
    else:
        term.print(f"certificate: {cert.resolve()}\nkey:         {key.resolve()}")


def register(app: typer.Typer) -> None:
    """Add the ``emulator`` command group."""
    from pushctl.cli.emulator_devices import join, subscribe

    group = typer.Typer(
        name="emulator",
        help="Local APNs, FCM, Web Push and HMS emulator for rehearsals and tests.",
        no_args_is_help=True,
    )
    group.command("run")(run)
    group.command("inbox")(inbox)
    group.command("issue-cert")(issue_cert)
    group.command("subscribe")(subscribe)
    group.command("join")(join)
    app.add_typer(group, name="emulator")
