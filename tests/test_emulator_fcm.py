"""FCM emulator: OAuth2 token endpoint and messages:send, every error code of the fact sheet."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from pushctl.emulator import Emulator, client_context
from pushctl.emulator.registry import SAMPLE_SERVICE_ACCOUNT

SA = json.loads(SAMPLE_SERVICE_ACCOUNT.read_text())
PROJECT = SA["project_id"]
TOKEN = "fcm-token-" + "a" * 40
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def assertion(emu: Emulator, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": SA["client_email"], "scope": SCOPE, "aud": emu.token_uri, "iat": now, "exp": now + 3600}
    claims.update(overrides)
    return jwt.encode(claims, SA["private_key"], algorithm="RS256", headers={"kid": SA["private_key_id"]})


def client(emu: Emulator) -> httpx.Client:
    return httpx.Client(http2=True, verify=client_context(emu.ca_file), timeout=10)


def get_token(c: httpx.Client, emu: Emulator, **overrides: Any) -> httpx.Response:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion(emu, **overrides),
    }
    return c.post(emu.token_uri, data=form)


def send(
    c: httpx.Client,
    emu: Emulator,
    message: dict[str, Any] | None = None,
    *,
    project: str = PROJECT,
    access: str | None = None,
    validate_only: bool | None = None,
) -> httpx.Response:
    if access is None:
        access = get_token(c, emu).json()["access_token"]
    body: dict[str, Any] = {
        "message": message if message is not None else {"token": TOKEN, "data": {"k": "v"}}
    }
    if validate_only is not None:
        body["validate_only"] = validate_only
    url = f"{emu.fcm_url}/v1/projects/{project}/messages:send"
    return c.post(url, json=body, headers={"authorization": f"Bearer {access}"})


def error_code(r: httpx.Response) -> str:
    details = r.json()["error"]["details"]
    return next(d["errorCode"] for d in details if d["@type"].endswith("FcmError"))


def test_oauth_and_send_success(emulator: Emulator) -> None:
    with client(emulator) as c:
        tok = get_token(c, emulator)
        assert tok.status_code == 200
        assert tok.json()["token_type"] == "Bearer" and tok.json()["expires_in"] == 3600
        r = send(
            c,
            emulator,
            {"token": TOKEN, "android": {"collapse_key": "news", "ttl": "3600s"}},
            access=tok.json()["access_token"],
        )
    assert r.status_code == 200 and r.http_version == "HTTP/2"
    name = r.json()["name"]
    assert name.startswith(f"projects/{PROJECT}/messages/")
    [delivery] = emulator.inbox.received(TOKEN)
    assert (delivery.provider, delivery.collapse_id, delivery.message_id) == ("fcm", "news", name)


def test_validate_only_is_not_delivered(emulator: Emulator) -> None:
    with client(emulator) as c:
        r = send(c, emulator, validate_only=True)
        bad = send(c, emulator, {"token": TOKEN, "data": {"n": 1}}, validate_only=True)
    assert r.json() == {"name": f"projects/{PROJECT}/messages/fake_message_id"}
    assert error_code(bad) == "INVALID_ARGUMENT"  # validated all the same
    assert emulator.inbox.total() == 0


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"aud": "https://accounts.example.com/token"}, "invalid_grant"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
    ],
    ids=["aud", "too-long", "expired", "scope", "unknown-iss"],
)
def test_oauth_rejections(emulator: Emulator, overrides: dict[str, Any], error: str) -> None:
    with client(emulator) as c:
        r = get_token(c, emulator, **overrides)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["error_description"]


def test_oauth_bad_signature_and_grant(emulator: Emulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = int(time.time())
    forged = jwt.encode(
        {"iss": SA["client_email"], "scope": SCOPE, "aud": emulator.token_uri, "iat": now, "exp": now + 600},
        other,
        algorithm="RS256",
    )
    with client(emulator) as c:
        sig = c.post(
            emulator.token_uri,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
        )
        grant = c.post(emulator.token_uri, data={"grant_type": "password", "assertion": forged})
    assert (sig.status_code, sig.json()["error"]) == (400, "invalid_grant")
    assert grant.json()["error"] == "unsupported_grant_type"


def test_expired_access_token_is_401(tmp_path: Path) -> None:
    with Emulator(tmp_path, access_token_lifetime=1) as emu, client(emu) as c:
        access = get_token(c, emu).json()["access_token"]
        assert send(c, emu, access=access).status_code == 200
        time.sleep(1.1)
        r = send(c, emu, access=access)
        bogus = send(c, emu, access="ya29.nope")
    assert r.status_code == bogus.status_code == 401
    assert r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_other_project_is_permission_denied(emulator: Emulator) -> None:
    with client(emulator) as c:
        r = send(c, emulator, project="someone-elses-project")
    assert (r.status_code, r.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


INVALID_MESSAGES: dict[str, dict[str, Any]] = {
    "no-target": {"data": {"a": "b"}},
    "two-targets": {"token": TOKEN, "topic": "news"},
    "data-not-string": {"token": TOKEN, "data": {"n": 1}},
    "reserved-from": {"token": TOKEN, "data": {"from": "x"}},
    "reserved-google": {"token": TOKEN, "data": {"google.x": "y"}},
    "reserved-gcm": {"token": TOKEN, "data": {"gcm.notification.x": "y"}},
    "ttl-format": {"token": TOKEN, "android": {"ttl": "3600"}},
    "ttl-too-long": {"token": TOKEN, "android": {"ttl": "2419201s"}},
    "priority": {"token": TOKEN, "android": {"priority": "urgent"}},
    "too-big": {"token": TOKEN, "data": {"x": "y" * 4100}},
    "topic-too-big": {"topic": "news", "data": {"x": "y" * 2100}},
    "bad-topic": {"topic": "/topics/news"},
    "bad-token": {"token": "short"},
    "unknown-field": {"token": TOKEN, "bogus": 1},
    "color": {"token": TOKEN, "android": {"notification": {"color": "red"}}},
    "link": {"token": TOKEN, "webpush": {"fcm_options": {"link": "http://x"}}},
}


@pytest.mark.parametrize("name", list(INVALID_MESSAGES))
def test_invalid_argument(emulator: Emulator, name: str) -> None:
    with client(emulator) as c:
        r = send(c, emulator, INVALID_MESSAGES[name])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert error_code(r) == "INVALID_ARGUMENT"
    assert emulator.inbox.total() == 0


def test_ttl_with_fraction_and_max_is_accepted(emulator: Emulator) -> None:
    with client(emulator) as c:
        assert send(c, emulator, {"token": TOKEN, "android": {"ttl": "2419200s"}}).status_code == 200
        assert (
            send(c, emulator, {"token": TOKEN, "android": {"ttl": "1.5s", "priority": "high"}}).status_code
            == 200
        )


Case = Callable[[httpx.Client, Emulator], httpx.Response]

CASES: list[tuple[str, int, dict[str, Any], Case]] = [
    ("UNREGISTERED", 404, {}, lambda c, e: send(c, e, {"token": "unregistered" + "x" * 30})),
    ("INVALID_ARGUMENT", 400, {}, lambda c, e: send(c, e, {"token": "bad token!" * 4})),
    ("SENDER_ID_MISMATCH", 403, {}, lambda c, e: send(c, e, {"token": "otherproject" + "x" * 30})),
    ("QUOTA_EXCEEDED", 429, {"fcm_quota_per_minute": 1}, lambda c, e: (send(c, e), send(c, e))[1]),
    (
        "UNAVAILABLE",
        503,
        {"errors": [{"status": 503, "rate": 1.0, "retry_after": 7, "provider": "fcm"}]},
        lambda c, e: send(c, e),
    ),
    ("INTERNAL", 500, {"errors": [{"status": 500, "rate": 1.0, "provider": "fcm"}]}, lambda c, e: send(c, e)),
    (
        "THIRD_PARTY_AUTH_ERROR",
        401,
        {},
        lambda c, e: send(c, e, {"token": TOKEN, "apns": {"payload": {"aps": {"alert": "hi"}}}}),
    ),
]


@pytest.mark.parametrize(("code", "status", "options", "case"), CASES, ids=[c[0] for c in CASES])
def test_every_error_code(
    tmp_path: Path, code: str, status: int, options: dict[str, Any], case: Case
) -> None:
    with Emulator(tmp_path, **options) as emu, client(emu) as c:
        emu.registry.bad_apns_credentials_projects.add(PROJECT)
        r = case(c, emu)
        assert r.status_code == status, r.text
        assert error_code(r) == code
        if status in (429, 503):
            assert int(r.headers["retry-after"]) > 0
        assert emu.inbox.total() == emu.fcm.stats.get("200", 0)


def test_collapse_ids_from_apns_and_webpush(emulator: Emulator) -> None:
    with client(emulator) as c:
        send(c, emulator, {"token": TOKEN, "webpush": {"headers": {"Topic": "w1"}}})
        emulator.registry.bad_apns_credentials_projects.clear()
        send(c, emulator, {"token": TOKEN, "apns": {"headers": {"apns-collapse-id": "a1"}}})
    assert [d.collapse_id for d in emulator.inbox.received(TOKEN)] == ["w1", "a1"]


def test_oauth_accepts_googles_own_audience(emulator: Emulator) -> None:
    # google-auth always names Google's token endpoint as aud, wherever its token_uri points.
    with client(emulator) as c:
        r = get_token(c, emulator, aud="https://oauth2.googleapis.com/token")
    assert r.status_code == 200 and r.json()["access_token"].startswith("ya29.")
