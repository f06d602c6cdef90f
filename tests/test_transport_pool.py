"""H2Pool against tests/h2_test_server.py over real TLS on 127.0.0.1, on both HTTP/2 clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from h2.errors import ErrorCodes
from h2_test_server import H2TestServer, Pki, make_test_pki

from pushctl.errors import ConfigError
from pushctl.transport import ConnectionLost, H2Pool, H2Response, RequestTimeout, make_ssl_context

T = TypeVar("T")


@pytest.fixture(autouse=True, params=["lean", "h2"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both HTTP/2 clients: the lean one and the reference on h2."""
    monkeypatch.setenv("PUSHCTL_HTTP2", request.param)
    return str(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def with_server(
    pki: Pki,
    body: Callable[[H2TestServer, H2Pool], Awaitable[T]],
    *,
    max_streams: int = 100,
    **pool_kw: float,
) -> T:
    async def main() -> T:
        async with H2TestServer(pki, max_streams=max_streams) as server:
            pool = H2Pool(server.url, ssl_context=make_ssl_context(ca_file=pki.ca), **pool_kw)  # type: ignore[arg-type]
            try:
                return await body(server, pool)
            finally:
                await pool.close()
                assert server.protocol_errors == []

    return run(main())


def req(pool: H2Pool, rid: str | int, path: str = "/echo", body: bytes = b"") -> Awaitable[H2Response]:
    return pool.request("POST", path, [("X-Req-Id", str(rid))], body)


def test_basic_request_response_and_headers(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        resp = await req(pool, "a1", body=b'{"aps":{}}')
        assert resp.status == 200
        assert resp.body == b'{"aps":{}}'
        assert resp.headers["x-req-id"] == "a1"  # request header names were lowercased
        assert resp.headers["x-method"] == "POST"
        assert ":status" not in resp.headers
        empty = await pool.request("GET", "/nothing", [])
        assert (empty.status, empty.body) == (200, b"")
        stats = pool.stats
        assert stats.connections_opened == 1  # kept alive between requests
        assert stats.responses == 2
        assert stats.max_streams_seen == 100

    with_server(pki, body)


def test_1000_concurrent_respect_stream_limit_and_open_more_connections(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        results = await asyncio.gather(*(req(pool, i, "/delay/20") for i in range(1000)))
        assert sorted(int(r.headers["x-req-id"]) for r in results) == list(range(1000))
        stats = pool.stats
        assert stats.peak_in_flight == 100
        assert server.peak_streams <= 100
        assert stats.connections_opened == 3  # capped by max_connections
        assert sum(server.processed.values()) == 1000

    with_server(pki, body, max_connections=3)


def test_settings_drop_to_one_and_climb_back_is_followed(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        first = [asyncio.ensure_future(req(pool, i, "/delay/30")) for i in range(200)]
        await asyncio.sleep(0.01)
        server.set_max_streams(1)
        await asyncio.gather(*first)
        before = server.peak_streams
        conn = next(iter(server.conns))
        conn.peak_streams = 0
        await asyncio.gather(*(req(pool, f"one-{i}", "/delay/2") for i in range(20)))
        assert conn.peak_streams == 1  # strictly one at a time once the drop was seen
        server.set_max_streams(100)
        await asyncio.sleep(0.01)
        await asyncio.gather(*(req(pool, f"back-{i}", "/delay/20") for i in range(300)))
        assert conn.peak_streams == 100
        assert before <= 100
        assert pool.stats.connections_opened == 1  # max_connections=1: waited instead

    with_server(pki, body, max_connections=1)


def test_goaway_mid_load_completes_every_request_exactly_once(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        tasks = [asyncio.ensure_future(req(pool, i, "/delay/300")) for i in range(400)]
        # GOAWAY while streams wait for their answers (polled: a loaded CI machine may take longer
        # than any fixed sleep to open the connection)
        async with asyncio.timeout(10):
            while not any(conn.pending for conn in server.conns):
                await asyncio.sleep(0.001)
        lasts = server.goaway(reason="Shutdown")
        assert lasts
        results = await asyncio.gather(*tasks)
        assert [r.headers["x-req-id"] for r in results] == [str(i) for i in range(400)]
        assert set(server.processed) == {str(i) for i in range(400)}
        assert set(server.processed.values()) == {1}  # nothing processed twice
        stats = pool.stats
        assert stats.goaways >= 1
        assert stats.last_goaway_reason == "Shutdown"
        assert stats.retried_goaway > 0
        assert stats.connections_opened >= 2
        assert stats.connection_losses == 0

    with_server(pki, body, max_connections=2)


def test_refused_stream_is_retried_transparently(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        resp = await req(pool, "r1", "/refuse-once")
        assert resp.status == 200
        assert pool.stats.retried_refused == 1
        assert server.processed["r1"] == 1

    with_server(pki, body)


def test_dropped_connection_fails_in_flight_then_recovers(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        await req(pool, "warm")
        hanging = [asyncio.ensure_future(req(pool, i, "/hang")) for i in range(5)]
        await asyncio.sleep(0.05)
        server.drop_all()
        outcomes = await asyncio.gather(*hanging, return_exceptions=True)
        assert all(type(o) is ConnectionLost for o in outcomes), outcomes
        resp = await req(pool, "after")
        assert resp.status == 200
        stats = pool.stats
        assert stats.connection_losses == 1
        assert stats.connections_opened == 2

    with_server(pki, body)


def test_large_bodies_wait_for_window_updates_both_ways(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        big = bytes(range(256)) * 4096 + b"tail"  # 1 MiB: 16x the server's 64 KiB window
        up, down = await asyncio.gather(req(pool, "up", body=big), req(pool, "down", "/big/3000000"))
        assert up.body == big
        assert len(down.body) == 3_000_000
        assert down.body[:512] == bytes(range(256)) * 2
        again = await req(pool, "small", body=b"x")  # the connection window was handed back
        assert again.body == b"x"

    with_server(pki, body)


def test_timeout_resets_stream_and_frees_slot(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        with pytest.raises(RequestTimeout) as info:
            await req(pool, "slow", "/hang")
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, ConnectionLost)
        resp = await req(pool, "next")  # max_streams=1: the slot came back
        assert resp.status == 200
        assert ErrorCodes.CANCEL in server.resets
        assert pool.stats.connections_opened == 1

    with_server(pki, body, max_streams=1, request_timeout=0.2)


def test_cancelled_request_resets_stream_and_frees_slot(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        hung = asyncio.ensure_future(req(pool, "hung", "/hang"))
        queued = asyncio.ensure_future(req(pool, "queued", "/hang"))  # waits for the one slot
        await asyncio.sleep(0.05)
        queued.cancel()
        hung.cancel()
        for task in (hung, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        resp = await req(pool, "next")
        assert resp.status == 200
        await asyncio.sleep(0.02)
        assert server.resets == [ErrorCodes.CANCEL]
        assert "queued" not in server.processed

    with_server(pki, body, max_streams=1, max_connections=1)


def test_closed_pool_refuses_requests(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        await req(pool, 1)
        await pool.close()
        with pytest.raises(ConnectionLost):
            await req(pool, 2)

    with_server(pki, body)


def test_pool_rejects_non_https_and_paths(tmp_path: Path) -> None:
    ctx = make_ssl_context()
    with pytest.raises(ValueError, match="https"):
        H2Pool("http://127.0.0.1:1", ssl_context=ctx)
    with pytest.raises(ValueError, match="origin"):
        H2Pool("https://127.0.0.1:1/3/device", ssl_context=ctx)
    assert H2Pool("https://api.push.apple.com", ssl_context=ctx).authority == "api.push.apple.com"
    assert H2Pool("https://[::1]:2197", ssl_context=ctx).authority == "[::1]:2197"


def test_unknown_http2_client_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHCTL_HTTP2", "nghttp2")
    with pytest.raises(ConfigError, match="unknown HTTP/2 client 'nghttp2'") as info:
        H2Pool("https://127.0.0.1:1", ssl_context=make_ssl_context())
    assert info.value.field == "PUSHCTL_HTTP2"


def test_requests_spread_over_connections_so_a_drop_loses_fewer(pki: Pki) -> None:
    """200 in flight with room for all on one connection still go over four: one lost connection
    takes ~50 requests along, not 200."""

    async def body(server: H2TestServer, pool: H2Pool) -> None:
        # Answers take 1 s: none comes back before every connection is open, whatever the client's speed.
        results = await asyncio.gather(*(req(pool, i, "/delay/1000") for i in range(200)))
        assert len(results) == 200
        stats = pool.stats
        assert stats.connections_opened == 4
        assert stats.peak_in_flight <= 64  # the spread limit while connections may be added...
        assert server.peak_streams <= 64

    with_server(pki, body, max_streams=1000, max_connections=4)


def test_without_spreading_one_connection_takes_all(pki: Pki) -> None:
    async def body(server: H2TestServer, pool: H2Pool) -> None:
        await asyncio.gather(*(req(pool, i, "/delay/50") for i in range(200)))
        assert pool.stats.connections_opened == 1 and pool.stats.peak_in_flight == 200

    with_server(pki, body, max_streams=1000, max_connections=4, spread_streams=0)
