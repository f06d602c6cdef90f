"""What a notification says: the YAML template schema, rendering (sandboxed Jinja2 with a fast
path for plain substitutions, locales, A/B variants), and the APNs / FCM payload builders with
their size limits.
"""

from pushctl.message.payload import (
    APNS_LIMIT,
    APNS_VOIP_LIMIT,
    FCM_LIMIT,
    ApnsRequest,
    FcmRequest,
    build_apns,
    build_fcm,
)
from pushctl.message.schema import (
    Source,
    load_yaml,
)
from pushctl.message.template import (
    _ENV,
    Media,
    Notification,
    Template,
    _Expr,
    _simple_parts,
)

__all__ = [
    "APNS_LIMIT",
    "APNS_VOIP_LIMIT",
    "FCM_LIMIT",
    "_ENV",
    "ApnsRequest",
    "FcmRequest",
    "Media",
    "Notification",
    "Source",
    "Template",
    "_Expr",
    "_simple_parts",
    "build_apns",
    "build_fcm",
    "load_yaml",
]
