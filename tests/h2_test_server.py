"""A small, controllable HTTP/2 + TLS server for the transport tests and benchmark.

Routes (any method): ``/echo`` (body back; ``x-req-id`` and ``x-method`` echoed as headers),
``/delay/<ms>``, ``/big/<bytes>``, ``/refuse-once`` (REFUSED_STREAM the first time per
``x-req-id``), ``/hang`` (never answers), ``/rst/<code>`` (RST_STREAM), ``/protocol-error`` (a
DATA frame on stream 0), ``/ping-first`` (a PING, then the answer), ``/bigheaders/<bytes>`` (a
header block larger than a frame: CONTINUATION), ``/informational`` (103, then 200), ``/padded``
(padded DATA), ``/trailers``; anything else -> 200 empty (fast path for benchmarks).

Controls (same event loop): :meth:`H2TestServer.set_max_streams`, :meth:`H2TestServer.goaway`,
:meth:`H2TestServer.drop_all`, :meth:`H2TestServer.set_header_table_size`. Run as a script for
the benchmark: prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.settings import SettingCodes


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_test_pki(
    directory: Path, *, name: str = "test", hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> Pki:
    """A throwaway CA and a server certificate for ``hosts`` signed by it (PEM files)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pushctl {name} CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / f"{name}-ca.pem", directory / f"{name}-cert.pem", directory / f"{name}-key.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


class _ServerConn(asyncio.Protocol):
    def __init__(self, server: H2TestServer) -> None:
        self.server = server
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False, header_encoding=None, validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, tuple[dict[bytes, bytes], bytearray]] = {}
        self.pending: set[int] = set()  # received completely, not answered yet
        self.answered_max = 0
        self.outgoing: dict[int, memoryview] = {}  # response bodies waiting for window
        self.last_stream_id: int | None = None  # set once we sent GOAWAY
        self.peak_streams = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.conns.add(self)
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams}
        )
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        self.transport = None

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.server.frozen:  # a peer that went away without closing (a dead NAT mapping)
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.protocol_errors.append(repr(exc))
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                assert ev.stream_id is not None and ev.headers is not None
                self.requests[ev.stream_id] = (dict(ev.headers), bytearray())
                self.peak_streams = max(self.peak_streams, len(self.requests))
                self.server.peak_streams = max(self.server.peak_streams, len(self.requests))
            elif isinstance(ev, h2.events.DataReceived):
                assert ev.stream_id is not None and ev.data is not None
                self.requests[ev.stream_id][1].extend(ev.data)
                self.h2.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                assert ev.stream_id is not None
                self.handle(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                assert ev.stream_id is not None
                self.server.resets.append(ErrorCodes(ev.error_code))
                self.forget(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                for sid in list(self.outgoing):
                    self.send_body(sid)
            elif isinstance(ev, h2.events.PingAckReceived):
                self.server.ping_acks += 1
            elif isinstance(ev, h2.events.PingReceived):
                self.server.pings_received += 1
        self.flush()

    def forget(self, sid: int) -> None:
        self.requests.pop(sid, None)
        self.pending.discard(sid)
        self.outgoing.pop(sid, None)
        self.maybe_close()

    def handle(self, sid: int) -> None:
        headers, _ = self.requests[sid]
        path = headers.get(b":path", b"/").decode()
        self.pending.add(sid)
        if path.startswith("/delay/"):
            asyncio.get_running_loop().call_later(int(path[7:]) / 1000, self.respond, sid)
        elif path == "/refuse-once" and headers.get(b"x-req-id") not in self.server.refused:
            self.server.refused.add(headers.get(b"x-req-id", b""))
            self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            self.forget(sid)
        elif path.startswith("/rst/"):
            self.h2.reset_stream(sid, int(path[5:]))
            self.forget(sid)
        elif path == "/protocol-error" and self.transport is not None:
            self.flush()
            self.transport.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on stream 0
        elif path == "/ping-first":
            self.h2.ping(b"server!!")
            self.respond(sid)
        elif path != "/hang":
            self.respond(sid)

    def respond(self, sid: int) -> None:
        if sid not in self.pending or self.transport is None:
            return  # reset by the client, or dropped with the connection
        if self.last_stream_id is not None and sid > self.last_stream_id:
            return  # promised not to process it (GOAWAY)
        headers, body = self.requests[sid]
        path = headers[b":path"].decode()
        out: bytes = bytes(body) if path == "/echo" else b""
        if path.startswith("/big/"):
            out = bytes(range(256)) * (int(path[5:]) // 256) + b"x" * (int(path[5:]) % 256)
        resp = [(b":status", b"200"), (b"x-req-id", headers.get(b"x-req-id", b"")),
                (b"x-method", headers.get(b":method", b""))]
        if path.startswith("/bigheaders/"):  # more than a frame: HEADERS + CONTINUATION
            resp.append((b"x-big", b"b" * int(path[12:])))
        if path == "/informational":
            self.h2.send_headers(sid, [(b":status", b"103"), (b"link", b"</x>; rel=preload")])
        self.pending.discard(sid)
        self.answered_max = max(self.answered_max, sid)
        self.server.processed[headers.get(b"x-req-id", b"").decode()] += 1
        if path == "/padded":
            self.h2.send_headers(sid, resp)
            self.h2.send_data(sid, b"padded body", end_stream=True, pad_length=40)
            self.requests.pop(sid, None)
            self.flush()
            return
        if path == "/trailers":
            self.h2.send_headers(sid, resp)
            self.h2.send_data(sid, b"body before trailers")
            self.h2.send_headers(sid, [(b"x-trailer", b"yes")], end_stream=True)
            self.requests.pop(sid, None)
            self.flush()
            return
        self.h2.send_headers(sid, resp, end_stream=not out)
        if out:
            self.outgoing[sid] = memoryview(out)
            self.send_body(sid)
        else:
            self.requests.pop(sid, None)
            self.maybe_close()
        self.flush()

    def send_body(self, sid: int) -> None:
        data = self.outgoing[sid]
        while data:
            n = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size, len(data))
            if n <= 0:
                break
            self.h2.send_data(sid, bytes(data[:n]), end_stream=n == len(data))
            data = data[n:]
        if data:
            self.outgoing[sid] = data
        else:
            del self.outgoing[sid]
            self.requests.pop(sid, None)
            self.maybe_close()

    def goaway(self, last_stream_id: int, reason: str) -> None:
        self.last_stream_id = last_stream_id
        self.h2.close_connection(
            ErrorCodes.NO_ERROR, json.dumps({"reason": reason}).encode(), last_stream_id=last_stream_id
        )
        # h2 refuses to send after GOAWAY; we still owe answers for streams <= last_stream_id.
        self.h2.state_machine.state = ConnectionState.SERVER_OPEN
        self.flush()
        self.maybe_close()

    def maybe_close(self) -> None:
        if self.last_stream_id is None or self.transport is None:
            return
        if not any(s <= self.last_stream_id for s in self.requests):
            self.flush()
            self.transport.close()


class H2TestServer:
    """An h2 server on 127.0.0.1 (TLS, ALPN h2); use ``async with`` in a running loop."""

    def __init__(self, pki: Pki, *, max_streams: int = 100, port: int = 0) -> None:
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(pki.cert, pki.key)
        self.ssl.set_alpn_protocols(["h2"])
        self.max_streams = max_streams
        self.port = port
        self.conns: set[_ServerConn] = set()
        self.processed: Counter[str] = Counter()
        self.refused: set[bytes] = set()
        self.resets: list[ErrorCodes] = []
        self.protocol_errors: list[str] = []
        self.peak_streams = 0
        self.ping_acks = 0
        self.pings_received = 0
        self.frozen = False
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> H2TestServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConn(self), "127.0.0.1", self.port, ssl=self.ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def set_max_streams(self, n: int) -> None:
        """Send a new SETTINGS_MAX_CONCURRENT_STREAMS on every connection (and to new ones)."""
        self.max_streams = n
        for conn in list(self.conns):
            conn.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: n})
            conn.flush()

    def set_header_table_size(self, n: int) -> None:
        """Send a new SETTINGS_HEADER_TABLE_SIZE (the client's encoder must follow it)."""
        for conn in list(self.conns):
            conn.h2.update_settings({SettingCodes.HEADER_TABLE_SIZE: n})
            conn.flush()

    def goaway(self, reason: str = "Shutdown") -> list[int]:
        """GOAWAY on every connection; half of the waiting streams (the higher ids) are declared
        unprocessed and never answered, the rest are answered as usual. Returns the last ids."""
        lasts = []
        for conn in list(self.conns):
            waiting = sorted(conn.pending)
            middle = waiting[len(waiting) // 2] if waiting else max(conn.requests, default=0)
            last = max(conn.answered_max, middle)
            conn.goaway(last, reason)
            lasts.append(last)
        return lasts

    def drop_all(self) -> None:
        """Abort every connection's TCP stream without a GOAWAY."""
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()


async def _serve(args: argparse.Namespace) -> None:
    pki = make_test_pki(Path(args.cert_dir), name="bench")
    async with H2TestServer(pki, max_streams=args.max_streams, port=args.port) as server:
        print(f"READY {server.port} {pki.ca}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="pushctl's h2 test server (benchmark mode)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--max-streams", type=int, default=1000)
    parser.add_argument("--uvloop", action="store_true")
    ns = parser.parse_args()
    if ns.uvloop:
        import uvloop

        uvloop.run(_serve(ns))
    else:
        asyncio.run(_serve(ns))
    sys.exit(0)
