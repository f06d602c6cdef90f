"""Broadcast sends, emulated: APNs broadcast channels (iOS 18) and FCM topic / condition fan-out.

APNs, on the APNs port (the real service uses a separate management host, port 2195/2196):

* ``POST /1/apps/<bundle id>/channels`` ``{"message-storage-policy": 0|1, "push-type": "LiveActivity"}``
  → 201, ``apns-channel-id`` (base64) and ``apns-request-id`` headers;
* ``GET /1/apps/<bundle id>/channels`` with ``apns-channel-id`` → 200, the channel's settings;
* ``DELETE`` the same → 204; ``GET /1/apps/<bundle id>/all-channels`` → 200 ``{"channels": [...]}``;
* ``POST /4/broadcasts/apps/<bundle id>`` with ``apns-channel-id`` and ``apns-push-type:
  liveactivity`` → 200 and one inbox delivery per device subscribed to the channel.

Every request carries the same credentials as a push (JWT or client certificate) for that bundle
id. Channel errors (reasons as in Apple's channel documentation, not verified against the live
service): 400 ``MissingChannelId`` / ``BadChannelId`` (unknown to this app) /
``BadMessageStoragePolicy`` / ``InvalidPushType``, 404 ``ChannelNotFound`` on read/delete, 429
``TooManyChannels`` past 10,000.

FCM: a message to ``topic`` or ``condition`` is delivered to every token subscribed (per
:attr:`Registry.fcm_topics`); :func:`condition_matches` evaluates FCM's condition language
(``'a' in topics && ('b' in topics || !('c' in topics))``, at most 5 topics).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections import Counter
from typing import Any

from pushctl.emulator.apns import PAYLOAD_LIMIT, ApnsService
from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.registry import ApnsChannel, Registry
from pushctl.emulator.server import JSON_HEADERS, Request, Response, json_response

MAX_CHANNELS = 10_000
_CHANNELS = re.compile(r"/1/apps/([^/]+)/(channels|all-channels)")
_BROADCAST = re.compile(r"/4/broadcasts/apps/([^/]+)")
_COND_TOKEN = re.compile(r"\s*(?:('[a-zA-Z0-9\-_.~%]+')\s+in\s+topics|(&&)|(\|\|)|(!)|(\()|(\)))")
MAX_CONDITION_TOPICS = 5


class ConditionError(ValueError):
    """An FCM condition that does not parse."""


def parse_condition(condition: str) -> Any:
    """Parse an FCM condition into a nested tuple tree: ``("topic", name)``, ``("not", x)``,
    ``("and", a, b)``, ``("or", a, b)``; ``&&`` binds tighter than ``||``, as in FCM."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = condition.strip()
    while pos < len(text):
        m = _COND_TOKEN.match(text, pos)
        if m is None:
            raise ConditionError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        kind = ("topic", "and", "or", "not", "(", ")")[m.lastindex - 1 if m.lastindex else 0]
        tokens.append((kind, m.group(1)[1:-1] if kind == "topic" else kind))
        pos = m.end()
    if sum(1 for k, _ in tokens if k == "topic") > MAX_CONDITION_TOPICS:
        raise ConditionError(f"at most {MAX_CONDITION_TOPICS} topics in a condition")
    tree, rest = _or(tokens)
    if rest:
        raise ConditionError(f"unexpected {rest[0][1]!r}")
    return tree


def _or(tokens: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
    left, tokens = _and(tokens)
    while tokens and tokens[0][0] == "or":
        right, tokens = _and(tokens[1:])
        left = ("or", left, right)
    return left, tokens


def _and(tokens: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
    left, tokens = _unary(tokens)
    while tokens and tokens[0][0] == "and":
        right, tokens = _unary(tokens[1:])
        left = ("and", left, right)
    return left, tokens


def _unary(tokens: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
    if not tokens:
        raise ConditionError("the condition ends too early")
    kind, value = tokens[0]
    if kind == "not":
        inner, rest = _unary(tokens[1:])
        return ("not", inner), rest
    if kind == "(":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0][0] != ")":
            raise ConditionError("a '(' is not closed")
        return inner, rest[1:]
    if kind == "topic":
        return ("topic", value), tokens[1:]
    raise ConditionError(f"unexpected {value!r}")


def condition_matches(tree: Any, topics: set[str]) -> bool:
    """Whether a device subscribed to ``topics`` matches a parsed condition."""
    op = tree[0]
    if op == "topic":
        return tree[1] in topics
    if op == "not":
        return not condition_matches(tree[1], topics)
    if op == "and":
        return condition_matches(tree[1], topics) and condition_matches(tree[2], topics)
    return condition_matches(tree[1], topics) or condition_matches(tree[2], topics)


def fcm_audience(registry: Registry, message: dict[str, Any]) -> list[str]:
    """The tokens a topic or condition message reaches (sorted); ConditionError for a bad condition."""
    topic = message.get("topic")
    if isinstance(topic, str):
        return sorted(registry.fcm_topics.get(topic, ()))
    tree = parse_condition(str(message.get("condition", "")))
    everyone = {t for tokens in registry.fcm_topics.values() for t in tokens}
    return sorted(t for t in everyone if condition_matches(tree, registry.topics_of(t)))


class _Fail(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status, self.reason = status, reason


class BroadcastService:
    """APNs channel management and broadcast sends (on the APNs port)."""

    def __init__(self, registry: Registry, inbox: Inbox, apns: ApnsService) -> None:
        self.registry = registry
        self.inbox = inbox
        self.apns = apns
        self.stats: Counter[str] = Counter()

    def handles(self, path: str) -> bool:
        """Whether a path on the APNs port belongs to this service."""
        return path.startswith(("/1/apps/", "/4/broadcasts/"))

    def handle(self, req: Request) -> Response:
        auth = self.apns.authorize(req)
        if isinstance(auth, Response):
            return auth
        headers, topics = auth
        request_id = headers.get("apns-request-id") or str(uuid.uuid4())
        kind = "broadcast" if req.path.startswith("/4/") else "channels"
        try:
            if (m := _BROADCAST.fullmatch(req.path)) is not None:
                response = self._broadcast(req, m.group(1), headers, topics, request_id)
            elif (m := _CHANNELS.fullmatch(req.path)) is not None:
                response = self._channels(req, m.group(1), m.group(2), headers, topics)
            else:
                raise _Fail(404, "BadPath")
        except _Fail as fail:
            self.stats[f"{kind} {fail.status} {fail.reason}"] += 1
            body = json.dumps({"reason": fail.reason}, separators=(",", ":")).encode()
            return Response(fail.status, body, [*JSON_HEADERS, ("apns-request-id", request_id)])
        self.stats[f"{kind} {response.status}"] += 1
        response.headers.append(("apns-request-id", request_id))
        return response

    @staticmethod
    def _allowed(bundle: str, topics: frozenset[str]) -> None:
        if bundle not in topics:
            raise _Fail(400, "TopicDisallowed")

    def _channel(self, bundle: str, headers: dict[str, str], missing: int = 400) -> ApnsChannel:
        channel_id = headers.get("apns-channel-id")
        if not channel_id:
            raise _Fail(400, "MissingChannelId")
        channel = self.registry.apns_channels.get(channel_id)
        if channel is None or channel.topic != bundle:
            raise _Fail(missing, "BadChannelId" if missing == 400 else "ChannelNotFound")
        return channel

    def _channels(
        self, req: Request, bundle: str, kind: str, headers: dict[str, str], topics: frozenset[str]
    ) -> Response:
        self._allowed(bundle, topics)
        mine = [c for c in self.registry.apns_channels.values() if c.topic == bundle]
        if kind == "all-channels":
            if req.method != "GET":
                raise _Fail(405, "MethodNotAllowed")
            return json_response(200, {"channels": sorted(c.channel_id for c in mine)})
        if req.method == "GET":
            channel = self._channel(bundle, headers, missing=404)
            return json_response(
                200, {"message-storage-policy": channel.storage_policy, "push-type": "LiveActivity"}
            )
        if req.method == "DELETE":
            channel = self._channel(bundle, headers, missing=404)
            del self.registry.apns_channels[channel.channel_id]
            return Response(204)
        if req.method != "POST":
            raise _Fail(405, "MethodNotAllowed")
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            raise _Fail(400, "BadPayload") from None
        policy = body.get("message-storage-policy", 0) if isinstance(body, dict) else None
        if policy not in (0, 1):
            raise _Fail(400, "BadMessageStoragePolicy")
        if str(body.get("push-type", "LiveActivity")).lower() != "liveactivity":
            raise _Fail(400, "InvalidPushType")
        if len(mine) >= MAX_CHANNELS:
            raise _Fail(429, "TooManyChannels")
        channel_id = base64.b64encode(secrets.token_bytes(16)).decode()
        self.registry.apns_channels[channel_id] = ApnsChannel(channel_id, bundle, int(policy))
        return Response(201, b"", [("apns-channel-id", channel_id)])

    def _broadcast(
        self, req: Request, bundle: str, headers: dict[str, str], topics: frozenset[str], request_id: str
    ) -> Response:
        if req.method != "POST":
            raise _Fail(405, "MethodNotAllowed")
        self._allowed(bundle, topics)
        channel = self._channel(bundle, headers)
        if headers.get("apns-push-type", "liveactivity") != "liveactivity":
            raise _Fail(400, "InvalidPushType")
        if headers.get("apns-priority", "10") not in ("5", "10"):
            raise _Fail(400, "BadPriority")
        expiration = headers.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise _Fail(400, "BadExpirationDate")
        if not req.body:
            raise _Fail(400, "PayloadEmpty")
        if len(req.body) > PAYLOAD_LIMIT:
            raise _Fail(413, "PayloadTooLarge")
        try:
            payload = json.loads(req.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            raise _Fail(400, "PayloadEmpty")
        now = time.time()
        recorded = {k: v for k, v in headers.items() if k.startswith("apns-") or k == "apns-topic"}
        for token in sorted(channel.subscribers):
            self.inbox.record(Delivery(token, "ios", "apns", payload, recorded, None, request_id, now))
        extra = [("apns-unique-id", str(uuid.uuid4()))] if self.apns.options.environment == "sandbox" else []
        return Response(200, b"", extra)
