"""HTTP/2 for the emulator's ports, on ``h2`` + asyncio (the hot path: pushctl and aioapns speak it).

Connection-level behaviour lives here — concurrent-stream limits, GOAWAY after N streams,
dropped connections, idle timeouts, delayed answers; every request goes to the port's handler.
No coroutine or task is created per request: that is what keeps one core at several thousand
requests/s.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hpack.hpack
import hpack.huffman_table
from hyperframe.frame import GoAwayFrame

from pushctl.emulator.http_base import Connection, Port, Request, Response, json_response

logger = logging.getLogger(__name__)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What an HTTP/2 client sends first (RFC 9113 §3.4)."""


class _H2Connection(h2.connection.H2Connection):
    """h2 walks every stream to count open ones on each new request (and prunes closed ones
    as it goes); :class:`Connection` counts its own streams and enforces its own limit with
    RST_STREAM REFUSED_STREAM, as a real server does, so h2 only prunes every 64th time."""

    _calls = 0

    @property
    def open_inbound_streams(self) -> int:
        self._calls += 1
        if not self._calls & 63:
            self._open_streams(1)
        return 0


class _Encoder(hpack.Encoder):
    """Skip Huffman coding of response headers: it costs more CPU than loopback bytes."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return bytes(super().encode(headers, huffman=False))


# Clients send the same JWT / access token literal (never indexed) on every request, so
# HPACK Huffman-decodes it every time in pure Python: ~0.2 ms per request. The result is a
# pure function of the bytes, so a small cache makes it one dict lookup.
_huffman_raw = hpack.huffman_table.decode_huffman
_huffman_cached = functools.lru_cache(maxsize=1024)(_huffman_raw)


def _decode_huffman(huffman_string: bytes | bytearray | memoryview | None) -> bytes:
    if huffman_string is None or len(huffman_string) < 32:  # short ones are cheap and too many to cache
        return _huffman_raw(huffman_string)
    return _huffman_cached(bytes(huffman_string))


hpack.hpack.decode_huffman = _decode_huffman  # type: ignore[attr-defined]

# Headers whose value is new in every response: indexing them would only churn the table.
_NEVER_INDEX = frozenset({"apns-id", "apns-unique-id"})

# Answers are written every this many requests within one read, not only at its end: a read can
# hold hundreds of requests, and a client waiting for the whole batch's answers sits idle meanwhile
# (measured: one process 3,150 -> ~4,500 pushctl APNs requests/s end to end with 32-64).
_FLUSH_EVERY = 32

# After a GOAWAY the connection stays open this long (or until the client closes it) before the
# server closes it. A client may already have written a new stream when the GOAWAY crosses it on
# the wire; closing at once turns that stream into a write error, while lingering lets the client
# read the GOAWAY, see its stream is above last_stream_id and retry it safely elsewhere
# (RFC 9113 §6.8: "graceful connection shutdown").
GOAWAY_LINGER = 1.0


class H2Connection(Connection):
    """One HTTP/2 client connection: h2 state machine, buffered request streams, pending response data."""

    protocol = "h2"

    def __init__(self, server: Port) -> None:
        super().__init__(server)
        # Inbound header validation is off: it cost ~75 µs per request, and clients of an
        # emulator are HTTP/2 libraries that already send well-formed headers.
        self.h2 = _H2Connection(
            h2.config.H2Configuration(
                client_side=False, header_encoding="utf-8", validate_inbound_headers=False
            )
        )
        self.h2.encoder = _Encoder()
        self._streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        self._pending: dict[int, memoryview] = {}
        self._requests = 0
        self._open = 0
        self._goaway_last: int | None = None
        self._goaway_sent = False
        self._linger_handle: asyncio.TimerHandle | None = None
        self._batch = 0

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        cfg = self.server.config
        self._advertised = cfg.initial_streams or cfg.max_concurrent_streams
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._advertised,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._linger_handle is not None:
            self._linger_handle.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # Not HTTP/2 (e.g. an HTTP/1.1 client on the HTTP/2-only APNs port, which then reads our
            # SETTINGS frame as a status line, as it would from APNs) or a broken client: close.
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._on_headers(event)
            elif isinstance(event, h2.events.DataReceived):
                entry = self._streams.get(event.stream_id)
                if entry is not None:
                    entry[1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_request(event.stream_id)
                self._batch += 1
                if self._batch >= _FLUSH_EVERY:
                    self._batch = 0
                    self._flush()
            elif isinstance(event, h2.events.StreamReset):
                # A stream the client gave up on (e.g. its request timed out) no longer counts
                # against the limit. One still waiting for a delayed answer is counted off when
                # that answer finds the stream gone (see _respond).
                if (
                    self._streams.pop(event.stream_id, None) is not None
                    or self._pending.pop(event.stream_id, None) is not None
                ):
                    self._stream_done()
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._send_pending()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.close()
                return
        self._flush()

    # -- requests -------------------------------------------------------------

    def _on_headers(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self._goaway_last is not None and sid > self._goaway_last:
            # After our GOAWAY, newer streams are ignored; the client retries them elsewhere.
            return
        acked_limit = self.h2.local_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS]
        if self._open >= acked_limit:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self._streams[sid] = ([(str(k), str(v)) for k, v in event.headers or ()], bytearray())
        self._requests += 1
        self._open += 1
        cfg = self.server.config
        if cfg.goaway_after and self._requests == cfg.goaway_after:
            # The GOAWAY itself goes out once streams up to ``sid`` are answered: h2-based
            # clients (httpcore, aioapns) fail in-flight streams on receiving it, even those
            # a server would still answer, so sending it last is what keeps them working.
            self._goaway_last = sid

    def _on_request(self, sid: int) -> None:
        entry = self._streams.pop(sid, None)
        if entry is None:
            return
        raw_headers, body = entry
        method = path = ""
        headers: list[tuple[str, str]] = []
        for name, value in raw_headers:
            if name == ":method":
                method = value
            elif name == ":path":
                path = value
            elif name[0] != ":":
                headers.append((name, value))
        if self.server.config.drop_after and self._requests >= self.server.config.drop_after:
            self.abort()
            return
        self._arm_idle()
        try:
            response = self.server.handler(Request(method, path, headers, bytes(body), sid, self))
        except Exception:  # an emulator bug must not look like a network failure to the client
            logger.exception("emulator handler failed for %s %s", method, path)
            response = json_response(500, {"reason": "InternalServerError"})
        if response.drop:
            self.abort()
        elif response.delay > 0:
            asyncio.get_running_loop().call_later(response.delay, self._respond_later, sid, response)
        else:
            self._respond(sid, response)

    def _respond_later(self, sid: int, response: Response) -> None:
        if not self._closed:
            self._respond(sid, response)
            self._flush()

    def _respond(self, sid: int, response: Response) -> None:
        headers: list[Any] = [(":status", str(response.status))]
        for name, value in response.headers:
            headers.append(
                hpack.NeverIndexedHeaderTuple(name, value) if name in _NEVER_INDEX else (name, value)
            )
        body = response.body
        try:
            if body:
                headers.append(("content-length", str(len(body))))
                self.h2.send_headers(sid, headers)
                self._pending[sid] = memoryview(body)
                self._send_pending()
            else:
                self.h2.send_headers(sid, headers, end_stream=True)
                self._stream_done()
        except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError):
            # Reset by the client while the answer was delayed; h2 may have forgotten it already.
            self._stream_done()

    def _send_pending(self) -> None:
        for sid in list(self._pending):
            view = self._pending[sid]
            try:
                window = self.h2.local_flow_control_window(sid)
                frame = self.h2.max_outbound_frame_size
                while view and window > 0:
                    chunk = min(len(view), window, frame)
                    self.h2.send_data(sid, view[:chunk].tobytes(), end_stream=chunk == len(view))
                    view = view[chunk:]
                    window -= chunk
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                view = memoryview(b"")
            if view:
                self._pending[sid] = view
            else:
                del self._pending[sid]
                self._stream_done()

    def _stream_done(self) -> None:
        self._open -= 1
        if self._goaway_last is not None and self._open <= 0:
            if not self._goaway_sent:
                self.goaway(self._goaway_last)
            self._flush()
            self._close_after_linger()

    # -- connection control (used by services and faults) ---------------------------

    def set_max_concurrent_streams(self, value: int) -> None:
        """Advertise a new SETTINGS_MAX_CONCURRENT_STREAMS (no-op when unchanged)."""
        if value != self._advertised and not self._closed:
            self._advertised = value
            self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: value})

    @property
    def max_concurrent_streams(self) -> int:
        """The limit most recently advertised."""
        return self._advertised

    def goaway(self, last_stream_id: int, reason: str | None = None) -> None:
        """Send GOAWAY: streams up to ``last_stream_id`` are still answered, then the connection closes."""
        self._flush()
        extra = json.dumps({"reason": reason}).encode() if reason else b""
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=0, additional_data=extra)
        self._goaway_last = last_stream_id
        self._goaway_sent = True
        if self.transport is not None and not self._closed:
            self.transport.write(frame.serialize())

    def _flush(self) -> None:
        if self._closed or self.transport is None:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def _idle(self) -> None:
        if self._open > 0:
            self._arm_idle()
            return
        last = self.h2.highest_inbound_stream_id
        self.goaway(last, "IdleTimeout")
        self._flush()
        self._close_after_linger()

    def _close_after_linger(self) -> None:
        if self._linger_handle is None and not self._closed:
            self._linger_handle = asyncio.get_running_loop().call_later(GOAWAY_LINGER, self.close)
