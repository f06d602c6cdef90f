"""HPACK Huffman decoding (RFC 7541 §5.2, Appendix B) as a byte-at-a-time state machine.

The client never Huffman-*encodes* (see :mod:`pushctl.transport.hpack_codec`), but servers do:
nginx and Apple send most response header values Huffman-coded. Walking the code tree bit by bit
in Python costs ~8 operations per bit; here each input byte is one dictionary lookup of
``(tree node, byte) -> (next node, decoded bytes)``. The table is filled lazily, on first use of
a pair, so start-up pays nothing and a run only ever computes the few hundred pairs that the
server's values actually use.
"""

from __future__ import annotations

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

_EOS = 256


class HuffmanError(ValueError):
    """Invalid Huffman-coded string (EOS symbol, over-long or non-ones padding)."""


def _build_tree() -> tuple[list[list[int]], list[int], list[bool]]:
    children: list[list[int]] = [[-1, -1]]
    symbol: list[int] = [-1]
    ones: list[bool] = [True]  # the node's path from the root is all 1-bits (valid padding)
    depth: list[int] = [0]
    for sym, (code, length) in enumerate(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)):
        node = 0
        for i in range(length - 1, -1, -1):
            bit = (code >> i) & 1
            nxt = children[node][bit]
            if nxt < 0:
                nxt = len(children)
                children.append([-1, -1])
                symbol.append(-1)
                ones.append(ones[node] and bit == 1)
                depth.append(depth[node] + 1)
                children[node][bit] = nxt
            node = nxt
        symbol[node] = sym
    # A string may end inside a code only on a prefix of EOS (all ones) shorter than 8 bits.
    final = [symbol[n] < 0 and ones[n] and depth[n] <= 7 for n in range(len(children))]
    return children, symbol, final


_CHILDREN, _SYMBOL, _FINAL = _build_tree()
_STEPS: dict[int, tuple[int, bytes]] = {}


def _step(state: int, byte: int) -> tuple[int, bytes]:
    out = bytearray()
    node = state
    for i in range(7, -1, -1):
        node = _CHILDREN[node][(byte >> i) & 1]
        sym = _SYMBOL[node]
        if sym >= 0:
            if sym == _EOS:
                raise HuffmanError("EOS symbol inside a Huffman-coded string")
            out.append(sym)
            node = 0
    result = (node, bytes(out))
    _STEPS[state << 8 | byte] = result
    return result


def huffman_decode(data: bytes | memoryview) -> bytes:
    """Decode one Huffman-coded string literal; raises :class:`HuffmanError` when invalid."""
    steps = _STEPS
    state = 0
    parts: list[bytes] = []
    for byte in data:
        step = steps.get(state << 8 | byte)
        if step is None:
            step = _step(state, byte)
        state, out = step
        if out:
            parts.append(out)
    if state and not _FINAL[state]:
        raise HuffmanError("invalid padding at the end of a Huffman-coded string")
    return b"".join(parts)
