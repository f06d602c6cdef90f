"""APNs emulator: every reason string of the fact sheet, produced by a request that triggers it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushctl.emulator import Emulator, client_context
from pushctl.emulator.registry import SAMPLE_APNS_KEY

GOOD = "ab" * 32
TOPIC = "com.example.pushctl"
BODY = b'{"aps":{"alert":"hi"}}'


def make_jwt(
    key_pem: str | None = None, kid: str = "EMU0000001", iss: str = "EMUTEAM001", iat: int | None = None
) -> str:
    return jwt.encode(
        {"iss": iss, "iat": int(time.time()) if iat is None else iat},
        key_pem or SAMPLE_APNS_KEY.read_text(),
        algorithm="ES256",
        headers={"kid": kid},
    )


# Reused like a real client reuses its token: a fresh JWT per request would (rightly) get 429.
DEFAULT_JWT = make_jwt()


def new_p8(directory: Path, name: str) -> tuple[Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = directory / f"{name}.p8"
    path.write_text(pem)
    return path, pem


def client(emu: Emulator, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    ctx = client_context(emu.ca_file, *(cert or (None, None)))
    return httpx.Client(http2=True, verify=ctx, timeout=10)


def push(
    c: httpx.Client,
    emu: Emulator,
    token: str = GOOD,
    *,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = BODY,
    auth: str | None = "default",
    method: str = "POST",
    path: str | None = None,
) -> httpx.Response:
    hdrs: list[tuple[str, str]] = []
    if auth == "default":
        hdrs.append(("authorization", f"bearer {DEFAULT_JWT}"))
    elif auth is not None:
        hdrs.append(("authorization", f"bearer {auth}"))
    extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if not any(k == "apns-topic" for k, _ in extra) and not any(k == "no-topic" for k, _ in extra):
        hdrs.append(("apns-topic", TOPIC))
    hdrs += [(k, v) for k, v in extra if k != "no-topic"]
    url = emu.apns_url + (path if path is not None else f"/3/device/{token}")
    return c.request(method, url, headers=hdrs, content=body)


def test_valid_jwt_gets_200_with_apns_id_and_is_recorded(emulator: Emulator) -> None:
    with client(emulator) as c:
        r = push(c, emulator)
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200
        assert len(r.headers["apns-id"]) == 36
        echoed = push(c, emulator, headers={"apns-id": "123E4567-E89B-12D3-A456-426614174000"})
    assert echoed.status_code == 200
    assert echoed.headers["apns-id"] == "123e4567-e89b-12d3-a456-426614174000"
    assert [d.message_id for d in emulator.inbox.received(GOOD)] == [
        r.headers["apns-id"],
        "123e4567-e89b-12d3-a456-426614174000",
    ]


def test_bad_jwt_gets_403_invalid_provider_token(emulator: Emulator, tmp_path: Path) -> None:
    _, other = new_p8(tmp_path, "other")
    with client(emulator) as c:
        r = push(c, emulator, auth=make_jwt(other))  # right kid, wrong key: bad signature
    assert (r.status_code, r.json()) == (403, {"reason": "InvalidProviderToken"})
    assert emulator.inbox.total() == 0


def test_voip_payload_limit_is_5120(emulator: Emulator) -> None:
    body = b'{"aps":{},"x":"' + b"a" * 4500 + b'"}'
    with client(emulator) as c:
        voip = push(c, emulator, headers={"apns-topic": TOPIC + ".voip", "apns-push-type": "voip"}, body=body)
        alert = push(c, emulator, body=body)
    assert voip.status_code == 200
    assert (alert.status_code, alert.json()["reason"]) == (413, "PayloadTooLarge")


def test_unregistered_carries_timestamp(emulator: Emulator) -> None:
    emulator.registry.add_tokens("unregistered", ["cd" * 32])
    with client(emulator) as c:
        builtin = push(c, emulator, "dead" + "00" * 30)
        listed = push(c, emulator, "cd" * 32)
    assert builtin.status_code == listed.status_code == 410
    assert builtin.json()["reason"] == "Unregistered" and isinstance(builtin.json()["timestamp"], int)
    assert listed.json()["timestamp"] > 1_700_000_000_000


# Each case: (reason, status, emulator options, function(emu, tmp_path) -> response)
Case = Callable[[Emulator, Path], httpx.Response]


def _simple(**kw: Any) -> Case:
    def run(emu: Emulator, tmp: Path) -> httpx.Response:
        with client(emu) as c:
            return push(c, emu, **kw)

    return run


def _unrelated_kid(emu: Emulator, tmp: Path) -> httpx.Response:
    path, pem = new_p8(tmp, "second")
    emu.register_apns_key(path, "EMU0000002", "EMUTEAM001", [TOPIC])
    with client(emu) as c:
        assert push(c, emu).status_code == 200
        return push(c, emu, auth=make_jwt(pem, kid="EMU0000002"))


def _bad_env_key(emu: Emulator, tmp: Path) -> httpx.Response:
    path, pem = new_p8(tmp, "prod")
    emu.register_apns_key(path, "EMUPROD001", "EMUTEAM001", [TOPIC], environments=("production",))
    with client(emu) as c:
        return push(c, emu, auth=make_jwt(pem, kid="EMUPROD001"))


def _cert(topic: str | None, environment: str = "sandbox", revoke: bool = False) -> Case:
    def run(emu: Emulator, tmp: Path) -> httpx.Response:
        cert = emu.issue_client_certificate(topic, tmp / "certs", environment=environment)
        if revoke:
            from cryptography import x509

            emu.registry.revoked_certificates.add(
                x509.load_pem_x509_certificate(cert[0].read_bytes()).serial_number
            )
        with client(emu, cert) as c:
            return push(c, emu, auth=None, headers={"no-topic": ""})

    return run


def _token_updates(emu: Emulator, tmp: Path) -> httpx.Response:
    now = int(time.time())
    with client(emu) as c:
        assert push(c, emu, auth=make_jwt(iat=now - 120)).status_code == 200
        assert push(c, emu, auth=make_jwt(iat=now - 120)).status_code == 200  # same iat: same token age
        return push(c, emu, auth=make_jwt(iat=now))


def _twice(**kw: Any) -> Case:
    def run(emu: Emulator, tmp: Path) -> httpx.Response:
        with client(emu) as c:
            assert push(c, emu).status_code == 200
            return push(c, emu, **kw)

    return run


def _expired_token(emu: Emulator, tmp: Path) -> httpx.Response:
    emu.registry.add_tokens("expired", ["ef" * 32])
    return _simple(token="ef" * 32)(emu, tmp)


def _shutdown(emu: Emulator, tmp: Path) -> httpx.Response:
    emu.begin_shutdown()
    return _simple()(emu, tmp)


CASES: list[tuple[str, int, dict[str, Any], Case]] = [
    ("BadDeviceToken", 400, {}, _simple(token="xyz")),
    ("DeviceTokenNotForTopic", 400, {}, _simple(token="0bad" + "11" * 30)),
    ("BadCollapseId", 400, {}, _simple(headers={"apns-collapse-id": "c" * 65})),
    ("BadExpirationDate", 400, {}, _simple(headers={"apns-expiration": "tomorrow"})),
    ("BadMessageId", 400, {}, _simple(headers={"apns-id": "not-a-uuid"})),
    ("BadPriority", 400, {}, _simple(headers={"apns-push-type": "background", "apns-priority": "10"})),
    ("BadTopic", 400, {}, _simple(headers={"apns-topic": "com..example!"})),
    ("DuplicateHeaders", 400, {}, _simple(headers=[("apns-topic", TOPIC), ("apns-topic", TOPIC)])),
    ("InvalidPushType", 400, {}, _simple(headers={"apns-push-type": "banana"})),
    ("MissingDeviceToken", 400, {}, _simple(token="")),
    ("MissingTopic", 400, {}, _simple(headers={"no-topic": ""})),
    ("PayloadEmpty", 400, {}, _simple(body=b"")),
    ("TopicDisallowed", 400, {}, _simple(headers={"apns-topic": "com.other.app"})),
    ("ExpiredProviderToken", 403, {}, _simple(auth=make_jwt(iat=int(time.time()) - 7200))),
    ("InvalidProviderToken", 403, {}, _simple(auth="not.a.jwt")),
    ("MissingProviderToken", 403, {}, _simple(auth=None)),
    ("UnrelatedKeyIdInToken", 403, {}, _unrelated_kid),
    ("BadEnvironmentKeyIdInToken", 403, {}, _bad_env_key),
    ("BadCertificate", 403, {}, _cert(None)),
    ("BadCertificateEnvironment", 403, {}, _cert(TOPIC, "production")),
    ("Forbidden", 403, {}, _cert(TOPIC, revoke=True)),
    ("BadPath", 404, {}, _simple(path="/3/devices")),
    ("MethodNotAllowed", 405, {}, _simple(method="GET", body=b"")),
    ("Unregistered", 410, {}, _simple(token="dead" + "ab" * 30)),
    ("ExpiredToken", 410, {}, _expired_token),
    ("PayloadTooLarge", 413, {}, _simple(body=b'{"aps":{"alert":"' + b"x" * 4100 + b'"}}')),
    ("TooManyRequests", 429, {"device_rate_limit": 1}, _twice()),
    ("TooManyProviderTokenUpdates", 429, {}, _token_updates),
    ("InternalServerError", 500, {"errors": [{"status": 500, "rate": 1.0}]}, _simple()),
    ("ServiceUnavailable", 503, {"errors": [{"status": 503, "rate": 1.0, "retry_after": 3}]}, _simple()),
    ("Shutdown", 503, {}, _shutdown),
]


@pytest.mark.parametrize(("reason", "status", "options", "case"), CASES, ids=[c[0] for c in CASES])
def test_every_reason(tmp_path: Path, reason: str, status: int, options: dict[str, Any], case: Case) -> None:
    with Emulator(tmp_path / "state", **options) as emu:
        r = case(emu, tmp_path)
        assert r.status_code == status, r.text
        assert r.json()["reason"] == reason
        assert r.headers["apns-id"]
        # Only the 200 answers (from a case's set-up push) were delivered, never the rejected push.
        assert emu.inbox.total() == emu.stats()["apns"].get("200", 0)


def test_reason_table_is_complete() -> None:
    documented = {
        "BadDeviceToken",
        "DeviceTokenNotForTopic",
        "BadCollapseId",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "BadTopic",
        "DuplicateHeaders",
        "InvalidPushType",
        "MissingDeviceToken",
        "MissingTopic",
        "PayloadEmpty",
        "TopicDisallowed",
        "ExpiredProviderToken",
        "InvalidProviderToken",
        "MissingProviderToken",
        "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyIdInToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "BadPath",
        "MethodNotAllowed",
        "Unregistered",
        "ExpiredToken",
        "PayloadTooLarge",
        "TooManyRequests",
        "TooManyProviderTokenUpdates",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
    }  # IdleTimeout is a GOAWAY reason: see test_emulator_faults.py
    assert {c[0] for c in CASES} == documented


def test_certificate_auth_uses_the_subject_uid_topic(emulator: Emulator, tmp_path: Path) -> None:
    cert = emulator.issue_client_certificate(TOPIC, tmp_path)
    with client(emulator, cert) as c:
        ok = push(c, emulator, auth=None, headers={"no-topic": ""})
        other = push(c, emulator, auth=None, headers={"apns-topic": "com.other.app"})
    assert ok.status_code == 200
    assert other.json()["reason"] == "TopicDisallowed"
    assert emulator.inbox.received(GOOD)[0].headers["apns-topic"] == TOPIC


def test_revoked_key_is_refused(emulator: Emulator) -> None:
    token = DEFAULT_JWT
    with client(emulator) as c:
        assert push(c, emulator, auth=token).status_code == 200
        emulator.registry.revoked_keys.add("EMU0000001")
        r = push(c, emulator, auth=token)  # cached verification must not outlive the revocation
    assert (r.status_code, r.json()["reason"]) == (403, "InvalidProviderToken")


def test_aioapns_client_against_the_emulator(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real third-party client: aioapns has no host option, so its sandbox host is pointed here."""
    aioapns = pytest.importorskip("aioapns")
    from aioapns.connection import APNsDevelopmentClientProtocol

    port = int(emulator.apns_url.rsplit(":", 1)[1])
    monkeypatch.setattr(APNsDevelopmentClientProtocol, "APNS_SERVER", "127.0.0.1")
    monkeypatch.setattr(APNsDevelopmentClientProtocol, "APNS_PORT", port)

    async def run() -> tuple[Any, Any]:
        apns = aioapns.APNs(
            key=SAMPLE_APNS_KEY.read_text(),
            key_id="EMU0000001",
            team_id="EMUTEAM001",
            topic=TOPIC,
            use_sandbox=True,
            ssl_context=client_context(emulator.ca_file),  # verification stays on
        )
        good = await apns.send_notification(
            aioapns.NotificationRequest(device_token=GOOD, message={"aps": {"alert": "hello"}})
        )
        gone = await apns.send_notification(
            aioapns.NotificationRequest(device_token="dead" + "00" * 30, message={"aps": {"alert": "hello"}})
        )
        apns.pool.close()
        await asyncio.sleep(0.1)  # let the transports finish closing before the loop goes away
        return good, gone

    good, gone = asyncio.run(run())
    assert good.is_successful and good.status == "200"
    assert not gone.is_successful
    assert (gone.status, gone.description) == ("410", "Unregistered")
    assert emulator.inbox.count(GOOD) == 1
