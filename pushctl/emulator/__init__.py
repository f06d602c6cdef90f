"""Local APNs and FCM emulators: real HTTP/2 + TLS servers, a device registry, an inbox, faults.

``Emulator`` is the entry point; see DEVELOPERS.md for the built-in test tokens.
"""

from pushctl.emulator.emulator import ENDPOINTS_FILE, Emulator, read_endpoints
from pushctl.emulator.inbox import Delivery, Inbox
from pushctl.emulator.registry import Registry
from pushctl.emulator.scenario import ErrorFault, Faults, Options, Scenario
from pushctl.emulator.tls import client_context

__all__ = [
    "ENDPOINTS_FILE",
    "Delivery",
    "Emulator",
    "ErrorFault",
    "Faults",
    "Inbox",
    "Options",
    "Registry",
    "Scenario",
    "client_context",
    "read_endpoints",
]
