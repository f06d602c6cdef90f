"""What a notification says: the YAML template schema, rendering (sandboxed Jinja2 with a fast
path for plain substitutions, locales, A/B variants), and the payload builders with their size
limits: APNs, FCM, Web Push (with its RFC 8291 encryption) and HMS.
"""

from pushctl.message.broadcast import (
    FCM_TOPIC_LIMIT,
    build_apns_broadcast,
    build_fcm_broadcast,
)
from pushctl.message.hms import (
    HMS_LIMIT,
    HMS_MAX_TOKENS,
    HmsRequest,
    build_hms,
    hms_body,
    hms_message,
)
from pushctl.message.payload import (
    APNS_LIMIT,
    APNS_VOIP_LIMIT,
    FCM_LIMIT,
    ApnsRequest,
    FcmRequest,
    build_apns,
    build_fcm,
)
from pushctl.message.schema import load_yaml
from pushctl.message.source import Source
from pushctl.message.template import (
    SANDBOX,
    Media,
    Notification,
    Template,
)
from pushctl.message.webpush import (
    PLAINTEXT_LIMIT,
    WebPushRequest,
    build_webpush,
    encrypt,
    topic_for,
)

__all__ = [
    "APNS_LIMIT",
    "APNS_VOIP_LIMIT",
    "FCM_LIMIT",
    "FCM_TOPIC_LIMIT",
    "HMS_LIMIT",
    "HMS_MAX_TOKENS",
    "PLAINTEXT_LIMIT",
    "SANDBOX",
    "ApnsRequest",
    "FcmRequest",
    "HmsRequest",
    "Media",
    "Notification",
    "Source",
    "Template",
    "WebPushRequest",
    "build_apns",
    "build_apns_broadcast",
    "build_fcm",
    "build_fcm_broadcast",
    "build_hms",
    "build_webpush",
    "encrypt",
    "hms_body",
    "hms_message",
    "load_yaml",
    "topic_for",
]
