"""HTTP/1.1 beside HTTP/2 on the FCM/OAuth port (chosen by ALPN); APNs HTTP/2-only, like the real ones.

Every answer is compared across the two versions: the same handler serves both, so status, body,
headers, injected faults and inbox records must not depend on the version the client spoke.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import h2.connection
import h2.events
import httpx
import pytest
from test_emulator_fcm import PROJECT, TOKEN, assertion

from pushctl.emulator import Emulator
from pushctl.emulator.http1 import MAX_BODY_BYTES, MAX_HEAD_BYTES

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def ctx(emu: Any, alpn: list[str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(emu.ca_file))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def httpx_client(emu: Any, version: str) -> httpx.Client:
    http2 = version == "h2"
    return httpx.Client(http2=http2, http1=not http2, verify=ctx(emu, [version]), timeout=10)


def raw(emu: Emulator, alpn: list[str] | None = ["http/1.1"]) -> ssl.SSLSocket:  # noqa: B006
    port = int(emu.fcm_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx(emu, alpn).wrap_socket(sock, server_hostname="127.0.0.1")


def read_response(sock: ssl.SSLSocket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from ``sock`` (bytes after it stay in ``buf``)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(buf)!r}")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    size = int(headers.get("content-length", "0"))
    while len(buf) < end + 4 + size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    body = bytes(buf[end + 4 : end + 4 + size])
    del buf[: end + 4 + size]
    return status, headers, body


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() == "transfer-encoding" for k in headers or {}):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def token_form(emu: Any, **overrides: Any) -> dict[str, str]:
    return {"grant_type": GRANT, "assertion": assertion(emu, **overrides)}


def _normalise(body: Any) -> Any:
    """Answers with per-request ids (message names, access tokens) made comparable."""
    if isinstance(body, dict):
        return {k: ("<id>" if k in ("name", "access_token") else _normalise(v)) for k, v in body.items()}
    return body


MESSAGES: list[tuple[str, dict[str, Any], bool | None]] = [
    ("good", {"token": TOKEN, "data": {"k": "v"}}, None),
    ("dry-run", {"token": TOKEN}, True),
    ("unregistered", {"token": "unregistered" + "x" * 30}, None),
    ("other-project", {"token": "otherproject" + "x" * 30}, None),
    ("invalid-token", {"token": "short"}, None),
    ("reserved-key", {"token": TOKEN, "data": {"from": "x"}}, None),
    ("two-targets", {"token": TOKEN, "topic": "news"}, None),
    ("bad-ttl", {"token": TOKEN, "android": {"ttl": "soon"}}, None),
]


def test_every_fcm_and_oauth_answer_is_the_same_on_both_versions(tmp_path: Path) -> None:
    answers: dict[str, list[tuple[Any, ...]]] = {}
    with Emulator(tmp_path / "emu") as emu:
        for version in ("h2", "http/1.1"):
            got = answers[version] = []
            with httpx_client(emu, version) as c:
                token = c.post(emu.token_uri, data=token_form(emu))
                assert token.extensions["http_version"] == (b"HTTP/2" if version == "h2" else b"HTTP/1.1")
                got.append((token.status_code, _normalise(token.json())))
                bad_aud = c.post(emu.token_uri, data=token_form(emu, aud="https://elsewhere/token"))
                got.append((bad_aud.status_code, bad_aud.json()))
                bad_scope = c.post(emu.token_uri, data=token_form(emu, scope="openid"))
                got.append((bad_scope.status_code, bad_scope.json()))
                url = f"{emu.fcm_url}/v1/projects/{PROJECT}/messages:send"
                auth = {"authorization": "Bearer " + token.json()["access_token"]}
                for _name, message, validate_only in MESSAGES:
                    body: dict[str, Any] = {"message": message}
                    if validate_only is not None:
                        body["validate_only"] = validate_only
                    r = c.post(url, json=body, headers=auth)
                    got.append((r.status_code, r.headers["content-type"], _normalise(r.json())))
                no_auth = c.post(url, json={"message": MESSAGES[0][1]})
                got.append((no_auth.status_code, no_auth.json()))
                wrong_project = c.post(
                    url.replace(PROJECT, "someone-else"), json={"message": {}}, headers=auth
                )
                got.append((wrong_project.status_code, wrong_project.json()))
                not_found = c.get(f"{emu.fcm_url}/v1/nothing", headers=auth)
                got.append((not_found.status_code, not_found.json()))
        deliveries = emu.inbox.received(TOKEN)
    assert answers["h2"] == answers["http/1.1"]
    statuses = [a[0] for a in answers["h2"]]
    assert statuses == [200, 400, 400, 200, 200, 404, 403, 400, 400, 400, 400, 401, 403, 404]
    # Delivered once per version (the dry run and the rejected messages recorded nothing).
    assert [d.payload for d in deliveries] == [MESSAGES[0][1]] * 2


def test_one_keep_alive_connection_serves_many_requests_and_chunked_bodies(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu, raw(emu) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        buf = bytearray()
        form = "&".join(f"{k}={v}" for k, v in token_form(emu).items()).encode()
        sock.sendall(
            request_bytes("POST", "/token", form, {"content-type": "application/x-www-form-urlencoded"})
        )
        status, _, body = read_response(sock, buf)
        assert status == 200
        access = json.loads(body)["access_token"]
        message = json.dumps({"message": {"token": TOKEN, "data": {"n": "1"}}}).encode()
        chunked = (
            b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (message[:10], message[10:]))
            + b"0\r\nx-trailer: 1\r\n\r\n"
        )
        path = f"/v1/projects/{PROJECT}/messages:send"
        headers = {"authorization": f"Bearer {access}", "content-type": "application/json"}
        for _ in range(3):
            sock.sendall(request_bytes("POST", path, message, headers))
            assert read_response(sock, buf)[0] == 200
        sock.sendall(request_bytes("POST", path, chunked, {**headers, "transfer-encoding": "chunked"}))
        status, _, body = read_response(sock, buf)
        assert status == 200, body
        # Two requests written at once (pipelined) are answered in order.
        sock.sendall(
            request_bytes("POST", path, message, headers) + request_bytes("GET", "/v1/x", b"", headers)
        )
        assert [read_response(sock, buf)[0] for _ in range(2)] == [200, 404]
        assert emu.open_connections() == 1
        assert emu.inbox.count(TOKEN) == 5
        assert emu.stats()["fcm"] == {"200": 5, "404": 1}


def test_expect_continue_and_connection_close(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu, raw(emu) as sock:
        buf = bytearray()
        body = json.dumps({"message": {"token": TOKEN}}).encode()
        head = request_bytes(
            "POST", "/token", b"", {"expect": "100-continue", "content-length": str(len(body))}
        )
        sock.sendall(head)
        assert read_response(sock, buf)[0] == 100
        sock.sendall(body)
        status, _, answer = read_response(sock, buf)
        assert status == 400 and json.loads(answer)["error"] == "unsupported_grant_type"
        admin = {"connection": "close", **emu.admin_headers()}
        sock.sendall(request_bytes("GET", "/_emulator/stats", headers=admin))
        status, headers, _ = read_response(sock, buf)
        assert (status, headers["connection"]) == (200, "close")
        assert sock.recv(100) == b""


@pytest.mark.parametrize(
    ("request_data", "status"),
    [
        (b"GET /x HTTP/1.1\r\nhost: a\r\nx-big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
        (request_bytes("POST", "/token", headers={"content-length": str(MAX_BODY_BYTES + 1)}), 413),
        (b"POST /token HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /token HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", 501),
        (b"BROKEN\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    ],
    ids=[
        "headers-too-large",
        "body-too-large",
        "bad-chunk",
        "unknown-encoding",
        "bad-request-line",
        "bad-header",
    ],
)
def test_malformed_or_oversized_requests_are_refused_and_closed(
    tmp_path: Path, request_data: bytes, status: int
) -> None:
    with Emulator(tmp_path / "emu") as emu, raw(emu) as sock:
        sock.sendall(request_data)
        buf = bytearray()
        got, headers, _ = read_response(sock, buf)
        assert (got, headers["connection"]) == (status, "close")
        assert sock.recv(100) == b""


FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("error", {"errors": [{"status": 503, "rate": 1.0, "retry_after": 7, "provider": "fcm"}]}),
    ("quota", {"fcm_quota_per_minute": 1}),
    ("latency", {"latency_ms": 30}),
]


@pytest.mark.parametrize(("name", "options"), FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_faults_answer_the_same_on_both_versions(
    tmp_path: Path, name: str, options: dict[str, Any]
) -> None:
    results = {}
    for version in ("h2", "http/1.1"):
        with (
            Emulator(tmp_path / version.replace("/", ""), seed=3, **options) as emu,
            httpx_client(emu, version) as c,
        ):
            access = c.post(emu.token_uri, data=token_form(emu)).json()["access_token"]
            url = f"{emu.fcm_url}/v1/projects/{PROJECT}/messages:send"
            answers = []
            for _ in range(2):
                r = c.post(
                    url, json={"message": {"token": TOKEN}}, headers={"authorization": f"Bearer {access}"}
                )
                answers.append((r.status_code, r.headers.get("retry-after"), _normalise(r.json())))
            results[version] = (answers, emu.inbox.count(TOKEN))
    assert results["h2"] == results["http/1.1"]
    expected = {"error": [503, 503], "quota": [200, 429], "latency": [200, 200]}[name]
    assert [a[0] for a in results["h2"][0]] == expected


def test_connection_faults_on_http1(tmp_path: Path) -> None:
    with Emulator(tmp_path / "a", goaway_after=2) as emu, raw(emu) as sock:
        buf = bytearray()
        sock.sendall(request_bytes("GET", "/_emulator/stats", headers=emu.admin_headers()))
        assert "connection" not in read_response(sock, buf)[1]
        sock.sendall(request_bytes("GET", "/_emulator/stats", headers=emu.admin_headers()))
        assert read_response(sock, buf)[1]["connection"] == "close"  # HTTP/1.1's GOAWAY
    with Emulator(tmp_path / "b", drop_rate=1.0) as emu, raw(emu) as sock:
        form = "&".join(f"{k}={v}" for k, v in token_form(emu).items()).encode()
        sock.sendall(request_bytes("POST", "/token", form))
        access = json.loads(read_response(sock, bytearray())[2])["access_token"]
        path = f"/v1/projects/{PROJECT}/messages:send"
        sock.sendall(request_bytes("POST", path, b'{"message":{}}', {"authorization": f"Bearer {access}"}))
        assert sock.recv(100) == b""  # dropped without an answer
    with Emulator(tmp_path / "c", idle_timeout=0.2) as emu, raw(emu) as sock:
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed after 0.2 s without a request


def test_apns_is_http2_only_like_apple(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        port = int(emu.apns_url.rsplit(":", 1)[1])
        with ctx(emu, ["h2", "http/1.1"]).wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as sock:
            assert sock.selected_alpn_protocol() == "h2"  # the port offers nothing else
        with ctx(emu, ["http/1.1"]).wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as sock:
            assert sock.selected_alpn_protocol() is None
            sock.sendall(request_bytes("POST", "/3/device/" + "ab" * 32, b"{}"))
            answer = bytearray()
            while chunk := sock.recv(65536):
                answer += chunk
        # An HTTP/2 SETTINGS frame (type 4 on stream 0) where an HTTP/1.1 client expects "HTTP/1.1 ...".
        assert answer[3] == 4 and not answer.startswith(b"HTTP/")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(emu.apns_url + "/3/device/" + "ab" * 32, content=b"{}", verify=ctx(emu, ["http/1.1"]))
        assert emu.inbox.total() == 0


def test_without_alpn_the_first_bytes_choose_the_version(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        with raw(emu, alpn=None) as sock:
            assert sock.selected_alpn_protocol() is None
            sock.sendall(request_bytes("GET", "/_emulator/stats", headers=emu.admin_headers()))
            assert read_response(sock, bytearray())[0] == 200
        with raw(emu, alpn=None) as sock:  # HTTP/2 with prior knowledge
            conn = h2.connection.H2Connection()
            conn.initiate_connection()
            conn.send_headers(
                1,
                [
                    (":method", "GET"),
                    (":path", "/_emulator/stats"),
                    (":scheme", "https"),
                    (":authority", "x"),
                    *emu.admin_headers().items(),
                ],
                end_stream=True,
            )
            sock.sendall(conn.data_to_send())
            status = None
            while status is None:
                for event in conn.receive_data(sock.recv(65536)):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                sock.sendall(conn.data_to_send())
            assert status == b"200"


def test_workers_serve_both_versions_with_one_merged_inbox(tmp_path: Path) -> None:
    from pushctl.emulator import EmulatorWorkers

    with EmulatorWorkers(tmp_path / "emu", workers=2) as emu:
        url = f"{emu.fcm_url}/v1/projects/{PROJECT}/messages:send"
        for version in ("h2", "http/1.1"):
            for _ in range(3):  # new connections: the kernel spreads them over both workers
                with httpx_client(emu, version) as c:
                    access = c.post(emu.token_uri, data=token_form(emu)).json()["access_token"]
                    r = c.post(
                        url, json={"message": {"token": TOKEN}}, headers={"authorization": f"Bearer {access}"}
                    )
                    assert r.status_code == 200, r.text
                    bad = c.post(
                        url,
                        json={"message": {"token": "short"}},
                        headers={"authorization": f"Bearer {access}"},
                    )
                    assert bad.json()["error"]["details"][0]["errorCode"] == "INVALID_ARGUMENT"
        with httpx_client(emu, "http/1.1") as c:
            inbox = c.get(f"{emu.fcm_url}/_emulator/inbox", headers=emu.admin_headers()).json()
            stats = c.get(f"{emu.fcm_url}/_emulator/stats", headers=emu.admin_headers()).json()
    assert inbox["counts"] == {TOKEN: 6}
    assert len([w for w in stats["workers"] if w["fcm"].get("200")]) == 2
