"""FCM HTTP v1, emulated: ``POST /v1/projects/<id>/messages:send`` with v1 validation.

Errors use the real ``google.rpc.Status`` JSON shape with a ``FcmError`` detail, so clients
that read ``details[].errorCode`` (as they should) see exactly what FCM would send.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter
from typing import Any

from pushctl.emulator.broadcast import ConditionError, fcm_audience, parse_condition
from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.oauth import TokenStore
from pushctl.emulator.registry import Registry
from pushctl.emulator.scenario import FaultInjector, Options, RateWindows
from pushctl.emulator.server import Request, Response, json_response

MESSAGE_LIMIT = 4096
TOPIC_MESSAGE_LIMIT = 2048
MAX_TTL_SECONDS = 4 * 7 * 24 * 3600
_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_TTL = re.compile(r"\d+(\.\d{1,9})?s")
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.~%]+")
_LABEL = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_MESSAGE_KEYS = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "token",
        "topic",
        "condition",
    }
)
_RESERVED_DATA = frozenset({"from", "message_type"})

# errorCode -> (HTTP status, google.rpc status, default message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
_BY_STATUS = {429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class _Invalid(Exception):
    def __init__(
        self, code: str, message: str | None = None, field: str | None = None, retry_after: int | None = None
    ) -> None:
        self.code, self.message, self.field, self.retry_after = code, message, field, retry_after


def fcm_error(
    code: str, message: str | None = None, *, field: str | None = None, retry_after: int | None = None
) -> Response:
    """A google.rpc error response carrying the ``FcmError`` detail for ``code``."""
    status, rpc_status, default = ERRORS[code]
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    ]
    if field is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message or default}],
            }
        )
    body = {
        "error": {"code": status, "message": message or default, "status": rpc_status, "details": details}
    }
    extra = [("retry-after", str(retry_after))] if retry_after is not None else None
    return json_response(status, body, extra)


def _rpc_error(status: int, rpc_status: str, message: str) -> Response:
    return json_response(status, {"error": {"code": status, "message": message, "status": rpc_status}})


class FcmService:
    """Handles ``messages:send`` for one emulator."""

    def __init__(
        self, registry: Registry, inbox: Inbox, tokens: TokenStore, options: Options, faults: FaultInjector
    ) -> None:
        self.registry = registry
        self.inbox = inbox
        self.tokens = tokens
        self.options = options
        self.faults = faults
        self.stats: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._windows = RateWindows()

    def handle(self, req: Request) -> Response:
        """Validate and (unless ``validate_only``) deliver one message."""
        response = self._send(req)
        self.stats[str(response.status)] += 1
        return response

    def _send(self, req: Request) -> Response:
        match = _PATH.fullmatch(req.path)
        if match is None:
            return _rpc_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server.")
        if req.method != "POST":
            return _rpc_error(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
        faults = self.faults
        delay = faults.latency() if faults.active else 0.0
        if faults.active:
            if faults.drop():
                return Response(0, drop=True)
            injected = faults.error("fcm")
            if injected is not None:
                code = injected.reason or _BY_STATUS.get(injected.status, "INTERNAL")
                resp = fcm_error(code, injected.message, retry_after=injected.retry_after)
                resp.delay = delay
                return resp
        project = match.group(1)
        auth = next((v for k, v in req.headers if k == "authorization"), "")
        access = self.tokens.lookup(auth[7:]) if auth[:7].lower() == "bearer " else None
        if access is None:
            return _rpc_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
            )
        if access.project_id != project:
            return _rpc_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).",
            )
        try:
            validate_only, message = self._parse(req.body)
            self._validate(message)
            if "apns" in message and project in self.registry.bad_apns_credentials_projects:
                raise _Invalid("THIRD_PARTY_AUTH_ERROR")
            token = message.get("token")
            if isinstance(token, str):
                verdict = self.registry.fcm_token_verdict(token)
                if verdict is not None:
                    msg = (
                        "The registration token is not a valid FCM registration token"
                        if verdict.reason == "INVALID_ARGUMENT"
                        else None
                    )
                    raise _Invalid(verdict.reason, msg, "message.token" if msg else None)
            if "condition" in message:
                try:
                    parse_condition(str(message["condition"]))
                except ConditionError as err:
                    raise _Invalid("INVALID_ARGUMENT", f"Invalid condition expression provided: {err}",
                                   "message.condition") from None
            self._check_quota(project, token if isinstance(token, str) else "")
        except _Invalid as exc:
            resp = fcm_error(exc.code, exc.message, field=exc.field, retry_after=exc.retry_after)
            resp.delay = delay
            return resp
        if validate_only:
            return self._ok(project, "fake_message_id", delay)
        msg_id = f"0:{int(time.time() * 1000)}%{next(self._ids):016x}"
        token = message.get("token")
        # A topic or condition message reaches every device subscribed (the emulator's registry).
        targets = [str(token)] if token else fcm_audience(self.registry, message)
        name, now = f"projects/{project}/messages/{msg_id}", time.time()
        collapse = _collapse_id(message)
        for target in targets:
            self.inbox.record(Delivery(target, "android", "fcm", message, {}, collapse, name, now))
        return self._ok(project, msg_id, delay)

    @staticmethod
    def _ok(project: str, msg_id: str, delay: float) -> Response:
        resp = json_response(200, {"name": f"projects/{project}/messages/{msg_id}"})
        resp.delay = delay
        return resp

    @staticmethod
    def _parse(body: bytes) -> tuple[bool, dict[str, Any]]:
        try:
            data = json.loads(body)
        except ValueError:
            raise _Invalid("INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise _Invalid("INVALID_ARGUMENT", "Invalid JSON payload received.")
        unknown = set(data) - {"message", "validate_only"}
        if unknown:
            raise _Invalid(
                "INVALID_ARGUMENT", f'Invalid JSON payload received. Unknown name "{min(unknown)}"'
            )
        message = data.get("message")
        if not isinstance(message, dict):
            raise _Invalid("INVALID_ARGUMENT", "Request contains an invalid argument.", "message")
        return bool(data.get("validate_only", False)), message

    @staticmethod
    def _validate(message: dict[str, Any]) -> None:
        unknown = set(message) - _MESSAGE_KEYS
        if unknown:
            raise _Invalid(
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{min(unknown)}" '
                "at 'message': Cannot find field.",
            )
        targets = [k for k in ("token", "topic", "condition") if message.get(k) not in (None, "")]
        if len(targets) != 1:
            raise _Invalid(
                "INVALID_ARGUMENT", "Exactly one of token, topic or condition must be specified.", "message"
            )
        topic = message.get("topic")
        if topic is not None and (not isinstance(topic, str) or not _TOPIC.fullmatch(topic)):
            raise _Invalid("INVALID_ARGUMENT", "Invalid topic name.", "message.topic")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise _Invalid(
                "INVALID_ARGUMENT", "Invalid value at 'message.data': values must be strings.", "message.data"
            )
        for key in data:
            if key in _RESERVED_DATA or key.startswith(("google.", "gcm.notification.")) or key == "gcm":
                raise _Invalid(
                    "INVALID_ARGUMENT", f"Invalid data key: {key} is a reserved word.", "message.data"
                )
        android = message.get("android", {})
        if not isinstance(android, dict):
            raise _Invalid("INVALID_ARGUMENT", "Invalid value at 'message.android'.", "message.android")
        ttl = android.get("ttl")
        if ttl is not None and (
            not isinstance(ttl, str) or not _TTL.fullmatch(ttl) or float(ttl[:-1]) > MAX_TTL_SECONDS
        ):
            raise _Invalid(
                "INVALID_ARGUMENT",
                "Invalid value at 'message.android.ttl' (type.googleapis.com/"
                "google.protobuf.Duration), Field 'ttl', Illegal duration format.",
                "message.android.ttl",
            )
        if android.get("priority") not in (None, "normal", "high", "NORMAL", "HIGH"):
            raise _Invalid(
                "INVALID_ARGUMENT", "Invalid value at 'message.android.priority'.", "message.android.priority"
            )
        color = (android.get("notification") or {}).get("color")
        if color is not None and (not isinstance(color, str) or not _COLOR.fullmatch(color)):
            raise _Invalid("INVALID_ARGUMENT", "Invalid color format.", "message.android.notification.color")
        label = (message.get("fcm_options") or {}).get("analytics_label")
        if label is not None and (not isinstance(label, str) or not _LABEL.fullmatch(label)):
            raise _Invalid(
                "INVALID_ARGUMENT", "Invalid analytics_label.", "message.fcm_options.analytics_label"
            )
        link = ((message.get("webpush") or {}).get("fcm_options") or {}).get("link")
        if link is not None and (not isinstance(link, str) or not link.startswith("https://")):
            raise _Invalid("INVALID_ARGUMENT", "The link must use HTTPS.", "message.webpush.fcm_options.link")
        size = len(json.dumps(message, separators=(",", ":")).encode())
        if size > (TOPIC_MESSAGE_LIMIT if topic is not None or "condition" in message else MESSAGE_LIMIT):
            raise _Invalid("INVALID_ARGUMENT", "Message is too big", "message")

    def _check_quota(self, project: str, token: str) -> None:
        opts = self.options
        for key, limit, seconds in (
            (f"m:{project}", opts.fcm_quota_per_minute, 60.0),
            (f"s:{project}", opts.fcm_quota_per_second, 1.0),
        ):
            wait = self._windows.refuse(key, limit, seconds)
            if wait is not None:
                raise _Invalid("QUOTA_EXCEEDED", retry_after=wait)
        if token and self._windows.refuse(f"t:{token}", opts.device_rate_limit, opts.device_rate_window):
            raise _Invalid("QUOTA_EXCEEDED", "Device message rate exceeded.")


def _collapse_id(message: dict[str, Any]) -> str | None:
    android = message.get("android") or {}
    if android.get("collapse_key"):
        return str(android["collapse_key"])
    apns_headers = (message.get("apns") or {}).get("headers") or {}
    if apns_headers.get("apns-collapse-id"):
        return str(apns_headers["apns-collapse-id"])
    webpush_headers = (message.get("webpush") or {}).get("headers") or {}
    topic = webpush_headers.get("Topic") or webpush_headers.get("topic")
    return str(topic) if topic else None
