"""HPACK (RFC 7541) tuned for a push sender: one connection sends thousands of requests whose
headers are the same but for a few values, and reads answers that repeat as much.

:class:`RequestEncoder` puts each *constant* header (``authorization``, ``apns-topic``,
``apns-push-type``, ``content-type``, ...) into the dynamic table once per connection and sends
a one- or two-byte index for it afterwards; the values that change with every request
(``:path`` with the device token, ``apns-id``, ``apns-expiration``, ``apns-collapse-id``) go as
literals *without* indexing, so they never evict the constant ones, and never Huffman-coded
(for a ~75-byte token path, pure-Python Huffman costs more CPU than the bytes it saves). When
a new constant value appears (a refreshed JWT) and the table has no room left, the encoder
empties the table with a dynamic-table-size update instead of letting it evict entry by entry.

:class:`ResponseDecoder` is a complete decoder (static and dynamic table, size updates,
Huffman), fast for what repeats: decoded Huffman strings are cached, and so are whole header
blocks that do not depend on the dynamic table (a repeat replays the entries it adds).

``hpack`` (the library h2 uses) is the reference: tests encode with one and decode with the other.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack import NeverIndexedHeaderTuple
from hpack.table import HeaderTable

from pushctl.transport.huffman import HuffmanError, huffman_decode

Header = tuple[bytes, bytes]

STATIC_TABLE: tuple[Header, ...] = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(STATIC_TABLE)
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1
DEFAULT_TABLE_SIZE = 4096

# Values that differ on (nearly) every request: sent as literals, never put in the table.
VARYING = frozenset({b":path", b"apns-id", b"apns-expiration", b"apns-collapse-id", b"content-length"})

_STATIC_FULL: dict[Header, int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _i, (_n, _v) in enumerate(STATIC_TABLE, 1):
    _STATIC_FULL.setdefault((_n, _v), _i)
    _STATIC_NAME.setdefault(_n, _i)


class HPACKError(ValueError):
    """A header block that cannot be decoded (a COMPRESSION_ERROR on the connection)."""


def encode_int(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1: ``value`` with a ``prefix_bits``-bit prefix, OR-ed into ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes, first: int, prefix_bits: int) -> bytes:
    """A literal field (``first`` selects the kind) with the name indexed when the static table
    has it; never Huffman-coded."""
    index = _STATIC_NAME.get(name, 0)
    if index:
        head = encode_int(index, prefix_bits, first)
    else:
        head = bytes((first,)) + encode_int(len(name), 7, 0) + name
    return head + encode_int(len(value), 7, 0) + value


class RequestEncoder:
    """Encodes request header blocks for one connection (see the module docstring)."""

    def __init__(self) -> None:
        self._max_size = DEFAULT_TABLE_SIZE  # the peer's SETTINGS_HEADER_TABLE_SIZE
        self._size = 0
        self._entries: list[tuple[Header, int]] = []  # newest first: (header, entry size)
        self._pending_min: int | None = None  # smallest table size since the last block
        self._codes: dict[Header, bytes] = {h: encode_int(i, 7, 0x80) for h, i in _STATIC_FULL.items()}
        self._literal_heads: dict[tuple[bytes, bool], bytes] = {}

    @property
    def table_size(self) -> int:
        """Bytes the dynamic table holds now (RFC 7541 entry sizes)."""
        return self._size

    def set_max_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block starts with a size update.

        The oldest entries are evicted as the peer's decoder will evict them when it reads the
        update (the smallest size since the last block is signalled first, RFC 7541 §4.2).
        """
        if size == self._max_size:
            return
        self._max_size = size
        self._pending_min = size if self._pending_min is None else min(self._pending_min, size)
        if self._size > size:
            while self._size > size:
                self._size -= self._entries.pop()[1]
            self._reindex()

    def encode(self, headers: Iterable[Header]) -> bytes:
        """One header block. ``NeverIndexedHeaderTuple`` entries are sent as never-indexed
        literals; names in :data:`VARYING` as literals without indexing; the rest indexed."""
        headers = headers if isinstance(headers, list) else list(headers)
        block = self._encode(headers, reset=False)
        if block is None:
            # A new constant does not fit: empty the table at the start of this block (a size
            # update to 0 and back) rather than evict piecemeal, which would drop the oldest
            # constants and make them be re-sent one after another.
            self._evict_all()
            block = self._encode(headers, reset=True)
            assert block is not None
        return block

    def _encode(self, headers: list[Header], *, reset: bool) -> bytes | None:
        parts: list[bytes] = []
        if reset:
            parts.append(encode_int(0, 5, 0x20) + encode_int(self._max_size, 5, 0x20))
        elif self._pending_min is not None:
            if self._pending_min < self._max_size:
                parts.append(encode_int(self._pending_min, 5, 0x20))
            parts.append(encode_int(self._max_size, 5, 0x20))
        codes = self._codes
        for header in headers:
            code = codes.get(header)
            if code is not None:
                parts.append(code)
                continue
            name, value = header
            if isinstance(header, NeverIndexedHeaderTuple):
                parts.append(self._head(name, True) + encode_int(len(value), 7, 0) + value)
            elif name in VARYING:
                parts.append(self._head(name, False) + encode_int(len(value), 7, 0) + value)
            else:
                size = len(name) + len(value) + _ENTRY_OVERHEAD
                if self._size + size > self._max_size:
                    if not reset and self._entries and size <= self._max_size:
                        return None  # start again with an empty table
                    # Never fits (or the block's own constants fill the table): a plain literal.
                    parts.append(_literal(name, value, 0x00, 4))
                    continue
                self._entries.insert(0, ((name, value), size))
                self._size += size
                self._reindex()
                codes = self._codes
                parts.append(_literal(name, value, 0x40, 6))
        self._pending_min = None
        return b"".join(parts)

    def _head(self, name: bytes, never: bool) -> bytes:
        key = (name, never)
        head = self._literal_heads.get(key)
        if head is None:
            first = 0x10 if never else 0x00
            index = _STATIC_NAME.get(name, 0)
            if index:
                head = encode_int(index, 4, first)
            else:
                head = bytes((first,)) + encode_int(len(name), 7, 0) + name
            self._literal_heads[key] = head
        return head

    def _evict_all(self) -> None:
        self._entries.clear()
        self._size = 0
        self._reindex()

    def _reindex(self) -> None:
        codes = {h: encode_int(i, 7, 0x80) for h, i in _STATIC_FULL.items()}
        for position, (header, _size) in enumerate(self._entries):
            codes.setdefault(header, encode_int(_STATIC_LEN + 1 + position, 7, 0x80))
        self._codes = codes


class ResponseDecoder:
    """Decodes response header blocks for one connection (see the module docstring)."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE, max_header_list_size: int = 1 << 16) -> None:
        self._limit = max_table_size  # our SETTINGS_HEADER_TABLE_SIZE: the peer may not exceed it
        self._max_size = max_table_size
        self._size = 0
        self._entries: list[tuple[Header, int]] = []  # newest first
        self._max_list = max_header_list_size
        self._huffman: dict[bytes, bytes] = {}
        # block -> (headers, entries it adds): only blocks that reference no dynamic entry
        self._blocks: dict[bytes, tuple[list[Header], list[Header]]] = {}
        self._used_dynamic = False

    @property
    def table_size(self) -> int:
        return self._size

    def decode(self, block: bytes) -> list[Header]:
        """The headers of one complete block, in order; raises :class:`HPACKError`."""
        cached = self._blocks.get(block)
        if cached is not None:
            # Same bytes, no reference to the dynamic table: same headers, and the same entries
            # to add (nginx sends every answer's headers "with incremental indexing").
            headers, added = cached
            for header in added:
                self._add(header)
            return headers
        self._used_dynamic = False
        try:
            headers, added, resized = self._decode(block)
        except (IndexError, HuffmanError) as exc:
            raise HPACKError(f"invalid header block: {exc}") from None
        if not self._used_dynamic and not resized and len(block) < 512:
            if len(self._blocks) >= 256:
                self._blocks.clear()
            self._blocks[block] = (headers, added)
        return headers

    def _decode(self, data: bytes) -> tuple[list[Header], list[Header], bool]:
        headers: list[Header] = []
        added: list[Header] = []
        resized = False
        pos = 0
        end = len(data)
        total = 0
        allow_update = True
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field
                index, pos = _decode_int(data, pos, 7)
                header = self._lookup(index)
                allow_update = False
            elif byte & 0x40:  # literal with incremental indexing
                header, pos = self._literal(data, pos, 6)
                self._add(header)
                added.append(header)
                allow_update = False
            elif byte & 0x20:  # dynamic table size update
                if not allow_update:
                    raise HPACKError("dynamic table size update after the first header field")
                size, pos = _decode_int(data, pos, 5)
                if size > self._limit:
                    raise HPACKError(f"dynamic table size update to {size} exceeds the limit {self._limit}")
                self._max_size = size
                self._shrink()
                resized = True
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                header, pos = self._literal(data, pos, 4)
                allow_update = False
            total += len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
            if total > self._max_list:
                raise HPACKError("header list too large")
            headers.append(header)
        return headers, added, resized

    def _lookup(self, index: int) -> Header:
        if index == 0:
            raise HPACKError("index 0 in a header block")
        if index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        position = index - _STATIC_LEN - 1
        self._used_dynamic = True
        if position >= len(self._entries):
            raise HPACKError(f"header index {index} is beyond the dynamic table")
        return self._entries[position][0]

    def _literal(self, data: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        index, pos = _decode_int(data, pos, prefix_bits)
        if index:
            name = self._lookup(index)[0]
        else:
            name, pos = self._string(data, pos)
        value, pos = self._string(data, pos)
        return (name, value), pos

    def _string(self, data: bytes, pos: int) -> tuple[bytes, int]:
        huffman = data[pos] & 0x80
        length, pos = _decode_int(data, pos, 7)
        stop = pos + length
        if stop > len(data):
            raise HPACKError("string literal runs past the end of the block")
        raw = data[pos:stop]
        if not huffman:
            return raw, stop
        text = self._huffman.get(raw)
        if text is None:
            text = huffman_decode(raw)
            if len(self._huffman) >= 4096:
                self._huffman.clear()
            self._huffman[raw] = text
        return text, stop

    def _add(self, header: Header) -> None:
        size = len(header[0]) + len(header[1]) + _ENTRY_OVERHEAD
        if size > self._max_size:  # RFC 7541 §4.4: empties the table, adds nothing
            self._entries.clear()
            self._size = 0
            return
        self._entries.insert(0, (header, size))
        self._size += size
        self._shrink()

    def _shrink(self) -> None:
        entries = self._entries
        while self._size > self._max_size:
            _header, size = entries.pop()
            self._size -= size


def _decode_int(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HPACKError("integer too large in a header block")
