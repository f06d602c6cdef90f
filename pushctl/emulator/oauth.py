"""Google's OAuth2 token endpoint, emulated for service-account JWT assertions (``POST /token``).

Access tokens are random strings kept in memory with their service account and expiry;
:class:`TokenStore` is what the FCM side consults for every ``authorization`` header. With a
``secret`` (multi-process mode, where the token may be issued by one worker and used on another)
a token also carries its account and expiry, HMAC-signed, so any worker sharing the secret
accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt

from pushctl.emulator.registry import Registry
from pushctl.emulator.scenario import FaultInjector, Options
from pushctl.emulator.server import Request, Response, json_response

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Google accepts the broad cloud-platform scope for FCM too.
ACCEPTED_SCOPES = frozenset({FCM_SCOPE, "https://www.googleapis.com/auth/cloud-platform"})
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
MAX_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 60


@dataclass(slots=True, frozen=True)
class AccessToken:
    """An issued access token: whose it is and when it stops working."""

    client_email: str
    project_id: str
    expires_at: float


class TokenStore:
    """Issued access tokens (thread-safe: tests may issue or expire tokens from another thread)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()
        self.secret = secret
        """Shared by every worker of a multi-process emulator: signs self-describing tokens."""
        self._expired_before = 0.0

    def issue(self, client_email: str, project_id: str, lifetime: float) -> str:
        """Create a new access token valid for ``lifetime`` seconds."""
        now = time.time()
        record = AccessToken(client_email, project_id, now + lifetime)
        if self.secret is None:
            token = "ya29.emu-" + secrets.token_urlsafe(32)
        else:
            claims = [client_email, project_id, record.expires_at, now, secrets.token_urlsafe(8)]
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
            token = "ya29.emu-" + body + "." + self._mac(body)
        with self._lock:
            self._tokens[token] = record
        return token

    def _mac(self, body: str) -> str:
        assert self.secret is not None
        digest = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def _verify(self, token: str) -> AccessToken | None:
        """A signed token issued by another worker (cached once verified)."""
        body, _, mac = token.removeprefix("ya29.emu-").rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            email, project, expires_at, issued_at, _nonce = json.loads(
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            )
        except (ValueError, TypeError):
            return None
        if float(issued_at) < self._expired_before:
            expires_at = 0.0
        record = AccessToken(str(email), str(project), float(expires_at))
        with self._lock:
            self._tokens[token] = record
        return record

    def lookup(self, token: str) -> AccessToken | None:
        """The token's record if it exists and has not expired."""
        record = self._tokens.get(token)
        if record is None and self.secret is not None and token.startswith("ya29.emu-"):
            record = self._verify(token)
        if record is None or record.expires_at <= time.time():
            return None
        return record

    def known(self, token: str) -> bool:
        """Whether ``token`` was issued here at all (expired or not): tells "expired" from "never valid"."""
        if token in self._tokens:
            return True
        return self.secret is not None and token.startswith("ya29.emu-") and self._verify(token) is not None

    def expire_all(self) -> None:
        """Make every issued token expired (to test a client's refresh)."""
        with self._lock:
            self._expired_before = time.time()
            self._tokens = {
                t: AccessToken(r.client_email, r.project_id, 0.0) for t, r in self._tokens.items()
            }


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


class OAuthService:
    """Handles ``POST /token`` on the FCM port."""

    def __init__(
        self, registry: Registry, tokens: TokenStore, options: Options, faults: FaultInjector
    ) -> None:
        self.registry = registry
        self.tokens = tokens
        self.options = options
        self.faults = faults
        self.token_uri = ""
        """Set by the emulator once its port is known: assertions may name it (or Google's) as ``aud``."""
        self.stats: Counter[str] = Counter()

    def handle(self, req: Request) -> Response:
        """Exchange a JWT assertion for an access token, or answer like Google's OAuth errors."""
        response = self._exchange(req)
        self.stats[str(response.status)] += 1
        response.delay += self.faults.faults.token_latency_ms / 1000.0
        return response

    def _exchange(self, req: Request) -> Response:
        if req.method != "POST":
            return _oauth_error("invalid_request", "Only POST is supported.", 405)
        if self.faults.token_error():
            status = self.faults.faults.token_error_status
            return _oauth_error("internal_failure", "Backend Error", status)
        form = parse_qs(req.body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != GRANT_TYPE:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant}")
        assertion = form.get("assertion", [""])[0]
        try:
            header = jwt.get_unverified_header(assertion)
            unverified: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "Invalid JWT: could not be decoded.")
        account = self.registry.service_accounts.get(str(unverified.get("iss")))
        if account is None or header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if header.get("kid") not in (None, account.key_id):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        # Google checks the audience against its own token endpoint, whatever URL the assertion was
        # posted to (google-auth always writes that one); clients configured with the emulator's
        # token_uri as the audience (pushctl) are accepted too.
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, self.token_uri):
            return _oauth_error(
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The expected value was {GOOGLE_TOKEN_URI}.",
            )
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or exp > iat + MAX_ASSERTION_LIFETIME
            or exp <= now
            or iat > now + CLOCK_SKEW
        ):
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & ACCEPTED_SCOPES:
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        lifetime = self.options.access_token_lifetime
        token = self.tokens.issue(account.client_email, account.project_id, lifetime)
        return json_response(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})
