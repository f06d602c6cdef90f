"""The :class:`Emulator`: APNs, FCM, Web Push and HMS servers, their registry, inbox and faults.

Run it in-process (``with Emulator() as emu:`` on a background thread, or ``await
emu.astart()`` inside a running loop) or in the foreground with ``pushctl emulator run``.
A running emulator writes ``endpoints.json`` to its state dir so other processes
(``pushctl emulator inbox``) can find its admin endpoints on the FCM port; those answer only
requests carrying the state dir's admin token (:mod:`.admin`). It listens on loopback
(``127.0.0.1``) unless ``host`` says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import re
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import tomli_w

from pushctl.emulator.admin import ADMIN_PREFIX, REALM, admin_headers, ensure_admin_token, refusal
from pushctl.emulator.apns import ApnsService
from pushctl.emulator.broadcast import BroadcastService
from pushctl.emulator.fcm import FcmService
from pushctl.emulator.hms import TOKEN_PATH as HMS_TOKEN_PATH
from pushctl.emulator.hms import HmsService
from pushctl.emulator.inbox import Inbox
from pushctl.emulator.oauth import OAuthService, TokenStore
from pushctl.emulator.registry import (
    SAMPLE_APNS_KEY,
    SAMPLE_HMS_APP_ID,
    SAMPLE_HMS_SECRET_FILE,
    SAMPLE_KEY_ID,
    SAMPLE_SERVICE_ACCOUNT,
    SAMPLE_TEAM_ID,
    SAMPLE_TOPIC,
    SAMPLE_VAPID_KEY,
    SAMPLE_VAPID_SUBJECT,
    TOKEN_LISTS,
    Registry,
)
from pushctl.emulator.scenario import FaultInjector, Scenario
from pushctl.emulator.server import H2Server, Request, Response, ServerConfig, json_response
from pushctl.emulator.tls import CertPaths, ensure_certificates, issue_client_certificate, server_context
from pushctl.emulator.webpush import WebPushService
from pushctl.paths import default_emulator_state_dir, make_private_dir, write_private

ENDPOINTS_FILE = "endpoints.json"
SERVICE_ACCOUNT_FILE = "service-account.json"
"""The sample service account with this emulator's ``token_uri``, for google-auth / firebase-admin."""


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    return loop


class Emulator:
    """Local APNs, FCM, Web Push and HMS services that answer like the real ones and record what
    devices received."""

    reuse_port = False
    """Listen with ``SO_REUSEPORT`` (set by the multi-process workers, see :mod:`.workers`)."""
    publish_endpoints = True
    """Write (and on stop remove) ``endpoints.json``; the workers' parent writes it instead."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        scenario: Scenario | None = None,
        apns_port: int = 0,
        fcm_port: int = 0,
        webpush_port: int = 0,
        hms_port: int = 0,
        seed: int | None = None,
        host: str = "127.0.0.1",
        **options: Any,
    ) -> None:
        self.state_dir = Path(state_dir or default_emulator_state_dir()).resolve()
        self.scenario = copy.deepcopy(scenario) if scenario is not None else Scenario()
        self.scenario.apply(options)
        self.options = self.scenario.options
        self.host = host
        self._wanted_ports = (apns_port, fcm_port, webpush_port, hms_port)
        self.registry = Registry.with_samples()
        self._apply_registry(self.scenario.registry)
        self.inbox = Inbox()
        self.tokens = TokenStore()
        self.faults = FaultInjector(self.scenario.faults, seed if seed is not None else self.scenario.seed)
        self.apns = ApnsService(self.registry, self.inbox, self.options, self.faults)
        self.oauth = OAuthService(self.registry, self.tokens, self.options, self.faults)
        self.fcm = FcmService(self.registry, self.inbox, self.tokens, self.options, self.faults)
        self.broadcast = BroadcastService(self.registry, self.inbox, self.apns)
        self.webpush = WebPushService(self.registry, self.inbox, self.options, self.faults)
        self.hms_tokens = TokenStore()
        self.hms = HmsService(self.registry, self.inbox, self.hms_tokens, self.options, self.faults)
        self._certs: CertPaths | None = None
        self.admin_token = ""
        """The bearer token the admin endpoints want (from the state dir, set by :meth:`astart`)."""
        self._servers: list[H2Server] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _apply_registry(self, spec: dict[str, Any]) -> None:
        reg = self.registry
        for entry in spec.get("apns_keys", []):
            reg.register_apns_key(
                entry["path"],
                entry["key_id"],
                entry["team_id"],
                entry.get("topics", []),
                environments=tuple(entry.get("environments", ("sandbox", "production"))),
            )
        for entry in spec.get("service_accounts", []):
            reg.register_service_account(entry["path"])
        for name in TOKEN_LISTS:
            if name in spec:
                reg.add_tokens(name, list(spec[name]))
        for name, path in spec.get("files", {}).items():
            reg.load_token_file(name, path)
        reg.revoked_keys.update(spec.get("revoked_keys", []))
        reg.bad_apns_credentials_projects.update(spec.get("bad_apns_credentials_projects", []))
        reg.hms_apps.update(spec.get("hms_apps", {}))
        reg.add_broadcasts(spec)

    # -- addresses --------------------------------------------------------------------

    @property
    def apns_url(self) -> str:
        """``https://127.0.0.1:PORT`` of the APNs side (after start)."""
        return f"https://{self.host}:{self._servers[0].port}"

    @property
    def fcm_url(self) -> str:
        """``https://127.0.0.1:PORT`` of the FCM side (also serves /token and /_emulator/)."""
        return f"https://{self.host}:{self._servers[1].port}"

    @property
    def webpush_url(self) -> str:
        """``https://127.0.0.1:PORT`` of the Web Push service (subscriptions live under ``/wp/``)."""
        return f"https://{self.host}:{self._servers[2].port}"

    @property
    def hms_url(self) -> str:
        """``https://127.0.0.1:PORT`` of the HMS side (``/oauth2/v3/token``, ``/v1/<app>/messages:send``)."""
        return f"https://{self.host}:{self._servers[3].port}"

    @property
    def token_uri(self) -> str:
        """The OAuth2 token endpoint service-account assertions must name as ``aud``."""
        return self.fcm_url + "/token"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients must trust."""
        return self.state_dir / "ca.pem"

    # -- lifecycle -----------------------------------------------------------------------

    async def astart(self) -> None:
        """Start the servers on the running event loop."""
        self._certs = ensure_certificates(self.state_dir)
        self.admin_token = ensure_admin_token(self.state_dir)
        opts, faults = self.options, self.scenario.faults
        fcm_cfg = ServerConfig(
            max_concurrent_streams=opts.max_concurrent_streams,
            goaway_after=faults.goaway_after,
            drop_after=faults.drop_after,
            idle_timeout=opts.idle_timeout,
        )
        apns_cfg = dataclasses.replace(fcm_cfg, initial_streams=1 if opts.single_stream_until_auth else None)
        with_client_cert = server_context(self._certs, request_client_cert=True)
        apns = H2Server(self._route_apns_port, with_client_cert, apns_cfg, host=self.host)
        plain = server_context(self._certs, request_client_cert=False)
        # Google's front ends speak HTTP/1.1 too (requests-based clients need it); so do push
        # services (Mozilla autopush) and Huawei's.
        fcm = H2Server(self._route_fcm_port, plain, fcm_cfg, host=self.host, http1=True)
        webpush = H2Server(self.webpush.handle, plain, fcm_cfg, host=self.host, http1=True)
        hms = H2Server(self.hms.handle, plain, fcm_cfg, host=self.host, http1=True)
        self._servers = [apns, fcm, webpush, hms]
        for server, port in zip(self._servers, self._wanted_ports, strict=True):
            await server.start(port, reuse_port=self.reuse_port)
        self.oauth.token_uri = self.token_uri
        port = self._servers[2].port
        self.webpush.origins = frozenset({f"https://127.0.0.1:{port}", f"https://localhost:{port}",
                                          f"https://{self.host}:{port}"})
        self._write_endpoints()

    async def astop(self) -> None:
        """Stop the servers and close their connections."""
        for server in self._servers:
            await server.stop()
        if self.publish_endpoints:
            with contextlib.suppress(OSError):
                (self.state_dir / ENDPOINTS_FILE).unlink()

    def start(self) -> Emulator:
        """Run the servers on a background thread with its own event loop; returns when listening."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = self._loop = _new_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.astop())
            loop.close()

        self._thread = threading.Thread(target=run, name="pushctl-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a :meth:`start`-ed emulator and wait for its thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # -- helpers for tests and the CLI --------------------------------------------------------------

    def issue_client_certificate(
        self, topic: str | None, directory: Path, *, environment: str = "sandbox"
    ) -> tuple[Path, Path]:
        """Issue a client certificate (PEM cert, PEM key) for certificate auth on the APNs port."""
        certs = self._certs or ensure_certificates(self.state_dir)
        return issue_client_certificate(certs, topic, directory, environment=environment)

    def register_apns_key(self, path: Path, key_id: str, team_id: str, topics: list[str], **kw: Any) -> None:
        """Register another ``.p8`` key (see :meth:`Registry.register_apns_key`)."""
        self.registry.register_apns_key(path, key_id, team_id, topics, **kw)

    def begin_shutdown(self) -> None:
        """Answer every further APNs push 503 ``Shutdown`` (as APNs does while a server drains)."""
        self.apns.shutting_down = True

    def open_connections(self) -> int:
        """Client connections open right now, on every server.

        After a client dies, bytes it had already written can still sit in the server's socket
        buffer and be answered (and recorded in the inbox) a moment later; zero here means the
        emulator has read everything the client sent.
        """
        return sum(len(server.connections) for server in self._servers)

    def admin_headers(self) -> dict[str, str]:
        """The ``authorization`` header for this emulator's ``/_emulator/`` endpoints (after start)."""
        return admin_headers(self.admin_token)

    def stats(self) -> dict[str, Any]:
        """Answer counts per side and status, the inbox total and the open connections."""
        return {
            "apns": dict(self.apns.stats),
            "fcm": dict(self.fcm.stats),
            "oauth": dict(self.oauth.stats),
            "webpush": dict(self.webpush.stats),
            "hms": dict(self.hms.stats),
            "broadcast": dict(self.broadcast.stats),
            "inbox_total": self.inbox.total(),
            "connections": self.open_connections(),
        }

    def write_profile(self, config_path: Path, name: str = "emulator") -> Path:
        """Merge a profile for this emulator into ``config_path`` (TOML, mode 0600); returns the path.

        ``default_profile`` is set only when the file has none.
        """
        return write_profile(
            config_path,
            name,
            ca_file=self.ca_file,
            apns_url=self.apns_url,
            fcm_url=self.fcm_url,
            token_uri=self.token_uri,
            webpush_url=self.webpush_url,
            hms_url=self.hms_url,
        )

    def _write_endpoints(self) -> None:
        if not self.publish_endpoints:
            return
        info = {
            "apns_url": self.apns_url,
            "fcm_url": self.fcm_url,
            "token_uri": self.token_uri,
            "webpush_url": self.webpush_url,
            "hms_url": self.hms_url,
            "ca_file": str(self.ca_file),
            "service_account": str(write_service_account(self.state_dir, self.token_uri)),
            "pid": os.getpid(),
        }
        write_private(self.state_dir / ENDPOINTS_FILE, json.dumps(info, indent=2) + "\n")

    # -- port routing and admin endpoints --------------------------------------------------------------

    def _route_apns_port(self, req: Request) -> Response:
        if self.broadcast.handles(req.path):
            return self.broadcast.handle(req)
        return self.apns.handle(req)

    def _route_fcm_port(self, req: Request) -> Response:
        if req.path.startswith("/v1/"):
            return self.fcm.handle(req)
        if req.path == "/token":
            return self.oauth.handle(req)
        if req.path.startswith(ADMIN_PREFIX):
            refused = refusal(_header(req, "authorization"), self.admin_token)
            if refused is not None:
                headers = [("www-authenticate", REALM)] if refused[0] == 401 else []
                return json_response(*refused, headers)
            return self._admin(req)
        return self.fcm.handle(req)

    def _admin(self, req: Request) -> Response:
        status, body = self.admin_view(req.method, req.path, req.body)
        return json_response(status, body)

    def admin_view(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        """Answer an ``/_emulator/...`` admin request from this process's own state: (status, JSON).

        Thread-safe (the inbox locks; counters are copied), so a worker's private admin
        server may call it from another thread.
        """
        url = urlsplit(path)
        if url.path == "/_emulator/stats" and method == "GET":
            return 200, self.stats()
        if url.path == "/_emulator/inbox":
            if method == "DELETE":
                self.inbox.clear()
                return 200, {"cleared": True}
            token = parse_qs(url.query).get("token", [None])[0]
            if token is not None and token.startswith("https://"):
                token = inbox_key(token)
            if token is not None:
                deliveries = [d.to_json() for d in self.inbox.received(token)]
                return 200, {"token": token, "count": len(deliveries), "deliveries": deliveries}
            counts = {t: self.inbox.count(t) for t in sorted(self.inbox.tokens())}
            return 200, {"total": self.inbox.total(), "counts": counts}
        if url.path == "/_emulator/subscribe" and method == "POST":
            return self.subscribe_devices(body)
        return 404, {"error": "unknown admin endpoint"}

    def subscribe_devices(self, body: bytes) -> tuple[int, Any]:
        """``{"fcm_topic": name | "apns_channel": id, "tokens": [...]}``: devices join a broadcast."""
        try:
            spec = json.loads(body or b"{}")
            tokens = [str(t) for t in spec["tokens"]]
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "expected {fcm_topic | apns_channel, tokens: [...]}"}
        if spec.get("fcm_topic"):
            topic = str(spec["fcm_topic"])
            self.registry.add_broadcasts({"fcm_topics": {topic: tokens}})
            return 200, {"fcm_topic": topic, "subscribers": len(self.registry.fcm_topics[topic])}
        channel = self.registry.apns_channels.get(str(spec.get("apns_channel")))
        if channel is None:
            return 404, {"error": f"no APNs channel {spec.get('apns_channel')!r} (create it first)"}
        channel.subscribers.update(tokens)
        return 200, {"apns_channel": channel.channel_id, "subscribers": len(channel.subscribers)}


def inbox_key(token: str) -> str:
    """The inbox key of a device: Web Push subscriptions (endpoint URLs) are kept by their id,
    the last path segment, since a profile's ``webpush.endpoint`` may have rerouted the URL."""
    if token.startswith("https://"):
        return urlsplit(token).path.rstrip("/").rsplit("/", 1)[-1]
    return token


def _header(req: Request, name: str) -> str | None:
    for key, value in req.headers:
        if key == name:
            return value
    return None


def write_profile(
    config_path: Path,
    name: str,
    *,
    ca_file: Path,
    apns_url: str,
    fcm_url: str,
    token_uri: str,
    webpush_url: str | None = None,
    hms_url: str | None = None,
) -> Path:
    """Merge an emulator profile into ``config_path`` (TOML, mode 0600); returns the path.

    An existing file keeps its comments and other profiles: only the ``[profiles.<name>...]``
    tables are replaced. ``default_profile`` is set only in a file this creates, so a user's
    commands without ``--profile`` never start going to the emulator behind their back.
    """
    config_path = Path(config_path).resolve()
    profile: dict[str, Any] = {
        "ca_file": str(ca_file),
        "apns": {
            "environment": "sandbox",
            "endpoint": apns_url,
            "key_file": str(SAMPLE_APNS_KEY),
            "key_id": SAMPLE_KEY_ID,
            "team_id": SAMPLE_TEAM_ID,
            "topic": SAMPLE_TOPIC,
            "channels_endpoint": apns_url,
        },
        "fcm": {
            "service_account": str(SAMPLE_SERVICE_ACCOUNT),
            "endpoint": fcm_url,
            "token_uri": token_uri,
        },
    }
    if webpush_url is not None:
        profile["webpush"] = {
            "vapid_private_key": str(SAMPLE_VAPID_KEY),
            "subject": SAMPLE_VAPID_SUBJECT,
            # Every subscription goes to the emulator, wherever its endpoint points.
            "endpoint": webpush_url,
        }
    if hms_url is not None:
        profile["hms"] = {
            "app_id": SAMPLE_HMS_APP_ID,
            "client_secret_file": str(SAMPLE_HMS_SECRET_FILE),
            "endpoint": hms_url,
            "token_url": hms_url + HMS_TOKEN_PATH,
        }
    if config_path.exists():
        text = _replace_profile_tables(config_path.read_text(), name, profile)
    else:
        text = tomli_w.dumps({"default_profile": name, "profiles": {name: profile}})
    make_private_dir(config_path.parent)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    config_path.chmod(0o600)
    return config_path


def write_service_account(state_dir: Path, token_uri: str) -> Path:
    """Write the sample service account with ``token_uri`` set to this emulator's (mode 0600).

    google-auth (and so firebase-admin) posts its JWT assertion to the ``token_uri`` of the
    service-account file, so this copy is all such a client needs to get its access tokens here.
    """
    account = json.loads(SAMPLE_SERVICE_ACCOUNT.read_text())
    account["token_uri"] = token_uri
    path = state_dir / SERVICE_ACCOUNT_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(account, indent=2) + "\n")
    return path


def _replace_profile_tables(text: str, name: str, profile: dict[str, Any]) -> str:
    """``text`` without its ``[profiles.<name>]`` / ``[profiles.<name>.*]`` tables, plus new ones."""
    header = re.compile(rf"^\s*\[\s*profiles\.{re.escape(name)}(\.[A-Za-z_]+)?\s*\]\s*(#.*)?$")
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            skipping = bool(header.match(line))
        if not skipping:
            kept.append(line)
    merged = "\n".join(kept).rstrip() + "\n\n" + tomli_w.dumps({"profiles": {name: profile}})
    try:
        data = tomllib.loads(merged)
        if data.get("profiles", {}).get(name) == profile:
            return merged
    except tomllib.TOMLDecodeError:
        pass
    # The profile was written some other way (inline or dotted keys): rewrite the whole file.
    data = tomllib.loads(text)
    data.setdefault("profiles", {})[name] = profile
    return tomli_w.dumps(data)


def read_endpoints(state_dir: Path | None = None) -> dict[str, Any]:
    """The ``endpoints.json`` a running emulator wrote (raises FileNotFoundError if none runs)."""
    path = Path(state_dir or default_emulator_state_dir()) / ENDPOINTS_FILE
    data: dict[str, Any] = json.loads(path.read_text())
    return data
