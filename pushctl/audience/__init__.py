"""Who a campaign reaches: streaming audience readers (CSV, JSON Lines, text, stdin), the token
shape rules per platform (Web Push subscriptions included), the de-duplication set, and the
``--where`` language (lexer and parser, never ``eval``).

Rows stream through :class:`AudienceReader` one at a time, so memory stays flat as audiences grow.
"""

from pushctl.audience.reader import (
    AudienceReader,
    BadRow,
    Format,
    count_rows,
    parse_platform,
)
from pushctl.audience.segment import (
    Segment,
)
from pushctl.audience.segment_lex import (
    SegmentError,
)
from pushctl.audience.subscription import (
    AUTH,
    P256DH,
    b64url_decode,
    keys_problem,
    subscription_problem,
)
from pushctl.audience.tokens import (
    MIN_INFERABLE_LENGTH,
    TokenSet,
    infer_platform,
    is_fcm_shaped,
    is_hex,
    is_hms_shaped,
    normalize_token,
    token_problem,
)

__all__ = [
    "AUTH",
    "MIN_INFERABLE_LENGTH",
    "P256DH",
    "AudienceReader",
    "BadRow",
    "Format",
    "Segment",
    "SegmentError",
    "TokenSet",
    "b64url_decode",
    "count_rows",
    "infer_platform",
    "is_fcm_shaped",
    "is_hex",
    "is_hms_shaped",
    "keys_problem",
    "normalize_token",
    "parse_platform",
    "subscription_problem",
    "token_problem",
]
