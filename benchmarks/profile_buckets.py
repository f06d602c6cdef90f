"""Bucket a py-spy profile of ``pushctl send`` the way issue 15 reads it.

    .venv/bin/python benchmarks/send_bench.py --py-spy /tmp/apns.txt -n 100000 --provider apns
    .venv/bin/python benchmarks/profile_buckets.py /tmp/apns.txt

``send_bench.py --py-spy FILE`` runs the command under ``py-spy record --format raw`` (collapsed
stacks: ``frame;frame;...;leaf count`` per line). Each sample goes to the bucket of the innermost
frame that belongs to one (so the Huffman decoding inside hpack is "HPACK decoding", not "h2
receive"), except that h2's own frames are split by whether the stack is receiving or sending.
"""

from __future__ import annotations

import sys
from collections import Counter

# (bucket, substrings of "function (file:line)"), tried innermost frame first, first match wins
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("debug logging (h2/hpack loggers)", ("logging/__init__", "(h2/frame_buffer", "__repr__ (hyperframe")),
    ("HPACK decoding", ("decode (hpack/", "_decode_literal (hpack/", "decode_huffman (hpack/",
                        "ResponseDecoder", "huffman_decode (pushctl", "_decode_int (pushctl",
                        "(hpack/table.py")),
    ("HPACK encoding", ("encode (hpack/", "add (hpack/", "_encode_", "hpack/huffman.py", "RequestEncoder",
                        "pushctl/transport/hpack_codec.py")),
    ("h2/hyperframe (state machine)", ("(h2/", "(hyperframe/")),
    ("HTTP/2 lean client (frames)", ("pushctl/transport/h2lean.py", "pushctl/transport/h2frames.py")),
    ("pool + h2 glue (pushctl/transport)", ("pushctl/transport/",)),
    ("TLS + socket + event loop", ("(ssl.py", "sslproto", "uvloop", "(asyncio/", "selectors")),
    ("journal (SQLite)", ("pushctl/journal/", "sqlite3")),
    ("result lines (JSON + stdout)", ("result_sink", "results_view", "console.py", "result_files",
                                      "to_dict (pushctl/outcome")),
    ("rendering (templates)", ("pushctl/message/template", "jinja2")),
    ("payload JSON", ("pushctl/message/payload",)),
    ("audience (read, tokens, dedupe)", ("pushctl/audience/",)),
    ("campaign pipeline", ("pushctl/campaign/",)),
    ("sender engine", ("pushctl/delivery/",)),
    ("providers (APNs/FCM adapters)", ("pushctl/providers/",)),
    ("start-up (imports, CLI)", ("<module>", "_find_and_load", "typer", "click", "rich")),
]


# JSON encoding counts where it is called from (a payload, a result line, the journal...).
TRANSPARENT = ("(json/", "dumps_compact (pushctl/runtime")


def bucket(stack: list[str]) -> str:
    receiving = any("data_received" in frame for frame in stack)
    for frame in reversed(stack):
        if any(t in frame for t in TRANSPARENT):
            continue
        for name, needles in RULES:
            if any(n in frame for n in needles):
                if name.startswith("h2/hyperframe"):
                    return "h2 receive side" if receiving else "h2 send side"
                return name
    return "other"


def main() -> None:
    counts: Counter[str] = Counter()
    with open(sys.argv[1], encoding="utf-8") as fh:
        for line in fh:
            stack_text, _, n = line.rstrip("\n").rpartition(" ")
            if n.isdigit():
                counts[bucket(stack_text.split(";"))] += int(n)
    total = sum(counts.values())
    print(f"{total} samples")
    for name, n in counts.most_common():
        print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
