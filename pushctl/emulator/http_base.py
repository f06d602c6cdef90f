"""What every emulated service and both HTTP versions share: requests, responses, connection basics.

A service is a synchronous function ``Request -> Response`` and never knows whether the request
came over HTTP/2 (:mod:`.http2`) or HTTP/1.1 (:mod:`.http1`): the same handler answers both, so
validation, answers, fault injection and the inbox are identical on either. ``server.py``
re-exports these names; services import them from there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast


@dataclass(slots=True)
class Request:
    """One complete request (an HTTP/2 stream or one HTTP/1.1 request/response exchange)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    """Regular headers in arrival order, names lower-case (repeats kept, so duplicates can be
    detected); neither HTTP/2 pseudo-headers nor HTTP/1.1 hop-by-hop headers (``host``,
    ``connection``, ``transfer-encoding``...)."""
    body: bytes
    stream_id: int
    """The HTTP/2 stream id, or the request's number on its HTTP/1.1 connection (1, 2, ...)."""
    conn: Connection


@dataclass(slots=True)
class Response:
    """What to answer; ``drop`` aborts the connection instead of answering."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    drop: bool = False


Handler = Callable[[Request], Response]

JSON_HEADERS = [("content-type", "application/json; charset=utf-8")]


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response (compact encoding, like the real services)."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, JSON_HEADERS + (headers or []))


@dataclass
class ServerConfig:
    """Connection-level behaviour of one port."""

    max_concurrent_streams: int = 1000
    initial_streams: int | None = None
    """Streams advertised at connection start (e.g. 1 until authenticated); default the maximum."""
    goaway_after: int = 0
    """HTTP/2: GOAWAY after this many streams. HTTP/1.1: ``connection: close`` on that response."""
    drop_after: int = 0
    idle_timeout: float = 0.0


class Port(Protocol):
    """What a connection needs from the listening port that accepted it."""

    handler: Handler
    config: ServerConfig
    connections: set[Connection]


class Connection(asyncio.Protocol):
    """One client connection, whichever HTTP version it speaks; services see it as ``Request.conn``.

    ``data`` holds per-connection state for services (the JWT key id in use, a parsed client
    certificate...). The stream-limit methods only mean something on HTTP/2.
    """

    protocol = ""
    """``h2`` or ``http/1.1``."""

    def __init__(self, server: Port) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer_cert: bytes | None = None
        self.data: dict[str, Any] = {}
        self._closed = False
        self._idle_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast, not an isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            self.peer_cert = sslobj.getpeercert(binary_form=True)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        if self._idle_handle is not None:
            self._idle_handle.cancel()

    def set_max_concurrent_streams(self, value: int) -> None:
        """Advertise a new SETTINGS_MAX_CONCURRENT_STREAMS (HTTP/2 only; a no-op on HTTP/1.1)."""

    @property
    def max_concurrent_streams(self) -> int:
        """The limit most recently advertised (HTTP/1.1: one request at a time)."""
        return 1

    def abort(self) -> None:
        """Drop the connection abruptly (no GOAWAY, no answer), like a network failure."""
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection after writing what is buffered."""
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        timeout = self.server.config.idle_timeout
        if timeout <= 0:
            return
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = asyncio.get_running_loop().call_later(timeout, self._idle)

    def _idle(self) -> None:
        """Called when ``idle_timeout`` passed without a request."""
        self.close()
