"""firebase-admin and google-auth, real FCM clients, against `pushctl emulator run` in separate processes.

google-auth fetches its OAuth token and firebase-admin's ``send`` / ``send_each`` post to FCM over
HTTP/1.1 (requests); ``send_each_async`` speaks HTTP/2 (httpx). Each answer must reach the backend
as the real service's would: a message name, or UnregisteredError / SenderIdMismatchError /
InvalidArgumentError for the emulator's test tokens. The client is pointed at the emulator only
through what a user can set: the service-account file, the CA bundle variables, the FCM URL.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator_process import emulator_run

from pushctl.emulator import admin_headers, read_admin_token

HERE = Path(__file__).resolve().parent
PROJECT = "pushctl-emulator"
GOOD = "fcm-token-" + "a" * 40
NAME = f"projects/{PROJECT}/messages/"


def firebase_process(info: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "REQUESTS_CA_BUNDLE": info["ca_file"], "SSL_CERT_FILE": info["ca_file"]}
    done = subprocess.run(
        [sys.executable, str(HERE / "firebase_client.py"), info["fcm_url"], info["service_account"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("workers", ["1", "2"])
def test_firebase_admin_gets_the_answers_fcm_gives(tmp_path: Path, workers: str) -> None:
    with emulator_run(tmp_path, "--workers", workers) as info:
        results = firebase_process(info)
        with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_file"])) as admin:
            headers = admin_headers(read_admin_token(Path(info["state_dir"])))
            inbox = admin.get(info["fcm_url"] + "/_emulator/inbox", headers=headers).json()
            stats = admin.get(info["fcm_url"] + "/_emulator/stats", headers=headers).json()
    assert results["google_auth_token"] == {"valid": True, "prefix": "ya29.emu-"}
    assert results["send_good"]["ok"].startswith(NAME)
    assert results["send_unregistered"]["error"] == "UnregisteredError"
    assert results["send_other_project"]["error"] == "SenderIdMismatchError"
    invalid = results["send_invalid"]
    assert (invalid["error"], invalid["code"]) == ("InvalidArgumentError", "INVALID_ARGUMENT")
    assert "not a valid FCM registration token" in invalid["message"]
    assert results["dry_run_good"]["ok"] == NAME + "fake_message_id"
    assert results["dry_run_unregistered"]["error"] == "UnregisteredError"
    errors = ["UnregisteredError", "SenderIdMismatchError", "InvalidArgumentError"]
    for key in ("send_each", "send_each_dry_run", "send_each_async"):
        first, *middle, last = results[key]
        assert middle == errors, key
        assert first.startswith(NAME) and last.startswith(NAME), key
    assert results["send_each_dry_run"][0] == NAME + "fake_message_id"
    # send, two in send_each, two in send_each_async; dry runs and refusals deliver nothing.
    assert inbox["counts"] == {GOOD: 5}
    assert stats["oauth"] == {"200": 2}  # google-auth's own fetch, then firebase-admin's credential
