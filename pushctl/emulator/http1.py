"""HTTP/1.1 for the emulator's FCM/OAuth port, beside HTTP/2, for the clients that speak it.

google-auth's token fetch and firebase-admin's ``messaging.send`` / ``send_each`` go through
``requests`` (HTTP/1.1 only), and ``curl --http1.1`` is how people poke at an endpoint. Google's
front ends answer both versions; so does the emulator, with the very same handler.

Keep-alive (HTTP/1.1's default; ``connection: close`` and HTTP/1.0 honoured), request bodies by
``content-length`` or ``transfer-encoding: chunked``, ``expect: 100-continue``, bounded header and
body sizes. Requests are answered one at a time in order: pipelined requests wait in the buffer
until the one before has been answered (a delayed answer delays those behind it, as on a real
HTTP/1.1 connection). Connection faults map onto HTTP/1.1: ``goaway_after`` N answers the N-th
request with ``connection: close``, ``drop_after`` N drops the connection at the N-th request.
"""

from __future__ import annotations

import asyncio
import http
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from pushctl.emulator.http_base import Connection, Port, Request, Response, json_response

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 65536
"""Request line + headers; the same bound as the HTTP/2 side's SETTINGS_MAX_HEADER_LIST_SIZE."""
MAX_BODY_BYTES = 1 << 20
"""Request bodies above this are refused with 413 (FCM messages are at most 4 KB)."""

# Hop-by-hop headers (RFC 9110 §7.6.1) and ``host`` (HTTP/2's ``:authority``) are not passed to
# services, so they see the same headers whichever version the client spoke.
_NOT_FORWARDED = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "expect"}
)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@dataclass(slots=True)
class _Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body_start: int


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class H1Connection(Connection):
    """One HTTP/1.1 client connection: parses requests from a buffer, answers them in order."""

    protocol = "http/1.1"

    def __init__(self, server: Port) -> None:
        super().__init__(server)
        self._buf = bytearray()
        self._busy = False
        """An answer is pending (delayed): later requests wait in the buffer."""
        self._continued = False
        """``100 Continue`` already sent for the request being received."""
        self._requests = 0
        self._keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._buf += data
        if not self._busy:
            self._process()

    # -- parsing ---------------------------------------------------------------------

    def _process(self) -> None:
        while not self._busy and not self._closed and self._buf:
            try:
                request = self._take_request()
            except _BadRequest as bad:
                self._keep_alive = False
                error = {"error": {"code": bad.status, "message": bad.message}}
                self._write(json_response(bad.status, error))
                return
            if request is None:
                return
            self._dispatch(*request)

    def _take_request(self) -> tuple[_Head, bytes] | None:
        """The next complete request from the buffer (removed from it), or None if incomplete."""
        buf = self._buf
        while buf[:2] == b"\r\n":  # RFC 9112 §2.2: ignore empty lines before a request line
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD_BYTES:
            if len(buf) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "Request header fields too large.")
            return None
        head = self._parse_head(bytes(buf[:end]), end + 4)
        body = self._body(head)
        if body is None:
            return None
        return head, body

    @staticmethod
    def _parse_head(raw: bytes, body_start: int) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[0].isalpha():
            raise _BadRequest(400, "Malformed request line.")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "Malformed header line.")
            headers.append((name.lower(), value.strip(" \t")))
        return _Head(parts[0], parts[1], parts[2], headers, body_start)

    def _body(self, head: _Head) -> bytes | None:
        """The request body once complete (consuming the request from the buffer), else None."""
        encodings = [v.strip().lower() for k, v in head.headers if k == "transfer-encoding"]
        lengths = {v.strip() for k, v in head.headers if k == "content-length"}
        if encodings:
            if encodings != ["chunked"] or lengths:
                raise _BadRequest(501 if not lengths else 400, "Unsupported transfer-encoding.")
            parsed = self._chunked(head.body_start)
            if parsed is None:
                self._maybe_continue(head)
                return None
            body, consumed = parsed
        elif lengths:
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise _BadRequest(400, "Invalid content-length.")
            size = int(next(iter(lengths)))
            if size > MAX_BODY_BYTES:
                raise _BadRequest(413, "Request body too large.")
            consumed = head.body_start + size
            if len(self._buf) < consumed:
                self._maybe_continue(head)
                return None
            body = bytes(self._buf[head.body_start : consumed])
        else:
            body, consumed = b"", head.body_start
        del self._buf[:consumed]
        self._continued = False
        return body

    def _chunked(self, pos: int) -> tuple[bytes, int] | None:
        """(body, bytes consumed) of a complete chunked body starting at ``pos``, else None."""
        buf = self._buf
        chunks: list[bytes] = []
        total = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(400, "Malformed chunk size.") from None
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                raise _BadRequest(413, "Request body too large.")
            pos = eol + 2
            if size == 0:
                break
            if len(buf) < pos + size + 2:
                return None
            if buf[pos + size : pos + size + 2] != b"\r\n":
                raise _BadRequest(400, "Malformed chunk.")
            chunks.append(bytes(buf[pos : pos + size]))
            pos += size + 2
        while True:  # optional trailer fields, then an empty line
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            if eol - pos > MAX_HEAD_BYTES:
                raise _BadRequest(431, "Trailer too large.")
            line_empty = eol == pos
            pos = eol + 2
            if line_empty:
                return b"".join(chunks), pos

    def _maybe_continue(self, head: _Head) -> None:
        expect = any(k == "expect" and v.lower() == "100-continue" for k, v in head.headers)
        if expect and not self._continued and self.transport is not None:
            self._continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- answering -------------------------------------------------------------------

    def _dispatch(self, head: _Head, body: bytes) -> None:
        self._requests += 1
        options = {t.strip().lower() for k, v in head.headers if k == "connection" for t in v.split(",")}
        keep = "keep-alive" in options if head.version == "HTTP/1.0" else "close" not in options
        cfg = self.server.config
        if cfg.drop_after and self._requests >= cfg.drop_after:
            self.abort()
            return
        if cfg.goaway_after and self._requests >= cfg.goaway_after:
            keep = False
        self._keep_alive = keep
        self._arm_idle()
        target = head.target
        if "://" in target:  # absolute-form (RFC 9112 §3.2.2): the path is what services route on
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [(k, v) for k, v in head.headers if k not in _NOT_FORWARDED]
        try:
            response = self.server.handler(Request(head.method, target, headers, body, self._requests, self))
        except Exception:  # an emulator bug must not look like a network failure to the client
            logger.exception("emulator handler failed for %s %s", head.method, target)
            response = json_response(500, {"reason": "InternalServerError"})
        if response.drop:
            self.abort()
        elif response.delay > 0:
            self._busy = True
            asyncio.get_running_loop().call_later(response.delay, self._respond_later, response)
        else:
            self._write(response)

    def _respond_later(self, response: Response) -> None:
        if self._closed:
            return
        self._busy = False
        self._write(response)
        self._process()

    def _write(self, response: Response) -> None:
        if self._closed or self.transport is None:
            return
        lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines.append(f"content-length: {len(response.body)}")
        if not self._keep_alive:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.transport.write(head + response.body)
        if not self._keep_alive:
            self.close()

    def _idle(self) -> None:
        if self._busy:
            self._arm_idle()
        else:
            self.close()
