"""Web Push end to end on the emulator: what a subscription decrypts is exactly the rendered JSON;
410 subscriptions are pruned; one JWT and one pool per push-service origin; HTTP/1.1 services."""

from __future__ import annotations

import asyncio
import csv
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.config import resolve_profile
from pushctl.credentials import generate_vapid_key, load_vapid_key
from pushctl.emulator import Emulator, issue_subscription
from pushctl.emulator.emulator import write_profile
from pushctl.emulator.server import Request
from pushctl.emulator.tls import ensure_certificates
from pushctl.journal import collapse_id_for
from pushctl.message import Template
from pushctl.message.webpush import notification_json
from pushctl.model import Device, Platform
from pushctl.providers import AttemptKind
from pushctl.providers.webpush import VapidSigner, WebPushProvider

TEMPLATE = (
    "title: 'Hello {{ name }}'\nbody: 'Your order {{ order }} has shipped'\nttl: 2h\npriority: high\n"
    "data: {order: '{{ order }}'}\n"
    "webpush:\n  icon: https://shop.example/icon.png\n  url: 'https://shop.example/orders/{{ order }}'\n"
    "  actions: [{action: track, title: Track, url: 'https://shop.example/track/{{ order }}'}]\n"
)


def _audience(path: Path, subs: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subscription", "name", "order"])
        for i, sub in enumerate(subs):
            writer.writerow([json.dumps(sub), f"user{i}", f"A-{i:03d}"])


def _send(config: Path, template: Path, audience: Path, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "--profile",
            "emulator",
            "--output",
            "json",
            "send",
            str(template),
            "--audience",
            str(audience),
            *extra,
        ],
    )
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()]


def test_each_subscription_decrypts_to_exactly_the_rendered_json(tmp_path: Path) -> None:
    template = tmp_path / "order.yaml"
    template.write_text(TEMPLATE)
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        subs = [issue_subscription(emu.webpush_url) for _ in range(3)]
        subs.append(issue_subscription(emu.webpush_url, "gone-unsubscribed-1"))
        _audience(tmp_path / "audience.csv", subs)
        code, objs = _send(
            config,
            template,
            tmp_path / "audience.csv",
            "--campaign",
            "orders",
            "--invalid-tokens",
            str(tmp_path / "prune.txt"),
        )
        inbox = {d.token: d for d in emu.inbox.all()}
    assert code == 1  # the gone subscription
    results = {o["token"]: o for o in objs if o["type"] == "result"}
    assert results[subs[3]["endpoint"]]["outcome"] == "invalid_token"
    assert results[subs[3]["endpoint"]]["reason"] == "Gone" and results[subs[3]["endpoint"]]["status"] == 410
    assert subs[3]["endpoint"] in (tmp_path / "prune.txt").read_text()
    tpl = Template.load(template)
    for i, sub in enumerate(subs[:3]):
        assert (
            results[sub["endpoint"]]["outcome"] == "delivered" and results[sub["endpoint"]]["status"] == 201
        )
        device = Device(
            sub["endpoint"], Platform.WEBPUSH, {"name": f"user{i}", "order": f"A-{i:03d}", **sub["keys"]}
        )
        expected = notification_json(tpl.render(device), tag=collapse_id_for("orders"))
        delivery = inbox[sub["endpoint"].rsplit("/", 1)[1]]
        assert delivery.payload == expected  # decrypted by the emulator with the subscription's own key
        assert delivery.payload["options"]["data"]["url"] == f"https://shop.example/orders/A-{i:03d}"
        assert delivery.headers["ttl"] == "7200" and delivery.headers["urgency"] == "high"
        assert delivery.headers["topic"] == "pushctl-orders"  # the campaign's collapse id


async def _push_all(provider: WebPushProvider, devices: list[Device]) -> list[Any]:
    note = Template.load(Path(__file__).parent.parent / "samples" / "templates" / "welcome.yaml")
    try:
        return [await provider.send(provider.prepare(d, note.render(d), collapse_id=None)) for d in devices]
    finally:
        await provider.close()


def _devices(subs: list[dict[str, Any]]) -> list[Device]:
    return [Device(s["endpoint"], Platform.WEBPUSH, {"name": "x", **s["keys"]}) for s in subs]


def test_one_jwt_and_one_pool_per_origin_reused_for_every_push(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        port = emu.webpush_url.rsplit(":", 1)[1]
        subs = [issue_subscription(f"https://{host}:{port}") for host in ("127.0.0.1", "localhost") * 3]
        key = generate_vapid_key(tmp_path / "vapid.pem")
        provider = WebPushProvider(VapidSigner(key, "mailto:ops@example.com"), ca_file=emu.ca_file)
        attempts = asyncio.run(_push_all(provider, _devices(subs)))
        received = emu.inbox.total()
    assert [a.kind for a in attempts] == [AttemptKind.DELIVERED] * 6
    assert provider.signer.signed == 2  # one JWT per origin (aud), reused for the other pushes
    assert received == 6


def test_a_subscription_made_with_another_key_is_invalid_for_this_key(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        other = generate_vapid_key(tmp_path / "other.pem")
        mine = generate_vapid_key(tmp_path / "mine.pem")
        subs = [
            issue_subscription(emu.webpush_url, application_server_key=k.application_server_key)
            for k in (other, mine)
        ]
        provider = WebPushProvider(VapidSigner(mine, "mailto:ops@example.com"), ca_file=emu.ca_file)
        attempts = asyncio.run(_push_all(provider, _devices(subs)))
    assert attempts[0].kind is AttemptKind.INVALID_TOKEN and attempts[0].status == 403
    assert "VapidKeyMismatch" in attempts[0].reason or "application server key" in attempts[0].reason
    assert attempts[1].kind is AttemptKind.DELIVERED


def test_a_refused_jwt_stops_the_campaign_naming_the_key_to_fix(tmp_path: Path) -> None:
    # aud must be the push service's origin: an emulator that knows itself under another name refuses it.
    with Emulator(tmp_path / "emu") as emu:
        emu.webpush.origins = frozenset({"https://push.elsewhere.example"})
        config = emu.write_profile(tmp_path / "config.toml")
        template = tmp_path / "t.yaml"
        template.write_text(TEMPLATE)
        _audience(tmp_path / "a.csv", [issue_subscription(emu.webpush_url) for _ in range(2)])
        code, objs = _send(config, template, tmp_path / "a.csv")
    assert code == 3
    refused = [o for o in objs if o["type"] == "result" and o["outcome"] == "auth_failed"]
    assert refused and "BadJwtAudience" in refused[0]["reason"]
    assert "webpush.vapid_private_key" in refused[0]["reason"]


@pytest.fixture
def http11_push_service(tmp_path: Path) -> Iterator[tuple[str, Emulator]]:
    """The emulator's Web Push service behind a plain HTTP/1.1-only TLS server (no HTTP/2 offered)."""
    emu = Emulator(tmp_path / "emu")
    certs = ensure_certificates(tmp_path / "emu")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = [(k.lower(), v) for k, v in self.headers.items()]
            answer = emu.webpush.handle(Request("POST", self.path, headers, body, 1, None))  # type: ignore[arg-type]
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    origin = f"https://127.0.0.1:{server.server_address[1]}"
    emu.webpush.origins = frozenset({origin})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin, emu
    finally:
        server.shutdown()
        server.server_close()


def test_a_push_service_without_http2_is_spoken_to_over_http11(
    tmp_path: Path, http11_push_service: tuple[str, Emulator]
) -> None:
    origin, emu = http11_push_service
    subs = [issue_subscription(origin) for _ in range(3)]
    key = generate_vapid_key(tmp_path / "vapid.pem")
    provider = WebPushProvider(
        VapidSigner(key, "mailto:ops@example.com"), ca_file=tmp_path / "emu" / "ca.pem"
    )
    client = provider.origin(subs[0]["endpoint"])
    attempts = asyncio.run(_push_all(provider, _devices(subs)))
    assert [a.kind for a in attempts] == [AttemptKind.DELIVERED] * 3
    assert client.protocol == "http/1.1"
    assert [d.payload["title"] for d in emu.inbox.all()] == ["Welcome, x!"] * 3


def test_the_emulator_profile_sends_every_subscription_to_the_emulator(tmp_path: Path) -> None:
    # The sample audience's subscription points at a real push service's host; the profile's
    # webpush.endpoint reroutes it (the path, hence the subscription id, is kept).
    config = write_profile(
        tmp_path / "c.toml",
        "emulator",
        ca_file=tmp_path / "ca.pem",
        apns_url="https://127.0.0.1:1",
        fcm_url="https://127.0.0.1:2",
        token_uri="https://127.0.0.1:2/token",
        webpush_url="https://127.0.0.1:3",
        hms_url="https://127.0.0.1:4",
    )
    profile = resolve_profile(config, "emulator")
    assert profile.webpush.endpoint == "https://127.0.0.1:3"
    assert load_vapid_key(profile.webpush.vapid_private_key).application_server_key  # type: ignore[arg-type]
