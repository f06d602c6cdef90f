"""The lean HPACK codec and frame codec, cross-checked against ``hpack`` and ``hyperframe``
(the libraries h2 uses): encode with one, decode with the other."""

from __future__ import annotations

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hyperframe.frame import Frame
from hypothesis import given, settings
from hypothesis import strategies as st

from pushctl.transport import h2frames as f
from pushctl.transport.hpack_codec import HPACKError, RequestEncoder, ResponseDecoder, encode_int
from pushctl.transport.huffman import HuffmanError, huffman_decode

HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

names = st.sampled_from(
    [b"authorization", b"apns-topic", b"apns-push-type", b"apns-priority", b"content-type", b"x-custom",
     b"apns-id", b"apns-expiration", b"apns-collapse-id", b"user-agent", b"date", b"server"]
)
values = st.binary(max_size=300).map(lambda b: bytes(c % 94 + 33 for c in b))
headers = st.tuples(names, values)
constants = st.lists(st.tuples(names, values), min_size=1, max_size=8)


def request_block(consts: list[tuple[bytes, bytes]], path: bytes, never: bool) -> list[tuple[bytes, bytes]]:
    path_header = hpack.NeverIndexedHeaderTuple(b":path", path) if never else (b":path", path)
    return [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"h:1"), path_header, *consts]


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(constants, st.binary(min_size=1, max_size=120), st.booleans(),
                  st.sampled_from([None, None, None, 0, 64, 256, 4096])),
        min_size=1, max_size=25,
    )
)
def test_request_blocks_decode_with_hpack(
    rounds: list[tuple[list[tuple[bytes, bytes]], bytes, bool, int | None]],
) -> None:
    encoder = RequestEncoder()
    decoder = hpack.Decoder()
    for consts, path, never, table_size in rounds:
        if table_size is not None:  # the server's SETTINGS_HEADER_TABLE_SIZE changed (and was acked)
            decoder.max_allowed_table_size = table_size
            encoder.set_max_table_size(table_size)
        block = request_block(consts, b"/3/device/" + path.hex().encode(), never)
        decoded = decoder.decode(encoder.encode(block), raw=True)
        assert decoded == [tuple(h) for h in block]
        assert encoder.table_size <= decoder.header_table.maxsize
        assert encoder.table_size == decoder.header_table._current_size


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(st.lists(headers, max_size=10), st.booleans(), st.sampled_from([None, None, 0, 100, 4096])),
        min_size=1, max_size=25,
    )
)
def test_hpack_encoded_blocks_decode_with_the_lean_decoder(
    blocks: list[tuple[list[tuple[bytes, bytes]], bool, int | None]]
) -> None:
    encoder = hpack.Encoder()
    decoder = ResponseDecoder()
    for hdrs, huffman, table_size in blocks:
        if table_size is not None:
            encoder.header_table_size = table_size  # emits a size update in the next block
        block = [(b":status", b"200"), *hdrs]
        assert decoder.decode(encoder.encode(block, huffman=huffman)) == block
        assert decoder.table_size == encoder.header_table._current_size


def test_constant_headers_are_sent_once_then_as_indexes() -> None:
    encoder = RequestEncoder()
    consts = [(b"apns-topic", b"com.example"), (b"authorization", b"bearer " + b"j" * 200)]
    first = encoder.encode(request_block(consts, b"/3/device/aa", True))
    second = encoder.encode(request_block(consts, b"/3/device/bb", True))
    assert len(first) > 230
    # :method and :scheme (static), :authority and the 2 constants (dynamic, indexed by the
    # first block): one byte each; the path literal: 1-byte head + 1-byte length + 12 bytes
    assert len(second) == 2 + 1 + 2 + (2 + 12)
    assert b"/3/device/bb" in second  # no Huffman coding
    table = encoder.table_size
    for i in range(200):  # per-request values never enter the table
        encoder.encode([*request_block(consts, b"/3/device/%d" % i, True), (b"apns-id", b"%036d" % i),
                        (b"apns-expiration", b"%d" % i)])
    assert encoder.table_size == table


def test_a_new_jwt_that_does_not_fit_empties_the_table_first() -> None:
    encoder = RequestEncoder()
    decoder = hpack.Decoder()
    for jwt in range(30):
        consts = [(b"authorization", b"bearer %04d" % jwt + b"j" * 2500), (b"apns-topic", b"t")]
        block = encoder.encode(request_block(consts, b"/x", True))
        assert decoder.decode(block, raw=True)[-2:] == consts
        assert encoder.table_size <= 4096
        if jwt >= 1:  # one token fills the table: each new one starts with the size updates
            assert block[:4] == encode_int(0, 5, 0x20) + encode_int(4096, 5, 0x20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_huffman_decoding_matches_hpack(data: bytes) -> None:
    assert huffman_decode(HUFFMAN.encode(data)) == data


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xff\xff\xff",  # contains EOS (30 one-bits)
     b"\x00",  # '0' (5 bits) then 3 zero bits: padding must be ones
     HUFFMAN.encode(b"a") + b"\xff"],  # 8+ bits of padding
)
def test_invalid_huffman_is_refused(raw: bytes) -> None:
    with pytest.raises(HuffmanError):
        huffman_decode(raw)


@pytest.mark.parametrize(
    "block",
    [b"\x80",  # index 0
     b"\xbf\x7f",  # index beyond the (empty) dynamic table
     b"\x3f\xe2\x1f",  # size update to 4097 > the 4096 limit
     b"\x82\x20",  # size update after a header field
     b"\x00\x05ab",  # string literal past the end
     b"\x82\xff\xff\xff\xff\xff\xff"],  # integer overflow / truncated
)
def test_invalid_blocks_are_compression_errors(block: bytes) -> None:
    with pytest.raises(HPACKError):
        ResponseDecoder().decode(block)


def test_repeated_blocks_come_from_the_cache_and_still_update_the_table() -> None:
    # What nginx does: every answer's headers as literals *with* incremental indexing.
    decoder = ResponseDecoder()
    block = b"\x88" + b"".join(
        bytes((0x40 | 54,)) + encode_int(len(v), 7, 0) + v for v in (b"nginx", b"nginx")
    )  # :status 200, then "server: nginx" twice with incremental indexing (static name 54)
    first = decoder.decode(block)
    assert decoder.decode(block) is first  # cached: references no dynamic entry
    assert decoder.table_size == 4 * (6 + 5 + 32)  # ... and its two entries were added again
    # A block that refers to the dynamic table is decoded afresh each time.
    indexed = b"\xbe"  # index 62: the newest entry
    decoder.decode(b"\x40\x03x-a\x011")  # adds x-a: 1
    assert decoder.decode(indexed) == [(b"x-a", b"1")]
    decoder.decode(b"\x40\x03x-c\x013")  # now index 62 is x-c: 3
    assert decoder.decode(indexed) == [(b"x-c", b"3")]


# ---- frames ---------------------------------------------------------------------------------


def parse_with_hyperframe(data: bytes) -> list[Frame]:
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_frames_parse_with_hyperframe() -> None:
    frames = parse_with_hyperframe(
        f.settings([(f.ENABLE_PUSH, 0), (f.INITIAL_WINDOW_SIZE, 1 << 20)]) + f.SETTINGS_ACK
        + f.window_update(0, 12345) + f.rst_stream(3, f.CANCEL) + f.goaway(7, f.PROTOCOL_ERROR, b"why")
        + f.ping(b"12345678", ack=True) + f.frame_header(2, f.DATA, f.END_STREAM, 5) + b"hi"
    )
    kinds = [type(fr).__name__ for fr in frames]
    assert kinds == ["SettingsFrame", "SettingsFrame", "WindowUpdateFrame", "RstStreamFrame", "GoAwayFrame",
                     "PingFrame", "DataFrame"]
    s, ack, wu, rst, ga, ping, data = frames
    assert s.settings == {f.ENABLE_PUSH: 0, f.INITIAL_WINDOW_SIZE: 1 << 20} and "ACK" in ack.flags
    assert (wu.window_increment, rst.stream_id, rst.error_code) == (12345, 3, f.CANCEL)
    assert (ga.last_stream_id, ga.error_code, ga.additional_data) == (7, f.PROTOCOL_ERROR, b"why")
    assert ping.opaque_data == b"12345678" and "ACK" in ping.flags
    assert (data.stream_id, data.data, "END_STREAM" in data.flags) == (5, b"hi", True)


@pytest.mark.parametrize("size", [10, 16384, 16385, 50000])
def test_large_header_blocks_split_into_continuation(size: int) -> None:
    block = bytes(i % 251 for i in range(size))
    frames = parse_with_hyperframe(f.headers_frames(9, block, True, 16384))
    assert b"".join(fr.data for fr in frames) == block
    assert type(frames[0]).__name__ == "HeadersFrame" and "END_STREAM" in frames[0].flags
    assert all(type(fr).__name__ == "ContinuationFrame" for fr in frames[1:])
    assert "END_HEADERS" in frames[-1].flags and all("END_HEADERS" not in fr.flags for fr in frames[:-1])


def test_reader_reassembles_frames_split_anywhere() -> None:
    stream = f.ping(b"abcdefgh") + f.frame_header(5, f.DATA, 0, 1) + b"hello" + f.window_update(1, 9)
    for cut in range(len(stream)):
        reader = f.FrameReader()
        got = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [(k, s, p) for k, _fl, s, p in got] == [
            (f.PING, 0, b"abcdefgh"), (f.DATA, 1, b"hello"), (f.WINDOW_UPDATE, 1, b"\x00\x00\x00\x09")
        ]


def test_reader_refuses_frames_above_its_max_size() -> None:
    with pytest.raises(f.FrameError) as info:
        f.FrameReader().feed(f.frame_header(16385, f.DATA, 0, 1))
    assert info.value.code == f.FRAME_SIZE_ERROR


def test_padding_is_stripped_and_checked() -> None:
    assert f.strip_padding(f.PADDED, b"\x03abc\x00\x00\x00") == b"abc"
    padded_with_priority = b"\x01" + b"\x00" * 5 + b"blk\x00"
    assert f.strip_padding(f.PADDED | f.PRIORITY_FLAG, padded_with_priority, priority=True) == b"blk"
    with pytest.raises(f.FrameError):
        f.strip_padding(f.PADDED, b"\x09abc")
