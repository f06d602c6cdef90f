"""A pool of HTTP/2 client connections to one origin, following the server's stream limits.

Requests wait in one FIFO queue for a free stream on any open connection. A connection's
capacity is the server's live ``SETTINGS_MAX_CONCURRENT_STREAMS`` (APNs starts some connections at
1 and raises it later, and drops it again after a rejected push); when every connection is full and
fewer than ``max_connections`` are open, one more is opened — one at a time, because a new
connection's capacity is unknown until its first SETTINGS arrive. Until ``max_connections`` are
open, a connection carries at most ``spread_streams``, and requests go to the least loaded
connection: one that drops takes every request in flight on it along, so 500 requests in flight
go over four connections, not one.

Retries the caller never sees: streams the server provably did not process (REFUSED_STREAM, or
above a GOAWAY's ``last_stream_id``) are re-queued. Everything that may have been processed
surfaces as :class:`ConnectionLost` so the caller decides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from hpack import NeverIndexedHeaderTuple

from pushctl.errors import ConfigError
from pushctl.transport.h2conn import (
    ConnectError,
    ConnectionLost,
    H2Response,
    PoolConnection,
    StreamRefused,
    open_connection,
)
from pushctl.transport.h2lean import open_lean_connection

IMPLEMENTATIONS = ("lean", "h2")
"""HTTP/2 clients the pool can run on: ``lean`` (:mod:`pushctl.transport.h2lean`, the default)
or ``h2`` (:mod:`pushctl.transport.h2conn`, the reference on the ``h2`` library)."""
IMPLEMENTATION_ENV = "PUSHCTL_HTTP2"

# A request refused this many times in a row is not going to get through; say so.
_MAX_UNPROCESSED_RETRIES = 10


@dataclass(slots=True)
class PoolStats:
    """Counters for diagnostics and tests (a snapshot; see :attr:`H2Pool.stats`)."""

    responses: int = 0
    connections_opened: int = 0
    connect_failures: int = 0
    goaways: int = 0
    last_goaway_reason: str | None = None
    connection_losses: int = 0
    retried_refused: int = 0
    retried_goaway: int = 0
    max_streams_seen: int = 0
    peak_in_flight: int = 0  # most streams ever in flight on one connection


class H2Pool:
    """HTTP/2 connections to one ``https://host[:port]`` origin, shared by concurrent requests."""

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        ping_interval: float | None = 60.0,
        implementation: str | None = None,
        spread_streams: int | None = 64,
    ) -> None:
        implementation = implementation or os.environ.get(IMPLEMENTATION_ENV) or "lean"
        if implementation not in IMPLEMENTATIONS:
            raise ConfigError(
                f"unknown HTTP/2 client {implementation!r}", field=IMPLEMENTATION_ENV,
                hint=f"use {' or '.join(IMPLEMENTATIONS)}, or unset it for the default",
            )
        self.implementation = implementation
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"expected an https://host[:port] URL, got {url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"the pool URL is an origin only (no path or query): {url!r}")
        if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise ValueError("TLS certificate and host name verification cannot be turned off")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = parts.hostname
        self._port = parts.port or 443
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = host if self._port == 443 else f"{host}:{self._port}"
        self._authority_b = self._authority.encode("ascii")
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._spread = spread_streams or 1 << 31
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._ping_interval = ping_interval
        self._conns: list[PoolConnection] = []  # open and accepting new streams
        self._all: set[PoolConnection] = set()  # also the ones draining after GOAWAY
        self._waiters: deque[asyncio.Future[PoolConnection]] = deque()
        self._connecting: asyncio.Task[None] | None = None
        self._stats = PoolStats()
        self._closed = False

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        return dataclasses.replace(self._stats)

    @property
    def authority(self) -> str:
        """The ``:authority`` sent with every request (``host`` or ``host:port``)."""
        return self._authority

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes = b"",
        *,
        index_path: bool = True,
    ) -> H2Response:
        """Send one request and return the whole response.

        ``headers`` are regular (non-pseudo) headers; names are lowercased. ``index_path=False``
        is for paths that never repeat (APNs' ``/3/device/<token>``): HPACK then sends the path as
        a literal instead of adding it to the dynamic table, where each new path would evict the
        repeated headers (the JWT among them) and make them be re-sent and re-encoded.
        Raises :class:`ConnectError` when no connection can be made, :class:`ConnectionLost`
        (including :class:`RequestTimeout`) when the request may or may not have been processed.
        """
        path_b = path.encode("ascii")
        hdrs: list[tuple[bytes, bytes]] = [
            (b":method", method.encode("ascii")),
            (b":scheme", b"https"),
            (b":authority", self._authority_b),
            (b":path", path_b) if index_path else NeverIndexedHeaderTuple(b":path", path_b),
        ]
        hdrs += [(name.lower().encode("ascii"), value.encode()) for name, value in headers]
        stats = self._stats
        for _ in range(_MAX_UNPROCESSED_RETRIES):
            conn = self._reserve_now()
            if conn is None:
                conn = await self._reserve_wait()
            try:
                response = await conn.send_request(hdrs, body, self._request_timeout)
            except StreamRefused as exc:
                if exc.goaway:
                    stats.retried_goaway += 1
                else:
                    stats.retried_refused += 1
                continue
            stats.responses += 1
            return response
        raise ConnectionLost(f"{self._authority} refused the request {_MAX_UNPROCESSED_RETRIES} times")

    async def close(self) -> None:
        """Close every connection; requests still waiting or in flight fail."""
        self._closed = True
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.cancel()
            # Let it finish cancelling: open_connection drops a half-made socket on the way out.
            await asyncio.wait([connecting])
        error = ConnectionLost("the connection pool was closed")
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        conns = list(self._all)
        for conn in conns:
            conn.close()
        # Wait for the sockets to close (TLS close_notify takes a round trip), so none is left
        # for the garbage collector when the event loop ends; abort the stragglers.
        pending = [conn.gone for conn in conns if not conn.gone.done()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=1.0)
            for conn in conns:
                if conn.gone in late:
                    conn.abort()
            await asyncio.sleep(0)

    # ---- slot reservation ---------------------------------------------------------------------

    def _reserve_now(self) -> PoolConnection | None:
        if self._waiters:  # FIFO: nobody overtakes a waiting request
            return None
        conn = self._least_loaded()
        if conn is None:
            return None
        conn.in_flight += 1
        if conn.in_flight > self._stats.peak_in_flight:
            self._stats.peak_in_flight = conn.in_flight
        return conn

    def _least_loaded(self) -> PoolConnection | None:
        """The open connection with the most room left, if it has room.

        A connection carries at most ``spread_streams`` while another may still be opened, and
        requests go to the least loaded one: a connection that drops takes every request in flight
        on it along, so 500 requests in flight go over four connections, not one. A connection
        that failed stays listed until its socket is closed (``accepting`` is then False).
        """
        conns = self._conns
        if len(conns) == 1:  # the usual case until the load grows: no search
            conn = conns[0]
            return conn if conn.in_flight < self._room(conn) and conn.accepting else None
        best: PoolConnection | None = None
        best_room = 0
        for conn in conns:
            room = self._room(conn) - conn.in_flight
            if room > best_room and conn.accepting:
                best, best_room = conn, room
        return best

    def _room(self, conn: PoolConnection) -> int:
        if len(self._conns) < self._max_connections:
            return min(conn.max_streams, self._spread)
        return conn.max_streams

    async def _reserve_wait(self) -> PoolConnection:
        if self._closed:
            raise ConnectionLost("the connection pool was closed")
        fut: asyncio.Future[PoolConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._dispatch()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Cancelled after a slot was handed over: give it to the next waiter.
                fut.result().in_flight -= 1
                self._dispatch()
            raise

    def _dispatch(self) -> None:
        """Hand free slots to waiters in order; open a connection if they still wait."""
        waiters = self._waiters
        stats = self._stats
        while waiters:
            fut = waiters[0]
            if fut.done():  # cancelled while waiting
                waiters.popleft()
                continue
            conn = self._least_loaded()
            if conn is None:
                break
            waiters.popleft()
            conn.in_flight += 1
            if conn.in_flight > stats.peak_in_flight:
                stats.peak_in_flight = conn.in_flight
            fut.set_result(conn)
        if (
            waiters
            and self._connecting is None
            and not self._closed
            and len(self._conns) < self._max_connections
        ):
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            opener = open_lean_connection if self.implementation == "lean" else open_connection
            conn: PoolConnection = await opener(
                self,
                self._host,
                self._port,
                authority=self._authority,
                ssl_context=self._ssl,
                connect_timeout=self._connect_timeout,
                ping_interval=self._ping_interval,
            )
        except Exception as exc:
            self._connecting = None
            self._stats.connect_failures += 1
            error = exc if isinstance(exc, ConnectError) else ConnectError(f"{self._authority}: {exc}")
            if not self._conns:  # nothing else could serve the waiters
                while self._waiters:
                    fut = self._waiters.popleft()
                    if not fut.done():
                        fut.set_exception(error)
            return
        self._connecting = None
        self._stats.connections_opened += 1
        if self._closed:
            conn.close()
            return
        self._conns.append(conn)
        self._all.add(conn)
        self._stats.max_streams_seen = max(self._stats.max_streams_seen, conn.max_streams)
        self._dispatch()

    # ---- ConnectionListener -------------------------------------------------------------------

    def capacity_changed(self, conn: PoolConnection) -> None:
        """A slot was freed or the server's stream limit changed."""
        if conn.max_streams > self._stats.max_streams_seen:
            self._stats.max_streams_seen = conn.max_streams
        if self._waiters:
            self._dispatch()

    def goaway_received(self, conn: PoolConnection, reason: str | None) -> None:
        """The connection drains and closes; new streams go elsewhere."""
        self._stats.goaways += 1
        self._stats.last_goaway_reason = reason
        self._forget(conn, keep_draining=True)

    def connection_closed(self, conn: PoolConnection, *, lost: bool) -> None:
        """The transport is gone; replace it on demand."""
        if lost:
            self._stats.connection_losses += 1
        self._forget(conn, keep_draining=False)

    def _forget(self, conn: PoolConnection, *, keep_draining: bool) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
        if not keep_draining:
            self._all.discard(conn)
        if self._waiters:
            self._dispatch()
