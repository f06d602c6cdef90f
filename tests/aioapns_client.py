"""One aioapns backend process, pointed at `pushctl emulator run` the way a user can (README).

    python aioapns_client.py APNS_URL CA_FILE (--key P8 | --cert PEM) TOKEN...

prints one JSON line per token with what aioapns surfaces: status, description, is_successful.
aioapns has no host option: its sandbox host and port are class attributes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from urllib.parse import urlsplit

import aioapns
from aioapns.connection import APNsDevelopmentClientProtocol


async def main(args: argparse.Namespace) -> None:
    url = urlsplit(args.apns_url)
    APNsDevelopmentClientProtocol.APNS_SERVER = url.hostname  # type: ignore[misc]
    APNsDevelopmentClientProtocol.APNS_PORT = url.port  # type: ignore[misc]
    context = ssl.create_default_context(cafile=args.ca_file)  # verification stays on
    if args.cert:
        apns = aioapns.APNs(client_cert=args.cert, use_sandbox=True, ssl_context=context)
    else:
        with open(args.key) as fh:
            key = fh.read()
        apns = aioapns.APNs(
            key=key,
            key_id=args.key_id,
            team_id=args.team_id,
            topic=args.topic,
            use_sandbox=True,
            ssl_context=context,
        )
    for token in args.tokens:
        result = await apns.send_notification(
            aioapns.NotificationRequest(device_token=token, message={"aps": {"alert": "hello"}})
        )
        line = {"token": token, "status": result.status, "description": result.description}
        sys.stdout.write(json.dumps({**line, "successful": result.is_successful}) + "\n")
    apns.pool.close()
    await asyncio.sleep(0.1)  # let the transports finish closing before the loop goes away


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("apns_url")
    parser.add_argument("ca_file")
    parser.add_argument("--key")
    parser.add_argument("--key-id", default="EMU0000001")
    parser.add_argument("--team-id", default="EMUTEAM001")
    parser.add_argument("--topic", default="com.example.pushctl")
    parser.add_argument("--cert")
    parser.add_argument("tokens", nargs="+")
    asyncio.run(main(parser.parse_args()))
