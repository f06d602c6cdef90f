"""The lean HTTP/2 client connection: the send path without a general-purpose state machine.

Same interface and behaviour as :class:`~pushctl.transport.h2conn.H2Connection` (which stays as
the reference, ``PUSHCTL_HTTP2=h2``), written for what a push sender does: open a connection,
follow the server's SETTINGS, send HEADERS (+ DATA) per request, read small answers. RFC 9113:

* preface + SETTINGS (push off, a 1 MiB stream window) and a 16 MiB connection window;
* the server's SETTINGS are followed (max concurrent streams, initial window, max frame size,
  header table size) and acknowledged;
* flow control both ways: DATA waits for the server's windows; what the server sends is given
  back with WINDOW_UPDATE once half a window is used;
* PING answered, and sent as keepalive on a silent connection;
* GOAWAY: streams above its last stream id were not processed and are refused (the pool retries
  them elsewhere), the ones below finish; RST_STREAM(REFUSED_STREAM) likewise; other resets and
  every protocol error end the request with :class:`ConnectionLost`;
* HEADERS + CONTINUATION on receive, and the HPACK state is kept for every block (also for
  streams no longer wanted); see :mod:`pushctl.transport.hpack_codec`.

Request timeouts are checked by one sweep timer per connection (every request on a connection
has the pool's timeout), not a timer per request.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
from typing import cast

from pushctl.transport import h2frames as f
from pushctl.transport.h2conn import (
    ConnectError,
    ConnectionListener,
    ConnectionLost,
    H2Response,
    Header,
    NoHttp2,
    RequestTimeout,
    StreamRefused,
    connect,
)
from pushctl.transport.hpack_codec import DEFAULT_TABLE_SIZE, HPACKError, RequestEncoder, ResponseDecoder

_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 1 << 24
_STREAMS_CAP = 1 << 16
_MAX_HEADER_BLOCK = 1 << 20
_LOCAL_SETTINGS = f.settings([(f.ENABLE_PUSH, 0), (f.INITIAL_WINDOW_SIZE, _STREAM_WINDOW)])


class _Stream:
    __slots__ = ("body", "deadline", "fut", "headers", "offset", "pending", "recv", "send_window", "status",
                 "timeout")

    def __init__(self, fut: asyncio.Future[H2Response], window: int, deadline: float, timeout: float) -> None:
        self.fut = fut
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.pending = b""  # request body bytes still waiting for flow-control window
        self.offset = 0
        self.send_window = window
        self.recv = 0  # bytes received since our last WINDOW_UPDATE for this stream
        self.deadline = deadline
        self.timeout = timeout


class LeanH2Connection(asyncio.Protocol):
    """One client connection. Create it with :func:`open_lean_connection`."""

    def __init__(self, listener: ConnectionListener, *, authority: str, ping_interval: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._authority = authority
        self._streams: dict[int, _Stream] = {}
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._encoder = RequestEncoder()
        self._decoder = ResponseDecoder()
        self._reader = f.FrameReader()
        self._next_sid = 1
        self._send_window = f.DEFAULT_WINDOW  # the server's connection window for our DATA
        self._recv_window = _CONNECTION_WINDOW  # what the server may still send us
        self._recv_unacked = 0
        self._peer_window = f.DEFAULT_WINDOW  # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self._peer_max_streams: int | None = None
        self._max_frame = f.MIN_FRAME_SIZE  # the server's SETTINGS_MAX_FRAME_SIZE
        self._continuation: tuple[int, int, list[bytes]] | None = None
        self._blocked: set[int] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._ping_interval = ping_interval
        self._ping_handle: asyncio.TimerHandle | None = None
        self._rx_since_tick = False
        self._ping_outstanding = False
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.gone: asyncio.Future[None] = self._loop.create_future()
        self.in_flight = 0
        self.max_streams = 0
        self.accepting = False
        self.closed = False
        self._closing = False
        self._aborted = False
        self.goaway_reason: str | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn != "h2":
            self._fail_ready(NoHttp2(f"{self._authority} did not negotiate HTTP/2 (ALPN: {alpn})"))
            self._transport.close()
            return
        self._transport.write(
            f.PREFACE + _LOCAL_SETTINGS + f.window_update(0, _CONNECTION_WINDOW - f.DEFAULT_WINDOW)
        )
        if self._ping_interval:
            self._ping_handle = self._loop.call_later(self._ping_interval, self._keepalive_tick)

    def data_received(self, data: bytes) -> None:
        self._rx_since_tick = True
        try:
            for kind, flags, sid, payload in self._reader.feed(data):
                if self._continuation is not None and kind != f.CONTINUATION:
                    raise f.FrameError(f.PROTOCOL_ERROR, "expected CONTINUATION")
                if kind == f.HEADERS:
                    self._on_headers_frame(flags, sid, payload)
                elif kind == f.DATA:
                    self._on_data(flags, sid, payload)
                elif kind == f.WINDOW_UPDATE:
                    self._on_window_update(sid, payload)
                elif kind == f.SETTINGS:
                    self._on_settings(flags, sid, payload)
                elif kind == f.RST_STREAM:
                    if sid == 0 or len(payload) != 4:
                        raise f.FrameError(f.PROTOCOL_ERROR, "malformed RST_STREAM")
                    self._check_not_idle(sid)
                    self._stream_reset(sid, f.parse_u32(payload))
                elif kind == f.PING:
                    self._on_ping(flags, sid, payload)
                elif kind == f.GOAWAY:
                    if sid != 0:
                        raise f.FrameError(f.PROTOCOL_ERROR, "GOAWAY on a stream")
                    last, _code, debug = f.parse_goaway(payload)
                    self._goaway(last, debug)
                elif kind == f.CONTINUATION:
                    self._on_continuation(flags, sid, payload)
                elif kind == f.PUSH_PROMISE:
                    raise f.FrameError(f.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")
                # PRIORITY and unknown frame types are ignored (§5.5, §6.3)
        except f.FrameError as exc:
            self._connection_error(exc.code, str(exc))
            return
        except HPACKError as exc:
            self._connection_error(f.COMPRESSION_ERROR, str(exc))
            return
        except (ValueError, IndexError, struct.error) as exc:  # a frame too short for its type
            self._connection_error(f.FRAME_SIZE_ERROR, f"malformed frame ({exc})")
            return
        if self._out:
            self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.gone.done():
            self.gone.set_result(None)
        self.accepting = False
        self._transport = None
        for handle in (self._ping_handle, self._sweep):
            if handle is not None:
                handle.cancel()
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
            if len(self._streams) >= self.max_streams:  # SETTINGS dropped since the reservation
                raise StreamRefused("the server's stream limit was lowered", goaway=False)
            sid = self._next_sid
            if sid > f.MAX_STREAM_ID:
                self.accepting = False
                raise StreamRefused("stream ids exhausted on this connection", goaway=False)
            self._next_sid = sid + 2
            block = self._encoder.encode(headers)
            self._out.append(f.headers_frames(sid, block, not body, self._max_frame))
            loop = self._loop
            fut: asyncio.Future[H2Response] = loop.create_future()
            st = _Stream(fut, self._peer_window, loop.time() + timeout, timeout)
            self._streams[sid] = st
            if body:
                st.pending = body
                self._send_body(sid, st)
            self._schedule_flush()
            if self._sweep is None:
                self._sweep = loop.call_at(st.deadline, self._sweep_timeouts)
            try:
                return await fut
            except asyncio.CancelledError:
                self._reset(sid)
                raise
        finally:
            self.in_flight -= 1
            self._listener.capacity_changed(self)

    def close(self) -> None:
        """Stop taking streams and close now; in-flight requests fail with ConnectionLost."""
        self.accepting = False
        self._closing = True
        if self._transport is not None:
            self._out.append(f.goaway(0, f.NO_ERROR))
            self._flush()
            self._transport.close()

    def abort(self) -> None:
        """Drop the socket at once (a peer that does not finish the TLS close in time)."""
        if self._transport is not None:
            self._transport.abort()

    def _send_body(self, sid: int, st: _Stream) -> None:
        data = st.pending
        size = len(data)
        off = st.offset
        out = self._out
        while off < size:
            n = min(self._send_window, st.send_window, self._max_frame, size - off)
            if n <= 0:
                self._blocked.add(sid)
                break
            last = off + n == size
            out.append(f.frame_header(n, f.DATA, f.END_STREAM if last else 0, sid))
            out.append(data if n == size else data[off : off + n])
            self._send_window -= n
            st.send_window -= n
            off += n
        st.offset = off
        if off == size:
            st.pending = b""
            self._blocked.discard(sid)

    def _resume_bodies(self, stream_id: int) -> None:
        if not self._blocked:
            return
        ids = list(self._blocked) if stream_id == 0 else [stream_id] if stream_id in self._blocked else []
        for sid in sorted(ids):
            st = self._streams.get(sid)
            if st is None:
                self._blocked.discard(sid)
            else:
                self._send_body(sid, st)

    # ---- frames in ----------------------------------------------------------------------------

    def _check_not_idle(self, sid: int) -> None:
        if sid >= self._next_sid or not sid & 1:
            raise f.FrameError(f.PROTOCOL_ERROR, f"frame on idle or server-initiated stream {sid}")

    def _on_headers_frame(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise f.FrameError(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        self._check_not_idle(sid)
        block = f.strip_padding(flags, payload, priority=bool(flags & f.PRIORITY_FLAG))
        if flags & f.END_HEADERS:
            self._on_header_block(flags, sid, block)
        else:
            self._continuation = (sid, flags, [block])

    def _on_continuation(self, flags: int, sid: int, payload: bytes) -> None:
        cont = self._continuation
        if cont is None or cont[0] != sid:
            raise f.FrameError(f.PROTOCOL_ERROR, "unexpected CONTINUATION")
        cont[2].append(payload)
        if sum(map(len, cont[2])) > _MAX_HEADER_BLOCK:
            raise f.FrameError(f.ENHANCE_YOUR_CALM, "header block too large")
        if flags & f.END_HEADERS:
            self._continuation = None
            self._on_header_block(cont[1], sid, b"".join(cont[2]))

    def _on_header_block(self, flags: int, sid: int, block: bytes) -> None:
        headers = self._decoder.decode(block)  # always: the HPACK state is per connection
        st = self._streams.get(sid)
        if st is None:
            return
        if st.status == 0 or st.status < 200:  # the response head (after any 1xx)
            status = 0
            hdrs = st.headers
            for name, value in headers:
                if name == b":status":
                    status = int(value) if value.isdigit() else -1
                elif name[:1] != b":":
                    hdrs[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
            if not 100 <= status <= 999:
                self._stream_error(sid, f.PROTOCOL_ERROR, "response without a valid :status")
                return
            st.status = status
            if status < 200:
                hdrs.clear()
        if flags & f.END_STREAM:
            self._stream_ended(sid)

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise f.FrameError(f.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise f.FrameError(f.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._recv_unacked += size
        if self._recv_unacked >= _CONNECTION_WINDOW // 2:
            self._out.append(f.window_update(0, self._recv_unacked))
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0
        st = self._streams.get(sid)
        if st is None:
            self._check_not_idle(sid)
            return
        data = f.strip_padding(flags, payload)
        if data:
            st.body.append(data)
        if flags & f.END_STREAM:
            self._stream_ended(sid)
            return
        st.recv += size
        if st.recv > _STREAM_WINDOW:
            self._stream_error(sid, f.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        elif st.recv >= _STREAM_WINDOW // 2:
            self._out.append(f.window_update(sid, st.recv))
            st.recv = 0

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise f.FrameError(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes")
        increment = f.parse_u32(payload) & f.MAX_WINDOW
        if sid == 0:
            if increment == 0:
                raise f.FrameError(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 for the connection")
            self._send_window += increment
            if self._send_window > f.MAX_WINDOW:
                raise f.FrameError(f.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._resume_bodies(0)
            return
        st = self._streams.get(sid)
        if st is None:
            self._check_not_idle(sid)
            return
        if increment == 0:
            self._stream_error(sid, f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            return
        st.send_window += increment
        if st.send_window > f.MAX_WINDOW:
            self._stream_error(sid, f.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
            return
        self._resume_bodies(sid)

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise f.FrameError(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise f.FrameError(f.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        grew = False
        for key, value in f.parse_settings(payload):
            if key == f.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise f.FrameError(f.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self._peer_window
                self._peer_window = value
                for st in self._streams.values():
                    st.send_window += delta
                    if st.send_window > f.MAX_WINDOW:
                        raise f.FrameError(f.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
                grew = grew or delta > 0
            elif key == f.MAX_FRAME_SIZE:
                if not f.MIN_FRAME_SIZE <= value <= f.MAX_FRAME_SIZE_LIMIT:
                    raise f.FrameError(f.PROTOCOL_ERROR, f"invalid SETTINGS_MAX_FRAME_SIZE {value}")
                self._max_frame = value
            elif key == f.HEADER_TABLE_SIZE:
                # Any size up to the server's may be used; more than the default buys nothing here.
                self._encoder.set_max_table_size(min(value, DEFAULT_TABLE_SIZE))
            elif key == f.ENABLE_PUSH and value != 0:
                raise f.FrameError(f.PROTOCOL_ERROR, "a server may not enable push")
        self._out.append(f.SETTINGS_ACK)
        if grew:
            self._resume_bodies(0)
        self._settings_changed()

    def _on_ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise f.FrameError(f.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise f.FrameError(f.FRAME_SIZE_ERROR, "PING is not 8 bytes")
        if flags & f.ACK:
            self._ping_outstanding = False
        else:
            self._out.append(f.ping(payload, ack=True))

    # ---- stream ends ----------------------------------------------------------------------------

    def _stream_ended(self, sid: int) -> None:
        st = self._streams.pop(sid, None)
        if st is None:
            return
        if st.pending:
            # The server answered before reading the whole body: stop sending so the stream closes.
            self._blocked.discard(sid)
            self._out.append(f.rst_stream(sid, f.NO_ERROR))
        body = st.body[0] if len(st.body) == 1 else b"".join(st.body)
        if not st.fut.done():
            st.fut.set_result(H2Response(st.status, st.headers, body))
        if not self.accepting:
            self._maybe_finish_drain()

    def _stream_reset(self, sid: int, code: int) -> None:
        st = self._streams.pop(sid, None)
        self._blocked.discard(sid)
        if st is not None and not st.fut.done():
            if code == f.REFUSED_STREAM:
                st.fut.set_exception(StreamRefused("stream refused by server", goaway=False))
            else:
                name = f.error_name(code)
                st.fut.set_exception(ConnectionLost(f"stream reset by {self._authority} ({name})"))
        self._maybe_finish_drain()

    def _stream_error(self, sid: int, code: int, message: str) -> None:
        """A stream-level protocol error (§5.4.2): reset it; the request may have been processed."""
        st = self._streams.pop(sid, None)
        self._blocked.discard(sid)
        self._out.append(f.rst_stream(sid, code))
        if st is not None and not st.fut.done():
            st.fut.set_exception(ConnectionLost(f"HTTP/2 stream error from {self._authority}: {message}"))
        self._maybe_finish_drain()

    def _sweep_timeouts(self) -> None:
        self._sweep = None
        now = self._loop.time()
        expired = [(sid, st) for sid, st in self._streams.items() if st.deadline <= now]
        for sid, st in expired:
            if not st.fut.done():
                st.fut.set_exception(
                    RequestTimeout(f"no response from {self._authority} within {st.timeout:g}s")
                )
            self._reset(sid)
        if self._streams and self._transport is not None:
            # Not sooner than a fraction of the timeout: under load the oldest deadline is always
            # a moment away, and a sweep per moment would cost more than a timer per request.
            soonest = min(st.deadline for st in self._streams.values())
            granularity = min(1.0, min(st.timeout for st in self._streams.values()) / 8)
            self._sweep = self._loop.call_at(max(soonest, now + granularity), self._sweep_timeouts)

    def _reset(self, sid: int) -> None:
        """Forget a stream we no longer want and tell the server (RST_STREAM CANCEL)."""
        if self._streams.pop(sid, None) is None:
            return
        self._blocked.discard(sid)
        if self._transport is not None:
            self._out.append(f.rst_stream(sid, f.CANCEL))
            self._schedule_flush()
        self._maybe_finish_drain()

    # ---- connection-level events --------------------------------------------------------------

    def _settings_changed(self) -> None:
        peer = self._peer_max_streams
        self.max_streams = _STREAMS_CAP if peer is None else min(peer, _STREAMS_CAP)
        if not self.ready.done():
            self.accepting = True
            self.ready.set_result(None)
        elif self.accepting:
            self._listener.capacity_changed(self)

    def _goaway(self, last_stream_id: int, additional_data: bytes) -> None:
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

    def _maybe_finish_drain(self) -> None:
        if not self.accepting and not self._streams and self.ready.done() and self._transport is not None:
            self.close()

    def _connection_error(self, code: int, message: str, error: ConnectionLost | None = None) -> None:
        """A connection error (§5.4.1): GOAWAY with the code, fail everything in flight, drop the
        socket (at once, like the reference connection, so the pool stops choosing it)."""
        self._aborted = True
        self.accepting = False
        error = error or ConnectionLost(f"HTTP/2 protocol error from {self._authority}: {message}")
        self._fail_ready(ConnectError(f"{self._authority}: {error}"))
        if self._transport is not None:
            # First, so that the pool hears of the loss before the failed requests wake up.
            self._out.append(f.goaway(0, code, message.encode()[:200]))
            self._flush()
            self._transport.abort()
        streams, self._streams = self._streams, {}
        for st in streams.values():
            if not st.fut.done():
                st.fut.set_exception(error)

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
        out = self._out
        if out and self._transport is not None:
            self._transport.write(b"".join(out))
        out.clear()

    def _keepalive_tick(self) -> None:
        """Ping a connection that has been silent for a whole interval; drop it if the previous
        ping went unanswered, so a dead NAT mapping is found before a request is sent on it."""
        if self.closed or self._ping_interval is None:
            return
        if not self._rx_since_tick:
            if self._ping_outstanding:
                message = f"{self._authority} stopped answering PING"
                self._connection_error(f.NO_ERROR, message, ConnectionLost(message))
                return
            self._ping_outstanding = True
            self._out.append(f.ping(b"pushctl!"))
            self._schedule_flush()
        self._rx_since_tick = False
        self._ping_handle = self._loop.call_later(self._ping_interval, self._keepalive_tick)


async def open_lean_connection(
    listener: ConnectionListener,
    host: str,
    port: int,
    *,
    authority: str,
    ssl_context: ssl.SSLContext,
    connect_timeout: float,
    ping_interval: float | None,
) -> LeanH2Connection:
    """Connect, handshake TLS (ALPN h2) and wait for the server's first SETTINGS."""
    conn = LeanH2Connection(listener, authority=authority, ping_interval=ping_interval)
    return await connect(conn, host, port, authority=authority, ssl_context=ssl_context,
                         connect_timeout=connect_timeout)
