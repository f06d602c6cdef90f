"""Credential files, offline: loading APNs token keys (.p8) and certificates (.p12 / PEM) and
FCM service accounts, and the offline checks that ``pushctl credentials check`` prints.

No network here: the online checks live in :mod:`pushctl.checks`.
"""

from pushctl.credentials.checks import (
    CredentialCheck,
    check_offline,
)
from pushctl.credentials.keys import (
    APPLE_TOPICS_OID,
    GOOGLE_SERVICES_MESSAGE,
    ApnsCertificate,
    ApnsTokenKey,
    ServiceAccount,
    expiry_warning,
    load_apns_certificate,
    load_apns_key,
    load_service_account,
    permission_warning,
)

__all__ = [
    "APPLE_TOPICS_OID",
    "GOOGLE_SERVICES_MESSAGE",
    "ApnsCertificate",
    "ApnsTokenKey",
    "CredentialCheck",
    "ServiceAccount",
    "check_offline",
    "expiry_warning",
    "load_apns_certificate",
    "load_apns_key",
    "load_service_account",
    "permission_warning",
]
