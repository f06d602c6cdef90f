"""The lean HTTP/2 client against h2 servers, side by side with the reference client on h2.

The same requests go through both implementations; the answers must match, and the servers
(h2 on the other end, validating every frame and header block) must see no protocol error.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from h2.errors import ErrorCodes
from h2_test_server import H2TestServer, Pki, make_test_pki

from pushctl.emulator import Emulator
from pushctl.emulator.registry import SAMPLE_APNS_KEY, SAMPLE_KEY_ID, SAMPLE_TEAM_ID, SAMPLE_TOPIC
from pushctl.transport import ConnectionLost, H2Pool, H2Response, NoHttp2, make_ssl_context

T = TypeVar("T")
BOTH = ("lean", "h2")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def on_server(pki: Pki, impl: str, body: Callable[[H2TestServer, H2Pool], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        async with H2TestServer(pki) as server:
            pool = H2Pool(server.url, ssl_context=make_ssl_context(ca_file=pki.ca), implementation=impl, **kw)
            try:
                return await asyncio.wait_for(body(server, pool), 30)
            finally:
                await pool.close()
                assert server.protocol_errors == []

    return asyncio.run(main())


def view(r: H2Response) -> tuple[int, dict[str, str], bytes]:
    return r.status, r.headers, r.body


@pytest.mark.parametrize(
    "path",
    ["/echo", "/bigheaders/40000", "/informational", "/padded", "/trailers", "/ping-first", "/big/200000"],
)
def test_both_clients_read_the_same_answers(pki: Pki, path: str) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> list[tuple[int, dict[str, str], bytes]]:
        answers = [
            view(await pool.request("POST", path, [("x-req-id", str(i))], b"payload")) for i in range(3)
        ]
        if path == "/ping-first":
            await asyncio.sleep(0.05)
            assert server.ping_acks == 3  # the client answered the server's PINGs
        return answers

    lean, ref = (on_server(pki, impl, body) for impl in BOTH)
    assert lean == ref
    status, headers, payload = lean[0]
    assert status == 200
    if path == "/bigheaders/40000":
        assert headers["x-big"] == "b" * 40000
    if path == "/informational":
        assert "link" not in headers  # the 103's headers are not the response's
    if path == "/padded":
        assert payload == b"padded body"
    if path == "/trailers":
        assert payload == b"body before trailers"


@pytest.mark.parametrize("impl", BOTH)
def test_stream_reset_by_the_server_is_connection_lost_and_the_connection_lives_on(
    pki: Pki, impl: str
) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        with pytest.raises(ConnectionLost, match="INTERNAL_ERROR"):
            await pool.request("POST", f"/rst/{int(ErrorCodes.INTERNAL_ERROR)}", [])
        assert (await pool.request("POST", "/echo", [], b"x")).body == b"x"
        assert pool.stats.connections_opened == 1

    on_server(pki, impl, body)


@pytest.mark.parametrize("impl", BOTH)
def test_protocol_error_from_the_server_fails_in_flight_then_a_new_connection_serves(
    pki: Pki, impl: str
) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        with pytest.raises(ConnectionLost, match="protocol error"):
            await pool.request("POST", "/protocol-error", [])
        assert (await pool.request("POST", "/echo", [], b"y")).body == b"y"
        stats = pool.stats
        assert (stats.connection_losses, stats.connections_opened) == (1, 2)

    on_server(pki, impl, body)


@pytest.mark.parametrize("impl", BOTH)
def test_header_table_size_settings_are_followed(pki: Pki, impl: str) -> None:
    """The server shrinks its HPACK table (to 0, then 100 bytes): the client's next blocks must
    start with a size update and stay within the size, or h2 on the server rejects them."""

    async def body(server: H2TestServer, pool: H2Pool) -> None:
        headers = [("authorization", "bearer " + "j" * 180), ("apns-topic", "com.example")]
        for size in (4096, 0, 100, 4096):
            server.set_header_table_size(size)
            await asyncio.sleep(0.02)
            for i in range(5):
                r = await pool.request("POST", f"/echo?{size}-{i}", [*headers, ("x-req-id", f"{size}-{i}")])
                assert r.headers["x-req-id"] == f"{size}-{i}"

    on_server(pki, impl, body)


@pytest.mark.parametrize("impl", BOTH)
def test_a_changing_constant_header_resets_the_table_without_errors(pki: Pki, impl: str) -> None:
    """Refreshed JWTs: each new value enters the table; when it is full the encoder starts over."""

    async def body(server: H2TestServer, pool: H2Pool) -> None:
        for jwt in range(40):
            headers = [("authorization", f"bearer {jwt:04d}" + "j" * 200), ("x-req-id", str(jwt))]
            r = await pool.request("POST", "/echo", headers, b"z")
            assert (r.status, r.headers["x-req-id"]) == (200, str(jwt))

    on_server(pki, impl, body)


def test_same_requests_through_both_clients_against_the_emulator(tmp_path: Path) -> None:
    """APNs pushes (good, unregistered, bad token, wrong topic) and FCM sends through each client:
    the emulator (h2 underneath) checks every frame; statuses and bodies must match."""
    import jwt as pyjwt

    token = pyjwt.encode({"iss": SAMPLE_TEAM_ID, "iat": int(time.time())},
                         SAMPLE_APNS_KEY.read_bytes(), algorithm="ES256", headers={"kid": SAMPLE_KEY_ID})
    devices = ["ab" * 32, "dead" + "00" * 30, "0bad" + "11" * 30, "zz"]

    async def send_all(emu: Emulator, impl: str) -> list[tuple[int, bytes]]:
        ctx = make_ssl_context(ca_file=emu.ca_file)
        pool = H2Pool(emu.apns_url, ssl_context=ctx, implementation=impl)
        answers = []
        try:
            for round_ in range(3):
                for device in devices:
                    headers = [("apns-topic", SAMPLE_TOPIC), ("apns-push-type", "alert"),
                               ("apns-collapse-id", f"c{round_}"), ("authorization", f"bearer {token}")]
                    body = b'{"aps":{"alert":"hi %d"}}' % round_
                    r = await pool.request("POST", f"/3/device/{device}", headers, body, index_path=False)
                    answers.append((r.status, r.body if r.status != 200 else b""))
                    if r.status == 200:
                        assert len(r.headers["apns-id"]) == 36
            many = await asyncio.gather(*(
                pool.request("POST", f"/3/device/a{i:063x}", [("apns-topic", SAMPLE_TOPIC),
                             ("apns-push-type", "alert"), ("authorization", f"bearer {token}")],
                             b'{"aps":{}}', index_path=False)
                for i in range(1, 301)
            ))
            answers.append((sum(r.status == 200 for r in many), b""))
        finally:
            await pool.close()
        return answers

    results = {}
    for impl in BOTH:
        with Emulator(tmp_path / impl) as emu:
            results[impl] = asyncio.run(send_all(emu, impl))
            assert emu.stats()["apns"].get("200") == 3 + 300
    assert results["lean"] == results["h2"]
    assert [s for s, _ in results["lean"][:4]] == [200, 410, 400, 400]
    assert results["lean"][-1] == (300, b"")


@pytest.mark.parametrize("impl", BOTH)
def test_keepalive_pings_a_silent_connection_and_drops_a_dead_one(pki: Pki, impl: str) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        await pool.request("POST", "/echo", [], b"a")
        async with asyncio.timeout(10):  # silent intervals: PINGs, each answered
            while server.pings_received < 2:
                await asyncio.sleep(0.02)
        assert (await pool.request("POST", "/echo", [], b"b")).body == b"b"
        assert pool.stats.connections_opened == 1
        server.frozen = True  # the peer vanishes without a word
        with pytest.raises(ConnectionLost, match="stopped answering PING"):
            await pool.request("POST", "/hang", [])
        server.frozen = False
        assert (await pool.request("POST", "/echo", [], b"c")).body == b"c"  # a new connection
        assert pool.stats.connections_opened == 2

    on_server(pki, impl, body, ping_interval=0.1)


@pytest.mark.parametrize("impl", BOTH)
def test_a_server_without_http2_is_no_http2(pki: Pki, impl: str) -> None:
    """An HTTP/1.1-only server (ALPN http/1.1): NoHttp2, so a caller can speak HTTP/1.1 instead."""

    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pki.cert, pki.key)
        ctx.set_alpn_protocols(["http/1.1"])
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        client_ctx = make_ssl_context(ca_file=pki.ca)
        client_ctx.set_alpn_protocols(["h2", "http/1.1"])
        pool = H2Pool(f"https://127.0.0.1:{port}", ssl_context=client_ctx, implementation=impl)
        try:
            with pytest.raises(NoHttp2, match="did not negotiate HTTP/2"):
                await pool.request("GET", "/", [])
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
