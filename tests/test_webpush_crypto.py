"""RFC 8291 encryption: the RFC's own example, an independent implementation (http_ece) both ways,
and the request pushctl builds (plaintext JSON, headers, size limit)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushctl.emulator import issue_subscription, subscription_keys
from pushctl.emulator.webpush import decrypt
from pushctl.errors import PayloadError
from pushctl.message import PLAINTEXT_LIMIT, Template, build_webpush, encrypt, topic_for
from pushctl.model import Device, Platform


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rfc8291_appendix_a_example_byte_for_byte() -> None:
    ua = ec.derive_private_key(
        int.from_bytes(unb64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"), "big"), ec.SECP256R1()
    )
    ua_public = b64(ua.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    sender = ec.derive_private_key(
        int.from_bytes(unb64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"), "big"), ec.SECP256R1()
    )
    body = encrypt(
        b"When I grow up, I want to be a watermelon",
        ua_public,
        "BTBZMqHH6r4Tts7J_aSIgg",
        salt=unb64("DGv6ra1nlYgDCS1FRnbzlw"),
        sender_key=sender,
    )
    assert b64(body) == (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8"
        "wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    )


def test_http_ece_decrypts_what_pushctl_encrypts() -> None:
    sub = issue_subscription("https://push.example", "emu-crypto-1")
    private, auth = subscription_keys("emu-crypto-1")
    plaintext = json.dumps({"title": "Hi ✓", "options": {"body": "x" * 500}}).encode()
    body = encrypt(plaintext, sub["keys"]["p256dh"], sub["keys"]["auth"])
    assert http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm") == plaintext


def test_the_emulator_decrypts_what_http_ece_encrypts() -> None:
    # The emulator's decryption is checked against the independent implementation too: a bug there
    # could otherwise hide a matching bug in pushctl's encryption.
    private, auth = subscription_keys("emu-crypto-2")
    sender = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(
        b"hello",
        private_key=sender,
        dh=private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        auth_secret=auth,
        version="aes128gcm",
    )
    assert decrypt(body, private, auth) == b"hello"
    with pytest.raises(ValueError, match="tag"):
        decrypt(body, *subscription_keys("emu-someone-else"))


def test_issued_keys_are_the_test_keys_of_the_id() -> None:
    sub = issue_subscription("https://127.0.0.1:1234/", "emu-x")
    private, auth = subscription_keys("emu-x")
    assert sub["endpoint"] == "https://127.0.0.1:1234/wp/emu-x"
    assert unb64(sub["keys"]["p256dh"]) == private.public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    assert unb64(sub["keys"]["auth"]) == auth


def _render(tmp_path: Path, source: str, **attrs: str) -> tuple[Device, object]:
    path = tmp_path / "t.yaml"
    path.write_text(source)
    sub = issue_subscription("https://push.example", "emu-render")
    device = Device(
        sub["endpoint"],
        Platform.WEBPUSH,
        {"p256dh": sub["keys"]["p256dh"], "auth": sub["keys"]["auth"], **attrs},
    )
    return device, Template.load(path).render(device)


def test_request_plaintext_headers_and_encrypted_size(tmp_path: Path) -> None:
    device, note = _render(
        tmp_path,
        (
            "title: 'Hi {{ name }}'\nbody: Sale\npriority: high\nttl: 1h\n"
            "media: {url: 'https://cdn.example/a.jpg'}\ndata: {deep_link: 'example://x'}\n"
            "webpush:\n  icon: https://example.com/i.png\n  url: https://example.com/sale\n"
            "  requireInteraction: true\n"
            "  actions: [{action: open, title: Open, url: 'https://example.com/open'}]\n"
        ),
        name="Ana",
    )
    req = build_webpush(
        note,
        device.token,
        p256dh=device.attrs["p256dh"],
        auth=device.attrs["auth"],  # type: ignore[arg-type]
        default_collapse_id="pushctl-c-0123.abc",
    )
    message = json.loads(req.plaintext)
    assert message == {
        "title": "Hi Ana",
        "options": {
            "body": "Sale",
            "icon": "https://example.com/i.png",
            "image": "https://cdn.example/a.jpg",
            "tag": "pushctl-c-0123.abc",
            "requireInteraction": True,
            "actions": [{"action": "open", "title": "Open"}],
            "data": {
                "deep_link": "example://x",
                "url": "https://example.com/sale",
                "action_urls": {"open": "https://example.com/open"},
            },
        },
    }
    headers = dict(req.headers)
    assert headers["ttl"] == "3600" and headers["urgency"] == "high"
    # The collapse id has a '.', outside the URL-safe alphabet: a stable 32-character hash stands in.
    assert headers["topic"] == topic_for("pushctl-c-0123.abc") and len(headers["topic"]) == 32
    assert topic_for("spring-sale") == "spring-sale"
    assert headers["content-encoding"] == "aes128gcm"
    assert len(req.body) == len(req.plaintext) + 86 + 17  # header, padding delimiter, GCM tag
    private, auth = subscription_keys("emu-render")
    assert decrypt(req.body, private, auth) == req.plaintext


def test_a_payload_over_one_record_is_refused_before_sending(tmp_path: Path) -> None:
    device, note = _render(tmp_path, "title: t\nbody: '{{ text }}'\n", text="x" * PLAINTEXT_LIMIT)
    with pytest.raises(PayloadError, match="over the Web Push limit of 3,993"):
        build_webpush(note, device.token, p256dh=device.attrs["p256dh"], auth=device.attrs["auth"])  # type: ignore[arg-type]
