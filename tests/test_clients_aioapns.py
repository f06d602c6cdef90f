"""aioapns, a real APNs client, against `pushctl emulator run`: separate processes, as backends run.

Each client run is its own process with its own connection and its own freshly signed JWT, like a
restarted deploy or another pod. By default the emulator lets each of them in (APNs refuses a
token replaced too often on one connection); ``samples/scenarios/strict-apns.toml`` keeps the
key-wide reading, where the second process within 20 minutes gets TooManyProviderTokenUpdates.
The rule is about a window of 20 minutes, so starting the processes ~1.5 s apart shows it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from emulator_process import emulator_run

from pushctl.emulator import SAMPLE_APNS_KEY

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOOD = "ab" * 32


def aioapns_process(info: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(HERE / "aioapns_client.py"), info["apns_url"], info["ca_file"], *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_token_auth_answers_as_apns_does(tmp_path: Path) -> None:
    tokens = [GOOD, "dead" + "00" * 30, "0bad" + "11" * 30, "0" * 64, "xyz"]
    with emulator_run(tmp_path) as info:
        results = aioapns_process(info, "--key", str(SAMPLE_APNS_KEY), *tokens)
        other_topic = aioapns_process(info, "--key", str(SAMPLE_APNS_KEY), "--topic", "com.other.app", GOOD)
        wrong_team = aioapns_process(info, "--key", str(SAMPLE_APNS_KEY), "--team-id", "OTHERTEAM1", GOOD)
    assert [(r["status"], r["description"], r["successful"]) for r in results] == [
        ("200", None, True),
        ("410", "Unregistered", False),
        ("400", "DeviceTokenNotForTopic", False),
        ("400", "BadDeviceToken", False),
        ("400", "BadDeviceToken", False),
    ]
    assert [(r["status"], r["description"]) for r in other_topic] == [("400", "TopicDisallowed")]
    assert [(r["status"], r["description"]) for r in wrong_team] == [("403", "InvalidProviderToken")]


def test_certificate_auth(tmp_path: Path) -> None:
    with emulator_run(tmp_path) as info:
        for topic, environment in (("com.example.pushctl", "sandbox"), ("com.example.pushctl", "production")):
            out = tmp_path / environment
            issued = subprocess.run(
                [sys.executable, "-m", "pushctl", "-o", "json", "emulator", "issue-cert", topic,
                 "--out-dir", str(out), "--environment", environment, "--state-dir", info["state_dir"]],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            files = json.loads(issued.stdout)
            bundle = out / "cert-and-key.pem"  # aioapns takes one PEM holding both
            bundle.write_text(Path(files["cert_file"]).read_text() + Path(files["key_file"]).read_text())
            result = aioapns_process(info, "--cert", str(bundle), GOOD, "dead" + "00" * 30)
            if environment == "sandbox":
                assert [(r["status"], r["description"]) for r in result] == [
                    ("200", None),
                    ("410", "Unregistered"),
                ]
            else:  # a production certificate on the sandbox host
                assert {(r["status"], r["description"]) for r in result} == {
                    ("403", "BadCertificateEnvironment")
                }


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (None, ["200", "200", "200"]),
        ("strict-apns.toml", ["200", "429 TooManyProviderTokenUpdates", "429 TooManyProviderTokenUpdates"]),
    ],
    ids=["default-per-connection", "strict-key-wide"],
)
def test_three_backend_processes_started_apart(
    tmp_path: Path, scenario: str | None, expected: list[str]
) -> None:
    args = ["--scenario", str(REPO / "samples" / "scenarios" / scenario)] if scenario else []
    answers = []
    with emulator_run(tmp_path, *args) as info:
        for i in range(3):
            if i:
                time.sleep(1.5)  # so each process signs its JWT in a later second (iat) than the one before
            (result,) = aioapns_process(info, "--key", str(SAMPLE_APNS_KEY), GOOD)
            answers.append(" ".join(filter(None, (result["status"], result["description"]))))
    assert answers == expected
