"""Local APNs, FCM, Web Push and HMS emulators: real HTTP/2 + TLS servers, a device registry (with
topic and broadcast-channel subscriptions), an inbox, faults.

``Emulator`` is the entry point; see DEVELOPERS.md for the built-in test tokens.
"""

from pushctl.emulator.admin import ADMIN_TOKEN_FILE, admin_headers, read_admin_token
from pushctl.emulator.emulator import (
    ENDPOINTS_FILE,
    SERVICE_ACCOUNT_FILE,
    Emulator,
    inbox_key,
    read_endpoints,
)
from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.registry import (
    SAMPLE_APNS_CHANNEL,
    SAMPLE_APNS_KEY,
    SAMPLE_HMS_APP_ID,
    SAMPLE_KEY_ID,
    SAMPLE_SERVICE_ACCOUNT,
    SAMPLE_TEAM_ID,
    SAMPLE_TOPIC,
    SAMPLE_VAPID_KEY,
    Registry,
)
from pushctl.emulator.scenario import ErrorFault, Faults, Options, Scenario
from pushctl.emulator.tls import client_context, ensure_certificates, issue_client_certificate
from pushctl.emulator.webpush import issue_subscription, subscription_keys
from pushctl.emulator.workers import EmulatorWorkers

__all__ = [
    "ADMIN_TOKEN_FILE",
    "ENDPOINTS_FILE",
    "SAMPLE_APNS_CHANNEL",
    "SAMPLE_APNS_KEY",
    "SAMPLE_HMS_APP_ID",
    "SAMPLE_KEY_ID",
    "SAMPLE_SERVICE_ACCOUNT",
    "SAMPLE_TEAM_ID",
    "SAMPLE_TOPIC",
    "SAMPLE_VAPID_KEY",
    "SERVICE_ACCOUNT_FILE",
    "Delivery",
    "Emulator",
    "EmulatorWorkers",
    "ErrorFault",
    "Faults",
    "Inbox",
    "Options",
    "Registry",
    "Scenario",
    "admin_headers",
    "client_context",
    "ensure_certificates",
    "inbox_key",
    "issue_client_certificate",
    "issue_subscription",
    "read_admin_token",
    "read_endpoints",
    "subscription_keys",
]
