"""Huawei Push Kit (HMS Core server API v1), emulated: OAuth 2.0 client credentials and ``messages:send``.

* ``POST /oauth2/v3/token`` (form ``grant_type=client_credentials&client_id&client_secret``) issues
  an access token for a registered app (``Registry.hms_apps``), ``expires_in`` seconds.
* ``POST /v1/<appId>/messages:send`` with ``Authorization: Bearer <token>`` and
  ``{"validate_only": bool, "message": {..., "token": [up to 1,000]}}``. Like Huawei's, the answer
  is a ``code`` in the body: ``80000000`` success; ``80100000`` partial success, ``msg`` a JSON string
  ``{"success", "failure", "illegal_tokens"}``; ``80300007`` all tokens invalid; ``80300010`` no
  token or more than 1,000; ``80100003`` bad message structure; ``80300008`` message over 4 KB;
  ``80200001`` OAuth error (also a token of another app), ``80200003`` OAuth token expired;
  ``81000001`` internal error. HTTP status: 200 for sends that reached the tokens, 400 for request
  errors, 401 for OAuth errors, 5xx for server trouble.

Test tokens: ``illegal…``, shorter than 32 characters, or outside ``A-Z a-z 0-9 _ : - + / = .``
are illegal (listed in ``illegal_tokens``); ``Registry.hms_illegal`` adds more.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.oauth import TokenStore
from pushctl.emulator.registry import Registry
from pushctl.emulator.scenario import FaultInjector, Options
from pushctl.emulator.server import Request, Response, json_response

TOKEN_PATH = "/oauth2/v3/token"
MAX_TOKENS = 1000
MESSAGE_LIMIT = 4096
_SEND_PATH = re.compile(r"/v1/([^/]+)/messages:send")
_TOKEN = re.compile(r"[A-Za-z0-9_:\-+/=.]{32,}")
_TTL = re.compile(r"\d+(\.\d{1,9})?s")


class _Fail(Exception):
    def __init__(self, http: int, code: str, msg: str) -> None:
        self.http, self.code, self.msg = http, code, msg


def _answer(http: int, code: str, msg: str, request_id: str | None = None) -> Response:
    return json_response(http, {"code": code, "msg": msg, "requestId": request_id or _request_id()})


def _request_id() -> str:
    return f"{int(time.time() * 1000)}{secrets.randbelow(10**6):06d}"


class HmsService:
    """Handles the HMS OAuth and push endpoints (one port, as the emulator serves them)."""

    def __init__(
        self, registry: Registry, inbox: Inbox, tokens: TokenStore, options: Options, faults: FaultInjector
    ) -> None:
        self.registry = registry
        self.inbox = inbox
        self.tokens = tokens
        self.options = options
        self.faults = faults
        self.stats: Counter[str] = Counter()

    def handle(self, req: Request) -> Response:
        """Route one request to OAuth or messages:send."""
        if req.path.split("?", 1)[0] == TOKEN_PATH:
            response = self._oauth(req)
            self.stats[f"oauth {response.status}"] += 1
            return response
        delay = self.faults.latency() if self.faults.active else 0.0
        try:
            response = self._send(req)
        except _Fail as fail:
            response = _answer(fail.http, fail.code, fail.msg)
            self.stats[fail.code] += 1
        response.delay = delay
        return response

    # -- OAuth --------------------------------------------------------------------------

    def _oauth(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response(405, {"error": 1101, "error_description": "only POST is supported"})
        if self.faults.token_error():
            return json_response(
                self.faults.faults.token_error_status, {"error": 1203, "error_description": "system error"}
            )
        form = parse_qs(req.body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        client_id = form.get("client_id", [""])[0]
        secret = form.get("client_secret", [""])[0]
        if grant != "client_credentials":
            return json_response(
                400,
                {"error": 1102, "sub_error": 20001, "error_description": f"unsupported grant_type {grant!r}"},
            )
        expected = self.registry.hms_apps.get(client_id)
        if expected is None:
            return json_response(
                400, {"error": 1101, "sub_error": 20003, "error_description": "invalid client_id"}
            )
        if secret != expected:
            return json_response(
                400, {"error": 1101, "sub_error": 20152, "error_description": "invalid client_secret"}
            )
        lifetime = self.options.access_token_lifetime
        token = self.tokens.issue(client_id, client_id, lifetime)
        return json_response(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})

    # -- messages:send ------------------------------------------------------------------

    def _send(self, req: Request) -> Response:
        match = _SEND_PATH.fullmatch(req.path)
        if match is None:
            raise _Fail(404, "80100001", f"no such API: {req.path}")
        if req.method != "POST":
            raise _Fail(405, "80100001", "only POST is supported")
        if self.faults.active:
            if self.faults.drop():
                return Response(0, drop=True)
            injected = self.faults.error("hms")
            if injected is not None:
                response = _answer(
                    injected.status, injected.reason or "81000001", "internal error, try again"
                )
                if injected.retry_after is not None:
                    response.headers.append(("retry-after", str(injected.retry_after)))
                return response
        app_id = match.group(1)
        auth = next((v for k, v in req.headers if k == "authorization"), "")
        if auth[:7].lower() != "bearer " or not auth[7:]:
            raise _Fail(401, "80200001", "Oauth authentication error: no access token")
        token = auth[7:]
        access = self.tokens.lookup(token)
        if access is None:
            if self.tokens.known(token):
                raise _Fail(401, "80200003", "Oauth Token expired.")
            raise _Fail(401, "80200001", "Oauth authentication error")
        if access.project_id != app_id:
            raise _Fail(401, "80200001", "Oauth authentication error: the token belongs to another app")
        validate_only, message, tokens = self._parse(req.body)
        delivered = [t for t in tokens if not self._illegal(t)]
        illegal = [t for t in tokens if self._illegal(t)]
        request_id = _request_id()
        if not delivered:
            return _answer(200, "80300007", "All the tokens are invalid", request_id)
        if not validate_only:
            self._record(delivered, message, request_id)
        if illegal:
            msg = json.dumps({"success": len(delivered), "failure": len(illegal), "illegal_tokens": illegal})
            self.stats["80100000"] += 1
            return _answer(200, "80100000", msg, request_id)
        self.stats["80000000"] += 1
        return _answer(200, "80000000", "Success", request_id)

    def _illegal(self, token: str) -> bool:
        return (
            not _TOKEN.fullmatch(token) or token.startswith("illegal") or token in self.registry.hms_illegal
        )

    @staticmethod
    def _parse(body: bytes) -> tuple[bool, dict[str, Any], list[str]]:
        try:
            data = json.loads(body)
        except ValueError:
            raise _Fail(400, "80100003", "Incorrect message structure: not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise _Fail(400, "80100003", "Incorrect message structure: no message object")
        message: dict[str, Any] = dict(data["message"])
        tokens = message.pop("token", None)
        if not isinstance(tokens, list) or not tokens or len(tokens) > MAX_TOKENS:
            count = len(tokens) if isinstance(tokens, list) else 0
            raise _Fail(400, "80300010", f"the number of tokens must be 1 to {MAX_TOKENS}, got {count}")
        if not all(isinstance(t, str) for t in tokens):
            raise _Fail(400, "80100003", "Incorrect message structure: tokens must be strings")
        if "data" in message and not isinstance(message["data"], str):
            raise _Fail(400, "80100003", "Illegal payload: data must be a JSON string")
        android = message.get("android", {})
        if not isinstance(android, dict):
            raise _Fail(400, "80100003", "Incorrect message structure: android")
        ttl = android.get("ttl")
        if ttl is not None and (not isinstance(ttl, str) or not _TTL.fullmatch(ttl)):
            raise _Fail(400, "80100003", f"Illegal ttl {ttl!r}: expected seconds like '86400s'")
        if android.get("urgency") not in (None, "HIGH", "NORMAL"):
            raise _Fail(400, "80100003", "Illegal urgency: HIGH or NORMAL")
        collapse = android.get("collapse_key")
        if collapse is not None and (not isinstance(collapse, int) or not -1 <= collapse <= 100):
            raise _Fail(400, "80100003", "Illegal collapse_key: an integer from -1 to 100")
        note = android.get("notification")
        if isinstance(note, dict) and not isinstance(note.get("click_action"), dict):
            raise _Fail(400, "80100003", "click_action is mandatory in android.notification")
        if "notification" not in message and "data" not in message and not isinstance(note, dict):
            raise _Fail(400, "80100003", "Incorrect message structure: nothing to send")
        size = len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MESSAGE_LIMIT:
            raise _Fail(
                400, "80300008", f"The message body size ({size}) exceeds the default value ({MESSAGE_LIMIT})"
            )
        return bool(data.get("validate_only", False)), message, tokens

    def _record(self, tokens: list[str], message: dict[str, Any], request_id: str) -> None:
        note = (message.get("android") or {}).get("notification") or {}
        tag = note.get("tag") if isinstance(note, dict) else None
        now = time.time()
        for token in tokens:
            self.inbox.record(Delivery(token, "hms", "hms", message, {}, tag, request_id, now))
