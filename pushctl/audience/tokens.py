"""Token shape rules (offline, syntactic) and a compact set of seen tokens.

Platform inference, used when an audience row has no ``platform`` value:

1. only hex digits and at least 32 characters            -> ``ios`` (an APNs device token)
2. starts with ``{`` (a subscription JSON) or ``https://``  -> ``webpush``, a Web Push subscription
   (its keys come from the row: see :mod:`pushctl.audience.subscription`)
3. only ``A-Z a-z 0-9 _ : -`` and at least 32 characters  -> ``android`` (an FCM registration token)
4. anything else: the platform cannot be told; the row needs a ``platform`` column.

HMS (Huawei) tokens cannot be told from FCM ones by their shape: such rows need ``platform`` set to
``hms`` (or ``huawei``).

:func:`token_problem` is deliberately lenient: token *length* is for the service to judge
(APNs tokens are usually 64 hex characters but 160 has been seen), so only the character
set, emptiness and a 4 KB ceiling are checked here. ``pushctl tokens check`` adds the
stricter heuristics (unusual length, wrong platform).
"""

from __future__ import annotations

import re
from array import array

from pushctl.audience.subscription import endpoint_problem, looks_like_subscription
from pushctl.model import Platform

HEX_CHARS = "0123456789abcdefABCDEF"
FCM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:-"
MIN_INFERABLE_LENGTH = 32
MAX_TOKEN_LENGTH = 4096
HMS_CHARS = FCM_CHARS + "+/=."


# Measured: a compiled fullmatch is 2-3x faster than str.strip(alphabet) on 64-160 char
# tokens (strip scans the alphabet for every character), and this runs for every row.
_HEX_MATCH = re.compile(r"[0-9a-fA-F]+").fullmatch
_FCM_MATCH = re.compile(r"[A-Za-z0-9_:\-]+").fullmatch
_HMS_MATCH = re.compile(r"[A-Za-z0-9_:\-+/=.]+").fullmatch


def is_hex(text: str) -> bool:
    """True if ``text`` is non-empty and only hex digits."""
    return _HEX_MATCH(text) is not None


def is_fcm_shaped(text: str) -> bool:
    """True if ``text`` is non-empty and uses only the FCM token alphabet."""
    return _FCM_MATCH(text) is not None


def is_hms_shaped(text: str) -> bool:
    """True if ``text`` is non-empty and uses only the HMS token alphabet (FCM's plus ``+/=.``)."""
    return _HMS_MATCH(text) is not None


def normalize_token(raw: str) -> str:
    """Clean a pasted token: strip whitespace, ``<>`` and inner spaces around APNs hex; lowercase hex.

    ``"<740f4707 bebcf74f>"`` (how Xcode logs print ``NSData``) becomes ``"740f4707bebcf74f"``.
    Non-hex tokens (FCM) are case-sensitive and only have outer whitespace removed.
    """
    token = raw.strip()
    if token.startswith("<") and token.endswith(">"):
        token = token[1:-1].strip()
    if is_hex(token):
        return token.lower()
    if " " in token:
        squeezed = token.replace(" ", "")
        if is_hex(squeezed):
            return squeezed.lower()
    return token


def infer_platform(token: str) -> Platform | None:
    """The platform a token's shape implies (see the module docstring), or None."""
    if len(token) >= MIN_INFERABLE_LENGTH and is_hex(token):
        return Platform.IOS
    if looks_like_subscription(token):
        return Platform.WEBPUSH
    if len(token) >= MIN_INFERABLE_LENGTH and is_fcm_shaped(token):
        return Platform.ANDROID
    return None


def _first_outside(token: str, allowed: str) -> str:
    allowed_set = set(allowed)
    return next((ch for ch in token if ch not in allowed_set), "")


def token_problem(token: str, platform: Platform) -> str | None:
    """A syntactic problem with ``token`` for ``platform``, or None if it may be sent."""
    if not token:
        return "empty token"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"token is {len(token)} characters long (over 4 KB)"
    if platform is Platform.IOS:
        if is_hex(token):
            return None
        return f"APNs tokens are hex (0-9, a-f); found {_first_outside(token, HEX_CHARS)!r}"
    if platform is Platform.WEBPUSH:
        return endpoint_problem(token)
    if platform is Platform.HMS:
        if is_hms_shaped(token):
            return None
        return f"HMS tokens use only A-Z a-z 0-9 _ : - + / = .; found {_first_outside(token, HMS_CHARS)!r}"
    if is_fcm_shaped(token):
        return None
    if looks_like_subscription(token):
        return "a Web Push subscription is not an FCM token: set the platform to webpush (or leave it empty)"
    return f"FCM tokens use only A-Z a-z 0-9 _ : -; found {_first_outside(token, FCM_CHARS)!r}"


class TokenSet:
    """A set of tokens in flat memory: an open-addressing table of 64-bit hashes.

    A Python ``set`` of 1,000,000 token strings costs hundreds of MB; this keeps 8 bytes
    per slot (plus 4 for the line the token was first seen on), load factor <= 1/2,
    so 1,000,000 tokens take about 24 MB. Membership is by 64-bit hash: two different
    tokens collide with probability ~n²/2⁶⁵ (about 3e-8 for a million), an accepted risk.
    ``hash()`` is salted per process, which is fine: the table never outlives the process.
    """

    __slots__ = ("_count", "_lines", "_mask", "_table")

    def __init__(self, capacity: int = 1024) -> None:
        size = 1024
        while size < capacity * 2:
            size *= 2
        self._table = array("q", bytes(8 * size))
        self._lines = array("i", bytes(4 * size))
        self._mask = size - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _key(token: str) -> int:
        key = hash(token)
        # 0 marks an empty slot.
        return key if key != 0 else 1

    def _slot(self, key: int) -> int:
        table, mask = self._table, self._mask
        i = key & mask
        while True:
            found = table[i]
            if found == 0 or found == key:
                return i
            i = (i + 1) & mask

    def add(self, token: str, line: int = 0) -> bool:
        """Add ``token``; True if it was new, False if it was already present."""
        key = self._key(token)
        i = self._slot(key)
        if self._table[i] == key:
            return False
        self._table[i] = key
        self._lines[i] = min(line, 2**31 - 1)
        self._count += 1
        if self._count * 2 > self._mask + 1:
            self._grow()
        return True

    def __contains__(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        key = self._key(token)
        return self._table[self._slot(key)] == key

    def first_line(self, token: str) -> int | None:
        """The ``line`` given when ``token`` was first added, or None if absent."""
        key = self._key(token)
        i = self._slot(key)
        return self._lines[i] if self._table[i] == key else None

    def _grow(self) -> None:
        old_table, old_lines = self._table, self._lines
        size = (self._mask + 1) * 2
        self._table = array("q", bytes(8 * size))
        self._lines = array("i", bytes(4 * size))
        self._mask = size - 1
        for key, line in zip(old_table, old_lines, strict=True):
            if key:
                i = self._slot(key)
                self._table[i] = key
                self._lines[i] = line
