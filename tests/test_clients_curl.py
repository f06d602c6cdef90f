"""curl against `pushctl emulator run`: the lines it prints work, and HTTP/1.1 and HTTP/2 answer alike.

curl is the first thing people point at an endpoint. Google's front ends (FCM, OAuth) answer
``--http1.1`` and ``--http2``; APNs answers only HTTP/2 (curl refuses what comes back to HTTP/1.1).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from emulator_process import emulator_run, ensure_curl

PROJECT = "pushctl-emulator"
GOOD_FCM = "fcm-token-" + "a" * 40


@pytest.fixture(scope="module")
def curl() -> str:
    return ensure_curl()


def run_curl(curl: str, line: str, *extra: str) -> tuple[int, str, str]:
    """Run a printed curl line (with ``extra`` options); (exit code, body + status line, stderr)."""
    argv = shlex.split(line)
    argv[0] = curl
    done = subprocess.run(
        [*argv, "-sS", *extra, "-w", "\n%{http_version} %{http_code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def answer(stdout: str) -> tuple[str, int, Any]:
    """(HTTP version, status, JSON body or None) from run_curl's stdout."""
    body, _, tail = stdout.rpartition("\n")
    version, status = tail.split(" ")
    return version, int(status), json.loads(body) if body.strip() else None


def fcm_send(curl: str, info: dict[str, Any], version: str, access: str, message: dict[str, Any]) -> Any:
    url = f"{info['fcm_url']}/v1/projects/{PROJECT}/messages:send"
    line = shlex.join(
        [
            "curl",
            version,
            "--cacert",
            info["ca_file"],
            "-X",
            "POST",
            url,
            "-d",
            json.dumps({"message": message}),
        ]
    )
    code, out, err = run_curl(
        curl, line, "-H", f"authorization: Bearer {access}", "-H", "content-type: application/json"
    )
    assert code == 0, err
    got_version, status, body = answer(out)
    assert got_version == ("2" if version == "--http2" else "1.1")
    return status, body


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_printed_curl_lines_work_on_both_versions(curl: str, tmp_path: Path, workers: str) -> None:
    with emulator_run(tmp_path, "--workers", workers) as info:
        assert info["curl_token"].startswith("curl --http1.1 ")
        assert "eyJ" not in json.dumps(info)  # the assertion and the JWT stay in 0600 files
        tokens = {}
        for version in ("--http1.1", "--http2"):
            code, out, err = run_curl(curl, info["curl_token"].replace("--http1.1", version))
            assert code == 0, err
            got_version, status, body = answer(out)
            assert (got_version, status) == ("2" if version == "--http2" else "1.1", 200), out
            assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
            tokens[version] = body["access_token"]
        answers = {}
        for version in ("--http1.1", "--http2"):
            access = tokens[version]
            answers[version] = [
                fcm_send(curl, info, version, access, {"token": "unregistered" + "x" * 30}),
                fcm_send(curl, info, version, access, {"token": "otherproject" + "x" * 30}),
                fcm_send(curl, info, version, access, {"token": "short"}),
            ]
            status, body = fcm_send(curl, info, version, access, {"token": GOOD_FCM, "data": {"k": "v"}})
            assert status == 200 and body["name"].startswith(f"projects/{PROJECT}/messages/")
        assert answers["--http1.1"] == answers["--http2"]
        assert [(s, b["error"]["details"][0]["errorCode"]) for s, b in answers["--http2"]] == [
            (404, "UNREGISTERED"),
            (403, "SENDER_ID_MISMATCH"),
            (400, "INVALID_ARGUMENT"),
        ]
        code, out, err = run_curl(curl, info["curl"])  # the printed APNs line: HTTP/2
        assert code == 0, err
        assert answer(out)[:2] == ("2", 200)
        # The printed inbox line carries the state dir's admin token (from a 0600 headers file).
        inbox_line = info["curl_inbox"].replace("curl ", "curl --http1.1 ", 1)
        version, status, inbox = answer(run_curl(curl, inbox_line)[1])
        assert (version, status, inbox["total"]) == ("1.1", 200, 3)  # from every worker
        headers = "@" + str(Path(info["state_dir"]) / "curl-admin-headers.txt")
        stats_url = f"{info['fcm_url']}/_emulator/stats"
        stats = answer(run_curl(curl, f"curl --http2 --cacert {info['ca_file']} -H {headers} {stats_url}")[1])
        assert stats[:2] == ("2", 200)
        assert stats[2]["inbox_total"] == 3  # two FCM messages and the APNs push, from every worker
        refused = f"curl --http2 --cacert {info['ca_file']} {info['fcm_url']}/_emulator/inbox"
        assert answer(run_curl(curl, refused)[1])[1] == 401  # no token, no inbox


def test_apns_refuses_http1_like_apple(curl: str, tmp_path: Path) -> None:
    with emulator_run(tmp_path) as info:
        code, _, err = run_curl(curl, info["curl"].replace("--http2", "--http1.1"))
        # curl reads the server's HTTP/2 SETTINGS frame where an HTTP/1.1 status line should be.
        assert code != 0
        assert "HTTP/0.9" in err or "Unsupported" in err or "Weird server reply" in err, err
