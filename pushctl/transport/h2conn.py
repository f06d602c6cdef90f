"""One HTTP/2 client connection: an :class:`asyncio.Protocol` driving an ``h2`` state machine.

The pool (:mod:`pushctl.transport.h2pool`) owns the slot accounting: it reserves a stream slot
(``in_flight += 1``) before calling :meth:`H2Connection.send_request`, which always gives the
slot back. Everything here runs on the event loop thread; nothing blocks.

Speed notes (this is the hot path of every push):

* one Protocol, no StreamReader/Writer; events are dispatched by exact type;
* outbound bytes are flushed once per event-loop turn (``call_soon``), so the HEADERS of every
  request issued in the same turn, and the WINDOW_UPDATEs for received data, share one TLS write;
* outbound header validation/normalisation is off: the pool builds well-formed lowercase
  headers itself, and leaving ``authorization`` indexable lets HPACK send a bearer JWT once per
  connection instead of on every request (no attacker-controlled data shares the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from h2.connection import ConnectionState
from h2.errors import ErrorCodes

from pushctl.errors import ProviderUnavailable

# Responses from push services are small, but a server may stream a large one: advertise
# generous receive windows so a response never waits a round trip for WINDOW_UPDATE.
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 1 << 24
# A server that sends no SETTINGS_MAX_CONCURRENT_STREAMS means "unlimited"; keep it finite.
_STREAMS_CAP = 1 << 16
# How often h2's own O(streams) open-stream count runs (see _ClientH2).
_SWEEP_EVERY = 256

Header = tuple[bytes, bytes]


@dataclass(slots=True)
class H2Response:
    """A complete HTTP/2 response; header names are lowercase, pseudo-headers removed."""

    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionLost(Exception):
    """The connection died with the request possibly processed; safe to retry (collapse ids make a
    repeat invisible)."""


class RequestTimeout(ConnectionLost, TimeoutError):
    """No complete response within the request timeout; the stream was reset (CANCEL)."""


class ConnectError(ProviderUnavailable):
    """Could not connect / TLS handshake failed (the message says which; it never holds secrets)."""


class NoHttp2(ConnectError):
    """The server did not negotiate HTTP/2 (ALPN): it may speak HTTP/1.1 only (some Web Push services)."""


class StreamRefused(Exception):
    """The server did not process the stream (REFUSED_STREAM, or above a GOAWAY's last stream id).

    Internal: the pool retries these transparently on another connection.
    """

    def __init__(self, message: str, *, goaway: bool) -> None:
        super().__init__(message)
        self.goaway = goaway


class PoolConnection(Protocol):
    """What the pool needs of a connection: :class:`H2Connection` here (on ``h2``) or
    :class:`~pushctl.transport.h2lean.LeanH2Connection` (the lean send path)."""

    ready: asyncio.Future[None]
    gone: asyncio.Future[None]
    in_flight: int
    max_streams: int
    accepting: bool
    closed: bool
    goaway_reason: str | None

    async def send_request(self, headers: list[Header], body: bytes, timeout: float) -> H2Response: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class ConnectionListener(Protocol):
    """What a connection tells its pool."""

    def capacity_changed(self, conn: PoolConnection) -> None: ...
    def goaway_received(self, conn: PoolConnection, reason: str | None) -> None: ...
    def connection_closed(self, conn: PoolConnection, *, lost: bool) -> None: ...


class _ClientH2(h2.connection.H2Connection):
    """h2's connection with two client-side changes.

    * h2 moves to CLOSED on receiving GOAWAY and then rejects every later frame, which would kill
      the streams the server promised to finish (id <= last_stream_id). Stay open to receive them;
      :class:`H2Connection` itself never opens a stream after a GOAWAY.
    * h2 counts open streams (to enforce the server's limit) by scanning every stream it knows, on
      every new stream: O(streams in flight) per request, the largest single cost of a request
      with hundreds in flight. The owning connection knows the count (``open_streams``); the full
      scan runs only every ``_SWEEP_EVERY`` streams, which is also when h2 forgets closed streams.
    """

    def __init__(self, config: h2.config.H2Configuration, open_streams: Callable[[], int]) -> None:
        super().__init__(config=config)
        self.encoder = _LiteralEncoder()
        self._count_open = open_streams
        self._until_sweep = _SWEEP_EVERY

    @property
    def open_outbound_streams(self) -> int:
        self._until_sweep -= 1
        if self._until_sweep > 0:
            return self._count_open()
        self._until_sweep = _SWEEP_EVERY
        return super().open_outbound_streams

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        state = self.state_machine.state
        result = cast(tuple[list[Any], list[Any]], super()._receive_goaway_frame(frame))
        if state == ConnectionState.CLIENT_OPEN:
            self.state_machine.state = state
        return result


class _LiteralEncoder(hpack.Encoder):
    """HPACK without Huffman coding of header values.

    Repeated headers (the JWT, topic, push type) go into the dynamic table once and are sent as
    one-byte indexes after that, so Huffman only ever shrinks the values that change on every
    request: APNs' ``:path`` with the device token. Huffman-coding that ~75-byte literal in pure
    Python costs more CPU than the ~25 bytes it saves are worth.
    """

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return bytes(super().encode(headers, huffman=False))


class _Stream:
    __slots__ = ("body", "fut", "headers", "offset", "pending", "status")

    def __init__(self, fut: asyncio.Future[H2Response]) -> None:
        self.fut = fut
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.pending = b""  # request body bytes still waiting for flow-control window
        self.offset = 0


_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    # Response headers are only read for :status and a few names looked up by key; h2's per-header
    # validation generators cost ~10% of a request and protect nothing here.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)


class H2Connection(asyncio.Protocol):
    """One client connection. Create it with :func:`open_connection`."""

    def __init__(self, listener: ConnectionListener, *, authority: str, ping_interval: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._authority = authority
        self._streams: dict[int, _Stream] = {}
        self._h2 = _ClientH2(_CONFIG, self._open_count)
        self._transport: asyncio.Transport | None = None
        self._blocked: set[int] = set()  # streams with request body waiting for window
        self._flush_scheduled = False
        self._ping_interval = ping_interval
        self._ping_handle: asyncio.TimerHandle | None = None
        self._rx_since_tick = False
        self._ping_outstanding = False
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.gone: asyncio.Future[None] = self._loop.create_future()
        """Resolved once the transport is closed (so a pool can wait for its sockets)."""
        self.in_flight = 0  # reserved + open streams; maintained with the pool
        self.max_streams = 0  # the server's SETTINGS_MAX_CONCURRENT_STREAMS (0 until it arrives)
        self.accepting = False  # False before SETTINGS, after GOAWAY and once closed
        self.closed = False
        self._closing = False  # we closed it on purpose (drained, pool closed)
        self._aborted = False  # we dropped it because of an error
        self.goaway_reason: str | None = None

    def _open_count(self) -> int:
        return len(self._streams)

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn != "h2":
            self._fail_ready(NoHttp2(f"{self._authority} did not negotiate HTTP/2 (ALPN: {alpn})"))
            self._transport.close()
            return
        h2c = self._h2
        h2c.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
            },
        )
        h2c.initiate_connection()
        h2c.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self._transport.write(h2c.data_to_send())
        if self._ping_interval:
            self._ping_handle = self._loop.call_later(self._ping_interval, self._keepalive_tick)

    def data_received(self, data: bytes) -> None:
        self._rx_since_tick = True
        h2c = self._h2
        try:
            events = h2c.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._abort(ConnectionLost(f"HTTP/2 protocol error from {self._authority}: {exc}"))
            return
        streams = self._streams
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                st = streams.get(ev.stream_id)
                if st is not None:
                    hdrs = st.headers
                    for name, value in ev.headers:
                        if name == b":status":
                            st.status = int(value)
                        elif name[:1] != b":":
                            hdrs[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
            elif isinstance(ev, h2.events.DataReceived):
                if ev.flow_controlled_length:
                    h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                st = streams.get(ev.stream_id)
                if st is not None:
                    st.body.append(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                self._stream_ended(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self._stream_reset(ev.stream_id, ev.error_code)
            elif isinstance(ev, h2.events.WindowUpdated):
                self._resume_bodies(ev.stream_id)
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self._settings_changed()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._goaway(ev.last_stream_id or 0, ev.additional_data)
            elif isinstance(ev, h2.events.PingAckReceived):
                self._ping_outstanding = False
        self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.gone.done():
            self.gone.set_result(None)
        self.accepting = False
        self._transport = None
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        lost = self._aborted or bool(self._streams) or not (self._closing or self.goaway_reason)
        error = ConnectionLost(f"connection to {self._authority} lost" + (f": {exc}" if exc else ""))
        self._fail_ready(ConnectError(f"connection to {self._authority} closed during HTTP/2 setup"))
        streams, self._streams = self._streams, {}
        for st in streams.values():
            if not st.fut.done():
                st.fut.set_exception(error)
        self._listener.connection_closed(self, lost=lost)

    # ---- requests -----------------------------------------------------------------------------

    async def send_request(self, headers: list[Header], body: bytes, timeout: float) -> H2Response:
        """Send one request on a slot the pool reserved; always releases that slot.

        Raises :class:`StreamRefused` when the stream cannot be (or was not) processed here,
        :class:`ConnectionLost` / :class:`RequestTimeout` when it may have been.
        """
        try:
            if not self.accepting:
                raise StreamRefused("connection stopped accepting streams", goaway=True)
            h2c = self._h2
            try:
                sid: int = h2c.get_next_available_stream_id()
                h2c.send_headers(sid, headers, end_stream=not body)
            except (h2.exceptions.TooManyStreamsError, h2.exceptions.NoAvailableStreamIDError) as exc:
                # SETTINGS dropped between reservation and now, or stream ids ran out.
                if isinstance(exc, h2.exceptions.NoAvailableStreamIDError):
                    self._stop_accepting()
                raise StreamRefused(str(exc) or type(exc).__name__, goaway=False) from None
            fut: asyncio.Future[H2Response] = self._loop.create_future()
            st = _Stream(fut)
            self._streams[sid] = st
            if body:
                st.pending = body
                self._send_body(sid, st)
            self._schedule_flush()
            timer = self._loop.call_later(timeout, self._timed_out, sid, timeout)
            try:
                return await fut
            except asyncio.CancelledError:
                self._reset(sid)
                raise
            finally:
                timer.cancel()
        finally:
            self.in_flight -= 1
            self._listener.capacity_changed(self)

    def close(self) -> None:
        """Stop taking streams and close now; in-flight requests fail with ConnectionLost."""
        self._stop_accepting()
        self._closing = True
        if self._transport is not None:
            try:
                self._h2.close_connection()
                self._transport.write(self._h2.data_to_send())
            except h2.exceptions.ProtocolError:
                pass
            self._transport.close()

    def abort(self) -> None:
        """Drop the socket at once (a peer that does not finish the TLS close in time)."""
        if self._transport is not None:
            self._transport.abort()

    def _send_body(self, sid: int, st: _Stream) -> None:
        h2c = self._h2
        data = st.pending
        size = len(data)
        off = st.offset
        while off < size:
            n = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size, size - off)
            if n <= 0:
                self._blocked.add(sid)
                break
            h2c.send_data(sid, data[off : off + n], end_stream=off + n == size)
            off += n
        st.offset = off
        if off == size:
            st.pending = b""
            self._blocked.discard(sid)

    def _resume_bodies(self, stream_id: int) -> None:
        if not self._blocked:
            return
        ids = list(self._blocked) if stream_id == 0 else [stream_id] if stream_id in self._blocked else []
        for sid in ids:
            st = self._streams.get(sid)
            if st is None:
                self._blocked.discard(sid)
            else:
                self._send_body(sid, st)

    def _stream_ended(self, sid: int) -> None:
        st = self._streams.pop(sid, None)
        if st is None:
            return
        if st.pending:
            # The server answered before reading the whole body: stop sending so the stream closes.
            self._blocked.discard(sid)
            self._h2.reset_stream(sid, ErrorCodes.NO_ERROR)
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        if not st.fut.done():
            st.fut.set_result(H2Response(st.status, st.headers, body))
        self._maybe_finish_drain()

    def _stream_reset(self, sid: int, code: int) -> None:
        st = self._streams.pop(sid, None)
        self._blocked.discard(sid)
        if st is not None and not st.fut.done():
            if code == ErrorCodes.REFUSED_STREAM:
                st.fut.set_exception(StreamRefused("stream refused by server", goaway=False))
            else:
                name = getattr(code, "name", str(code))
                st.fut.set_exception(ConnectionLost(f"stream reset by {self._authority} ({name})"))
        self._maybe_finish_drain()

    def _timed_out(self, sid: int, timeout: float) -> None:
        st = self._streams.get(sid)
        if st is not None and not st.fut.done():
            st.fut.set_exception(RequestTimeout(f"no response from {self._authority} within {timeout:g}s"))
        self._reset(sid)

    def _reset(self, sid: int) -> None:
        """Forget a stream we no longer want and tell the server (RST_STREAM CANCEL)."""
        if self._streams.pop(sid, None) is None:
            return
        self._blocked.discard(sid)
        if self._transport is not None:
            with contextlib.suppress(h2.exceptions.H2Error):  # already closed on the h2 side
                self._h2.reset_stream(sid, ErrorCodes.CANCEL)
            self._schedule_flush()
        self._maybe_finish_drain()

    # ---- connection-level events --------------------------------------------------------------

    def _settings_changed(self) -> None:
        self.max_streams = min(int(self._h2.remote_settings.max_concurrent_streams), _STREAMS_CAP)
        if not self.ready.done():
            self.accepting = True
            self.ready.set_result(None)
        elif self.accepting:
            self._listener.capacity_changed(self)

    def _goaway(self, last_stream_id: int, additional_data: bytes | None) -> None:
        reason = "GOAWAY"
        if additional_data:
            try:
                reason = str(json.loads(additional_data).get("reason", reason))
            except (ValueError, AttributeError):
                reason = additional_data[:200].decode("utf-8", "replace")
        self.goaway_reason = reason
        self.accepting = False
        self._fail_ready(ConnectError(f"{self._authority} sent GOAWAY during setup ({reason})"))
        for sid in [s for s in self._streams if s > last_stream_id]:
            st = self._streams.pop(sid)
            self._blocked.discard(sid)
            if not st.fut.done():
                st.fut.set_exception(StreamRefused(f"not processed before GOAWAY ({reason})", goaway=True))
        self._listener.goaway_received(self, reason)
        self._maybe_finish_drain()

    def _stop_accepting(self) -> None:
        self.accepting = False

    def _maybe_finish_drain(self) -> None:
        if not self.accepting and not self._streams and self.ready.done() and self._transport is not None:
            self.close()

    def _abort(self, error: Exception) -> None:
        self._aborted = True
        self.accepting = False
        streams, self._streams = self._streams, {}
        for st in streams.values():
            if not st.fut.done():
                st.fut.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def _fail_ready(self, error: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved here: a later awaiter still sees it

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _keepalive_tick(self) -> None:
        """Ping a connection that has been silent for a whole interval; drop it if the previous
        ping went unanswered, so a dead NAT mapping is found before a request is sent on it."""
        if self.closed or self._ping_interval is None:
            return
        if not self._rx_since_tick:
            if self._ping_outstanding:
                self._abort(ConnectionLost(f"{self._authority} stopped answering PING"))
                return
            self._ping_outstanding = True
            self._h2.ping(b"pushctl!")
            self._schedule_flush()
        self._rx_since_tick = False
        self._ping_handle = self._loop.call_later(self._ping_interval, self._keepalive_tick)


async def open_connection(
    listener: ConnectionListener,
    host: str,
    port: int,
    *,
    authority: str,
    ssl_context: ssl.SSLContext,
    connect_timeout: float,
    ping_interval: float | None,
) -> H2Connection:
    """Connect, handshake TLS (ALPN h2) and wait for the server's first SETTINGS."""
    conn = H2Connection(listener, authority=authority, ping_interval=ping_interval)
    return await connect(conn, host, port, authority=authority, ssl_context=ssl_context,
                         connect_timeout=connect_timeout)


ConnT = TypeVar("ConnT", bound=PoolConnection)


async def connect(
    conn: ConnT, host: str, port: int, *, authority: str, ssl_context: ssl.SSLContext, connect_timeout: float
) -> ConnT:
    """Open ``conn``'s socket (TLS, ALPN h2) and wait for its ``ready`` (the server's SETTINGS);
    every failure is a :class:`ConnectError` that says what went wrong."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout):
            await loop.create_connection(lambda: conn, host, port,  # type: ignore[type-var]
                                          ssl=ssl_context, server_hostname=host)
            await conn.ready
    except TimeoutError:
        conn.close()
        raise ConnectError(f"timed out connecting to {authority} after {connect_timeout:g}s") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(
            f"TLS certificate verification failed for {authority}: {exc.verify_message}",
            hint="pass the server's CA with ca_file if it is a private CA",
        ) from None
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake with {authority} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ConnectError(f"could not connect to {authority}: {exc.strerror or exc}") from None
    except BaseException:
        # Cancelled (the pool closed mid-connect) or failed after the socket was made: drop it
        # now, or the transport is left for the garbage collector once the loop has ended.
        conn.abort()
        raise
    return conn
