"""Who a campaign reaches: streaming audience readers (CSV, JSON Lines, text, stdin), the token
shape rules per platform, the de-duplication set, and the ``--where`` language (lexer and parser,
never ``eval``).

Rows stream through :class:`AudienceReader` one at a time, so memory stays flat as audiences grow.
"""

from pushctl.audience.reader import (
    AudienceReader,
    BadRow,
    Format,
    parse_platform,
)
from pushctl.audience.segment import (
    Segment,
)
from pushctl.audience.segment_lex import (
    SegmentError,
)
from pushctl.audience.tokens import (
    MIN_INFERABLE_LENGTH,
    WEB_PUSH_UNSUPPORTED,
    TokenSet,
    infer_platform,
    is_fcm_shaped,
    is_hex,
    normalize_token,
    token_problem,
)

__all__ = [
    "MIN_INFERABLE_LENGTH",
    "WEB_PUSH_UNSUPPORTED",
    "AudienceReader",
    "BadRow",
    "Format",
    "Segment",
    "SegmentError",
    "TokenSet",
    "infer_platform",
    "is_fcm_shaped",
    "is_hex",
    "normalize_token",
    "parse_platform",
    "token_problem",
]
