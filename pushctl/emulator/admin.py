"""Who may read the emulator's admin endpoints (``/_emulator/inbox``, ``/_emulator/stats``).

The inbox holds every payload rehearsed and the tokens it went to, so it is readable only with
the state dir's credentials: a random token in ``<state dir>/admin-token`` (mode 0600, in a 0700
state dir), sent as ``authorization: Bearer <token>``. Another local user can reach the loopback
port but cannot read the file, so cannot read what was rehearsed. Without the header the answer is
401, with a wrong token 403.

The token is made once per state dir and reused by every emulator started on it (and by all
workers of ``--workers N``); delete the file to rotate it.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from pushctl.paths import exposed, make_private_dir, write_private

ADMIN_TOKEN_FILE = "admin-token"
ADMIN_PREFIX = "/_emulator/"
REALM = 'Bearer realm="pushctl-emulator"'


def ensure_admin_token(state_dir: Path) -> str:
    """The state dir's admin token, created (0600, in a 0700 dir) when missing or exposed."""
    make_private_dir(state_dir)
    path = Path(state_dir) / ADMIN_TOKEN_FILE
    if exposed(path) is not None:
        path.unlink()  # others may have read it: a new one, private this time
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        write_private(path, token + "\n")
    return token


def read_admin_token(state_dir: Path) -> str:
    """The admin token of the emulator using ``state_dir`` (``OSError`` when there is none)."""
    token = (Path(state_dir) / ADMIN_TOKEN_FILE).read_text().strip()
    if not token:
        raise FileNotFoundError(f"{Path(state_dir) / ADMIN_TOKEN_FILE} is empty")
    return token


def admin_headers(token: str) -> dict[str, str]:
    """The header that opens the admin endpoints."""
    return {"authorization": f"Bearer {token}"}


def refusal(authorization: str | None, token: str) -> tuple[int, dict[str, str]] | None:
    """None when ``authorization`` carries ``token``; else (401 or 403, JSON error body)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, {
            "error": "the emulator's admin endpoints need its state dir's token: "
            f"send 'authorization: Bearer <token>', the token being in <state dir>/{ADMIN_TOKEN_FILE}"
        }
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 403, {"error": "wrong admin token for this emulator"}
    return None
