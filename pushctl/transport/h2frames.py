"""HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte header, the frame types a client sends, and
an incremental reader. Pure functions on bytes: no state machine, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (§6)
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS parameters (§6.5.2)
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# Error codes (§7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR",
    PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED",
    FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM",
    CANCEL: "CANCEL",
    COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR",
    ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY",
    HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}

DEFAULT_WINDOW = 65535
MAX_WINDOW = (1 << 31) - 1
MIN_FRAME_SIZE = 16384  # also the default SETTINGS_MAX_FRAME_SIZE
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1
MAX_STREAM_ID = (1 << 31) - 1

# length (24 bits) and type share one 32-bit word; then flags; then the stream id (31 bits)
_HEADER = struct.Struct(">IBI")
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")
_GOAWAY = struct.Struct(">II")


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"0x{code:x}")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: header + payload."""
    return _HEADER.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    return _HEADER.pack(length << 8 | kind, flags, stream_id)


def settings(values: Iterable[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code) + debug)


def ping(payload: bytes, ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, payload)


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (+ CONTINUATION when the block is larger than the peer's frame size)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return _HEADER.pack(len(block) << 8 | HEADERS, flags | END_HEADERS, stream_id) + block
    out = [_HEADER.pack(max_frame << 8 | HEADERS, flags, stream_id), block[:max_frame]]
    pos = max_frame
    while pos < len(block):
        chunk = block[pos : pos + max_frame]
        pos += len(chunk)
        last = END_HEADERS if pos >= len(block) else 0
        out += [_HEADER.pack(len(chunk) << 8 | CONTINUATION, last, stream_id), chunk]
    return b"".join(out)


class FrameError(Exception):
    """A connection error (§5.4.1): the connection must end with GOAWAY ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise FrameError(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6 bytes")
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def parse_u32(payload: bytes) -> int:
    return int(_U32.unpack_from(payload)[0])


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    if len(payload) < 8:
        raise FrameError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
    last, code = _GOAWAY.unpack_from(payload)
    return last & MAX_STREAM_ID, code, payload[8:]


def strip_padding(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """The frame's data without PADDED padding (and the HEADERS priority fields)."""
    start = 0
    end = len(payload)
    if flags & PADDED:
        if not payload:
            raise FrameError(PROTOCOL_ERROR, "PADDED frame without a pad length")
        pad = payload[0]
        start = 1
        end -= pad
    if priority:
        start += 5
    if end < start:
        raise FrameError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[start:end] if start or end != len(payload) else payload


class FrameReader:
    """Splits a byte stream into ``(type, flags, stream id, payload)`` frames."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = MIN_FRAME_SIZE) -> None:
        self._buf = b""
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        buf = self._buf + data if self._buf else data
        frames = []
        pos = 0
        end = len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= 9:
            word, flags, sid = unpack(buf, pos)
            length = word >> 8
            if length > self.max_frame:
                raise FrameError(FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds SETTINGS_MAX_FRAME_SIZE")
            stop = pos + 9 + length
            if stop > end:
                break
            frames.append((word & 0xFF, flags, sid & MAX_STREAM_ID, buf[pos + 9 : stop]))
            pos = stop
        self._buf = buf[pos:] if pos < end else b""
        return frames
