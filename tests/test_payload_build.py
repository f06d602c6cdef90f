"""APNs and FCM request building: exact bytes, headers, media, merges and limits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pushctl.errors import PayloadError
from pushctl.message import APNS_LIMIT, APNS_VOIP_LIMIT, FCM_LIMIT, Media, Notification, build_apns, build_fcm
from pushctl.model import Platform

TOKEN = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"
FCM_TOKEN = "jORS_6ilI8ihN5KXSc7Tvo:APA91b_hBKqFYY_kv5ZJr3J1TWDtkwtDDb"


def note(**changes: Any) -> Notification:
    base = Notification(
        title="Welcome, Alice!", subtitle=None, body="Thanks for joining.", media=None, sound="default",
        badge=1, data={"deep_link": "example://welcome"}, category="WELCOME", thread_id="onboarding",
        collapse_id=None, priority=None, ttl=None, push_type="alert", content_available=False,
        interruption_level=None, relevance_score=None, locale=None, variant=None, apns={}, fcm={},
    )  # fmt: skip
    return replace(base, **changes)


def test_apns_exact_request() -> None:
    req = build_apns(
        note(ttl=3600, collapse_id="welcome"), TOKEN, topic="com.example.pushctl", now=1_700_000_000
    )
    assert req.path == f"/3/device/{TOKEN}"
    assert req.headers == [
        ("apns-push-type", "alert"),
        ("apns-priority", "10"),
        ("apns-topic", "com.example.pushctl"),
        ("apns-expiration", "1700003600"),
        ("apns-collapse-id", "welcome"),
    ]
    assert req.body == (
        b'{"aps":{"alert":{"title":"Welcome, Alice!","body":"Thanks for joining."},"badge":1,'
        b'"sound":"default","thread-id":"onboarding","category":"WELCOME"},"deep_link":"example://welcome"}'
    )
    assert req.limit == APNS_LIMIT
    assert not any(name == "authorization" for name, _ in req.headers)


def test_apns_utf8_not_escaped_and_ttl_zero() -> None:
    req = build_apns(note(title="欢迎", ttl=0), TOKEN, topic="t")
    assert "欢迎".encode() in req.body
    assert ("apns-expiration", "0") in req.headers


def test_apns_default_collapse_id_and_limit() -> None:
    req = build_apns(note(), TOKEN, topic="t", default_collapse_id="run-42")
    assert ("apns-collapse-id", "run-42") in req.headers
    with pytest.raises(PayloadError, match="64"):
        build_apns(note(), TOKEN, topic="t", default_collapse_id="x" * 65)


def test_apns_background_push() -> None:
    n = note(title=None, body=None, badge=None, sound=None, push_type="background", content_available=True)
    req = build_apns(n, TOKEN, topic="com.example.pushctl")
    headers = dict(req.headers)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    payload = json.loads(req.body)
    assert payload["aps"] == {"content-available": 1, "thread-id": "onboarding", "category": "WELCOME"}


def test_apns_priority_normal_and_interruption_fields() -> None:
    n = note(priority="normal", interruption_level="time-sensitive", relevance_score=0.8, subtitle="Sub")
    req = build_apns(n, TOKEN, topic="t")
    assert dict(req.headers)["apns-priority"] == "5"
    aps = json.loads(req.body)["aps"]
    assert aps["interruption-level"] == "time-sensitive" and aps["relevance-score"] == 0.8
    assert aps["alert"] == {"title": "Welcome, Alice!", "subtitle": "Sub", "body": "Thanks for joining."}


@pytest.mark.parametrize(
    ("push_type", "topic"),
    [
        ("voip", "com.x.voip"),
        ("complication", "com.x.complication"),
        ("liveactivity", "com.x.push-type.liveactivity"),
    ],
)
def test_apns_topic_suffix(push_type: str, topic: str) -> None:
    req = build_apns(note(push_type=push_type), TOKEN, topic="com.x")
    assert dict(req.headers)["apns-topic"] == topic
    assert build_apns(note(push_type=push_type), TOKEN, topic=topic).headers[2] == ("apns-topic", topic)


def test_apns_rich_media() -> None:
    req = build_apns(note(media=Media("https://cdn/x.jpg", "image")), TOKEN, topic="t")
    payload = json.loads(req.body)
    assert payload["aps"]["mutable-content"] == 1
    assert payload["media"] == {"url": "https://cdn/x.jpg", "type": "image"}


def test_apns_deep_merge_of_block() -> None:
    n = note(
        apns={
            "headers": {"apns-priority": 5, "apns-id": "123e4567-e89b-12d3-a456-426614174000"},
            "payload": {
                "aps": {"alert": {"launch-image": "a.png"}, "target-content-id": "x"},
                "extra": {"k": 1},
            },
        }
    )
    req = build_apns(n, TOKEN, topic="t")
    headers = dict(req.headers)
    assert headers["apns-priority"] == "5" and headers["apns-id"].startswith("123e")
    assert [name for name, _ in req.headers].count("apns-priority") == 1
    payload = json.loads(req.body)
    assert payload["aps"]["alert"] == {
        "title": "Welcome, Alice!",
        "body": "Thanks for joining.",
        "launch-image": "a.png",
    }
    assert payload["aps"]["target-content-id"] == "x" and payload["extra"] == {"k": 1}
    assert n.apns["payload"]["aps"]["alert"] == {"launch-image": "a.png"}  # the template's block is untouched


def test_apns_size_limits() -> None:
    overhead = len(build_apns(note(data={"pad": ""}), TOKEN, topic="t").body)
    fits = note(data={"pad": "x" * (APNS_LIMIT - overhead)})
    assert len(build_apns(fits, TOKEN, topic="t").body) == APNS_LIMIT
    over = note(data={"pad": "x" * (APNS_LIMIT - overhead + 1)})
    with pytest.raises(PayloadError) as info:
        build_apns(over, TOKEN, topic="t", where="aud.csv:7")
    assert str(info.value).startswith("aud.csv:7: payload is 4,097 bytes, over the APNs limit of 4,096")
    voip = build_apns(replace(over, push_type="voip"), TOKEN, topic="t")
    assert voip.limit == APNS_VOIP_LIMIT
    with pytest.raises(PayloadError, match="5,121 bytes, over the APNs VoIP limit of 5,120"):
        build_apns(
            note(push_type="voip", data={"pad": "x" * (APNS_VOIP_LIMIT - overhead + 1)}), TOKEN, topic="t"
        )


def test_fcm_exact_android_message() -> None:
    n = note(collapse_id="welcome", ttl=3600, priority="high")
    req = build_fcm(n, FCM_TOKEN, platform=Platform.ANDROID)
    assert req.message == {
        "token": FCM_TOKEN,
        "notification": {"title": "Welcome, Alice!", "body": "Thanks for joining."},
        "data": {"deep_link": "example://welcome"},
        "android": {
            "priority": "high",
            "ttl": "3600s",
            "collapse_key": "welcome",
            "notification": {"sound": "default", "notification_count": 1},
        },
    }
    assert json.loads(req.body) == {"message": req.message}
    assert req.limit == FCM_LIMIT
    assert req.size == len(json.dumps(req.message, separators=(",", ":"), ensure_ascii=False).encode())


def test_fcm_validate_only_and_default_collapse_key() -> None:
    req = build_fcm(
        note(), FCM_TOKEN, platform=Platform.ANDROID, validate_only=True, default_collapse_key="run"
    )
    body = json.loads(req.body)
    assert body["validate_only"] is True
    assert body["message"]["android"]["collapse_key"] == "run"
    assert "validate_only" not in json.loads(build_fcm(note(), FCM_TOKEN, platform=Platform.ANDROID).body)


def test_fcm_web_and_ios() -> None:
    web = build_fcm(note(ttl=60, priority="normal"), FCM_TOKEN, platform=Platform.WEB).message
    assert web["webpush"] == {"headers": {"TTL": "60", "Urgency": "normal"}}
    assert "android" not in web
    ios = build_fcm(note(), FCM_TOKEN, platform=Platform.IOS).message
    assert ios["apns"]["headers"]["apns-push-type"] == "alert"
    assert ios["apns"]["payload"]["aps"]["badge"] == 1


def test_fcm_rich_media() -> None:
    image = build_fcm(note(media=Media("https://cdn/x.jpg", "image")), FCM_TOKEN, platform=Platform.ANDROID)
    assert image.message["notification"]["image"] == "https://cdn/x.jpg"
    video = build_fcm(note(media=Media("https://cdn/x.mp4", "video")), FCM_TOKEN, platform=Platform.ANDROID)
    assert "image" not in video.message["notification"]
    assert video.message["data"]["media_url"] == "https://cdn/x.mp4"
    assert video.message["data"]["media_type"] == "video"


def test_fcm_background_is_data_only() -> None:
    n = note(title=None, body=None, push_type="background", content_available=True, data={"action": "sync"})
    msg = build_fcm(n, FCM_TOKEN, platform=Platform.ANDROID).message
    assert "notification" not in msg and msg["data"] == {"action": "sync"}
    assert "notification" not in msg.get("android", {})


def test_fcm_deep_merge_and_reserved_keys() -> None:
    n = note(
        fcm={"android": {"notification": {"channel_id": "news"}}, "fcm_options": {"analytics_label": "w"}}
    )
    msg = build_fcm(n, FCM_TOKEN, platform=Platform.ANDROID).message
    assert msg["android"]["notification"] == {
        "sound": "default",
        "notification_count": 1,
        "channel_id": "news",
    }
    assert msg["fcm_options"] == {"analytics_label": "w"}
    with pytest.raises(PayloadError, match="reserved"):
        build_fcm(note(fcm={"data": {"google.x": "1"}}), FCM_TOKEN, platform=Platform.ANDROID)
    with pytest.raises(PayloadError, match="must be strings"):
        build_fcm(note(fcm={"data": {"n": 1}}), FCM_TOKEN, platform=Platform.ANDROID)


def test_fcm_size_limit() -> None:
    overhead = build_fcm(note(data={"pad": ""}), FCM_TOKEN, platform=Platform.ANDROID).size
    ok = build_fcm(note(data={"pad": "x" * (FCM_LIMIT - overhead)}), FCM_TOKEN, platform=Platform.ANDROID)
    assert ok.size == FCM_LIMIT
    with pytest.raises(PayloadError, match="4,097 bytes, over the FCM limit of 4,096"):
        build_fcm(note(data={"pad": "x" * (FCM_LIMIT - overhead + 1)}), FCM_TOKEN, platform=Platform.ANDROID)
