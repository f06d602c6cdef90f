"""The emulator's listening ports: TLS, then HTTP/2 or HTTP/1.1 as ALPN chooses, one handler per port.

A service is a synchronous function ``Request -> Response`` (:mod:`.http_base`): everything the
emulators check is CPU-only, so no coroutine or task is created per request. The same handler
serves both HTTP versions, so a port that speaks both (FCM, OAuth, the admin endpoints — Google's
front ends offer ALPN ``h2`` and ``http/1.1``) gives identical validation, answers, injected faults
and inbox records on either. APNs is HTTP/2-only, like Apple's servers: its port offers only
``h2``, and a client that speaks HTTP/1.1 to it reads an HTTP/2 SETTINGS frame where it expects a
status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, cast

from pushctl.emulator.http1 import H1Connection
from pushctl.emulator.http2 import GOAWAY_LINGER, H2_PREFACE, H2Connection
from pushctl.emulator.http_base import (
    JSON_HEADERS,
    Connection,
    Handler,
    Request,
    Response,
    ServerConfig,
    json_response,
)

__all__ = [
    "GOAWAY_LINGER",
    "JSON_HEADERS",
    "Connection",
    "H1Connection",
    "H2Connection",
    "H2Server",
    "Handler",
    "Request",
    "Response",
    "ServerConfig",
    "json_response",
]


class _Negotiator(asyncio.Protocol):
    """The first protocol of every connection: picks HTTP/2 or HTTP/1.1, then hands the transport over.

    asyncio calls ``connection_made`` once the TLS handshake is done, so ALPN is known; a client
    that offered no ALPN at all is judged by its first bytes (the HTTP/2 preface, or a request line).
    Handing over with ``transport.set_protocol`` costs nothing per request afterwards.
    """

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sslobj = transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
        if alpn == "h2" or not self.server.http1:
            self._hand_over(H2Connection)
        elif alpn == "http/1.1":
            self._hand_over(H1Connection)
        # else: no ALPN on a port that speaks both; data_received decides.

    def data_received(self, data: bytes) -> None:
        self._seen += data
        n = min(len(self._seen), len(H2_PREFACE))
        if self._seen[:n] == H2_PREFACE[:n] and n < len(H2_PREFACE):
            return  # could still be the HTTP/2 preface
        cls = H2Connection if self._seen.startswith(H2_PREFACE) else H1Connection
        self._hand_over(cls).data_received(self._seen)

    def _hand_over(self, cls: type[Connection]) -> Connection:
        assert self.transport is not None
        conn = cls(self.server)
        self.transport.set_protocol(conn)
        conn.connection_made(self.transport)
        return conn


class H2Server:
    """One listening TLS port with one handler: HTTP/2, and HTTP/1.1 too when ``http1`` is set.

    The ALPN list of ``ssl_context`` is set here (``h2``, plus ``http/1.1`` with ``http1``), so
    what the port offers and what it speaks cannot disagree.
    """

    def __init__(
        self,
        handler: Handler,
        ssl_context: ssl.SSLContext,
        config: ServerConfig,
        *,
        host: str = "127.0.0.1",
        http1: bool = False,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.config = config
        self.host = host
        self.http1 = http1
        ssl_context.set_alpn_protocols(["h2", "http/1.1"] if http1 else ["h2"])
        self.port = 0
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0, *, reuse_port: bool = False) -> int:
        """Listen on ``port`` (0 = a free one) and return the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Negotiator(self), self.host, port, ssl=self.ssl_context, reuse_port=reuse_port or None
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def sockets(self) -> list[Any]:
        """The listening sockets (socket-like objects; empty before :meth:`start`)."""
        return list(self._server.sockets) if self._server is not None else []

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
