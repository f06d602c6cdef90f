"""Credential files, offline: loading APNs token keys (.p8) and certificates (.p12 / PEM), FCM
service accounts, VAPID key pairs (Web Push) and HMS app secrets, and the offline checks that
``pushctl credentials check`` prints.

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
from pushctl.credentials.platforms import (
    HmsCredentials,
    VapidKey,
    check_subject,
    generate_vapid_key,
    load_hms_credentials,
    load_vapid_key,
)

__all__ = [
    "APPLE_TOPICS_OID",
    "GOOGLE_SERVICES_MESSAGE",
    "ApnsCertificate",
    "ApnsTokenKey",
    "CredentialCheck",
    "HmsCredentials",
    "ServiceAccount",
    "VapidKey",
    "check_offline",
    "check_subject",
    "expiry_warning",
    "generate_vapid_key",
    "load_apns_certificate",
    "load_apns_key",
    "load_hms_credentials",
    "load_service_account",
    "load_vapid_key",
    "permission_warning",
]
