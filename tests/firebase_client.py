"""A firebase-admin / google-auth backend, pointed at `pushctl emulator run` the way a user can (README).

    REQUESTS_CA_BUNDLE=ca.pem SSL_CERT_FILE=ca.pem python firebase_client.py FCM_URL SERVICE_ACCOUNT_JSON

The service-account file is the copy in the emulator's state dir (its ``token_uri`` is the
emulator's); firebase-admin has no FCM endpoint setting, so its class attribute is set. Prints one
JSON object: what each call returned or raised, as the library surfaces it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import firebase_admin
import google.auth.transport.requests
import google.oauth2.service_account
from firebase_admin import credentials, messaging

GOOD = "fcm-token-" + "a" * 40
UNREGISTERED = "unregistered" + "x" * 30
OTHER_PROJECT = "otherproject" + "x" * 30
INVALID = "short"


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": call()}
    except Exception as exc:  # what the library raised, by class, as a backend would catch it
        return {"error": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc)}


def batch(response: messaging.BatchResponse) -> list[Any]:
    return [r.message_id if r.success else type(r.exception).__name__ for r in response.responses]


def message(token: str) -> messaging.Message:
    return messaging.Message(token=token, data={"k": "v"}, notification=messaging.Notification("Hi", "there"))


def main(fcm_url: str, service_account: str) -> dict[str, Any]:
    messaging._MessagingService.FCM_URL = fcm_url + "/v1/projects/{0}/messages:send"
    results: dict[str, Any] = {}
    scoped = google.oauth2.service_account.Credentials.from_service_account_file(
        service_account, scopes=["https://www.googleapis.com/auth/firebase.messaging"]
    )
    scoped.refresh(google.auth.transport.requests.Request())  # google-auth's own token fetch
    results["google_auth_token"] = {"valid": scoped.valid, "prefix": scoped.token[:9]}
    # A backend initialises its app once and keeps it until the process ends (firebase-admin's
    # delete_app would close send_each_async's HTTP/2 client from another event loop).
    firebase_admin.initialize_app(credentials.Certificate(service_account))
    for name, token in (("good", GOOD), ("unregistered", UNREGISTERED),
                        ("other_project", OTHER_PROJECT), ("invalid", INVALID)):  # fmt: skip
        results[f"send_{name}"] = outcome(lambda t=token: messaging.send(message(t)))  # type: ignore[misc]
    results["dry_run_good"] = outcome(lambda: messaging.send(message(GOOD), dry_run=True))
    results["dry_run_unregistered"] = outcome(lambda: messaging.send(message(UNREGISTERED), dry_run=True))
    everyone = [message(t) for t in (GOOD, UNREGISTERED, OTHER_PROJECT, INVALID, GOOD)]
    results["send_each"] = batch(messaging.send_each(everyone))
    results["send_each_dry_run"] = batch(messaging.send_each(everyone, dry_run=True))
    results["send_each_async"] = batch(asyncio.run(messaging.send_each_async(everyone)))
    return results


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
