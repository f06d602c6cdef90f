"""Micro-benchmark of Web Push message encryption (not a test): pushctl's RFC 8291 code on
``cryptography`` against ``http_ece`` (web-push-libs), for the same plaintext and subscription.

Prints microseconds per message for each; the README's "Web Push" section records the choice.

    .venv/bin/python benchmarks/webpush_bench.py [N]
"""

from __future__ import annotations

import argparse
import base64
import json
import time

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushctl.emulator import issue_subscription
from pushctl.message import encrypt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=5_000, help="messages (default 5,000)")
    args = parser.parse_args()
    sub = issue_subscription("https://push.example", "emu-bench")
    p256dh, auth = sub["keys"]["p256dh"], sub["keys"]["auth"]
    plaintext = json.dumps({"title": "Welcome, Alice!", "options": {"body": "x" * 200}}).encode()
    ua_public = base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
    auth_secret = base64.urlsafe_b64decode(auth + "=" * (-len(auth) % 4))

    def pushctl_one() -> bytes:
        return encrypt(plaintext, p256dh, auth)

    def http_ece_one() -> bytes:
        # What pywebpush does per message: a fresh key pair, then http_ece.
        sender = ec.generate_private_key(ec.SECP256R1())
        sender.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return bytes(http_ece.encrypt(plaintext, private_key=sender, dh=ua_public, auth_secret=auth_secret,
                                      version="aes128gcm"))

    for name, fn in (("pushctl (cryptography)", pushctl_one), ("http_ece", http_ece_one)):
        fn()
        started = time.process_time()
        for _ in range(args.n):
            fn()
        cpu = time.process_time() - started
        print(f"{name:24} {cpu / args.n * 1e6:7.1f} µs CPU per message ({args.n:,} messages)")


if __name__ == "__main__":
    main()
