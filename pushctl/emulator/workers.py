"""Multi-process emulator: N worker processes serve the same APNs and FCM ports with ``SO_REUSEPORT``.

Why: one emulator process spends ~130 µs CPU per fully checked and recorded request (~7,500/s
per core), but end to end beside ``pushctl send`` on the 2-core dev VM it served ~3,100-4,500
requests/s, below what pushctl sends (~4,800/s against nginx); with ``--workers 2`` APNs reached
~4,200-5,500/s (see :data:`THROUGHPUT_NOTE` and ``benchmarks/send_bench.py --emulator-workers``).

Design (``EmulatorWorkers`` is the parent, :func:`worker_main` a worker):

* The parent makes the CA and server certificate once (all workers load the same files from the
  state dir), reserves the two ports (a bound but *not listening* ``SO_REUSEPORT`` socket for a
  port 0, so the port stays ours until the workers listen) and starts N children
  (``python -c ...worker_main()``). Each reads one JSON line on stdin: state dir, ports, the
  scenario (as a dict: same registry, options and faults in every worker), its index, its seed and
  a secret shared by all workers.
* Each worker is a full :class:`Emulator` on its own event loop, with its own inbox, listening with
  ``SO_REUSEPORT``. Seeds are derived per worker (worker 0 keeps the seed itself; worker i > 0 uses
  a hash of (seed, i)), so faults stay deterministic per worker. The kernel spreads *connections*,
  not requests: a classic BPF program on the port group picks the worker from the client's source
  port (consecutive connections of one client alternate between workers); if it cannot be attached
  the kernel's 4-tuple hash decides. A client must therefore open at least as many connections as
  there are workers — pushctl opens another only when a connection's stream limit is full, so lower
  ``max_concurrent_streams`` in a scenario (``benchmarks/send_bench.py --emulator-workers`` does).
* Each worker also serves its *own* state on a private admin port: plain HTTP/1.1 on 127.0.0.1,
  from a thread, so it answers even while that worker's event loop is busy. Workers report
  ``{"pid", "admin_url"}`` on stdout; the parent sends every worker the full list, then writes
  ``endpoints.json`` with ``"workers": [{"index", "pid", "admin_url"}, ...]``.
* ``GET /_emulator/inbox``, ``GET /_emulator/stats`` and ``DELETE /_emulator/inbox`` on the shared
  FCM port reach whichever worker holds that connection; it asks every peer's private port and
  answers the merged view (counts summed; one token's deliveries merged in time order; stats summed
  plus a ``workers`` list of each worker's own stats; DELETE clears every worker). So
  ``pushctl emulator inbox`` and admin clients work unchanged.
* OAuth access tokens are HMAC-signed with the shared secret, so a token a worker issued on one
  connection is accepted by every worker.
* Stopping: the parent closes each worker's stdin (a worker stops cleanly on EOF), waits, then
  SIGTERM, then SIGKILL. A worker also stops on SIGTERM, ignores SIGINT (Ctrl-C reaches the whole
  process group; the parent coordinates), and exits when its parent dies (stdin EOF): no orphans.

Per worker, not shared: the inbox (merged when read), answer counters, JWT update tracking
(``TooManyProviderTokenUpdates``), per-device and FCM quota rate limits, fault draws and the
connection-level behaviour (stream limits, GOAWAY, drops), which is per connection anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import hashlib
import http.client
import http.server
import json
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from pushctl.emulator.admin import admin_headers, ensure_admin_token, refusal
from pushctl.emulator.emulator import (
    ENDPOINTS_FILE,
    Emulator,
    _new_loop,
    write_profile,
    write_service_account,
)
from pushctl.emulator.scenario import Scenario
from pushctl.emulator.server import Request, Response, json_response
from pushctl.emulator.tls import ensure_certificates
from pushctl.errors import InputError
from pushctl.paths import default_emulator_state_dir, make_private_dir, write_private

THROUGHPUT_NOTE = (
    "Measured on the 2-core dev VM (benchmarks/send_bench.py --sink emulator, 50,000 devices, "
    "pushctl pinned to core 0): the emulator costs ~130 µs CPU per request (~7,500/s per core); "
    "one process: APNs 3,600-4,500/s, FCM ~3,100/s end to end; --workers 2: APNs 4,200-5,500/s, "
    "FCM ~3,600/s. pushctl alone sends ~4,600-4,800/s (nginx sink)."
)

_SO_ATTACH_REUSEPORT_CBPF = 51  # Linux <asm-generic/socket.h>
_SKF_NET_OFF = -0x100000


# -- seeds, balancing ----------------------------------------------------------------------


def worker_seed(seed: int | None, index: int) -> int | None:
    """The seed worker ``index`` uses: the seed itself for worker 0, a stable hash for the others."""
    if seed is None or index == 0:
        return seed
    digest = hashlib.sha256(f"pushctl-emulator:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def attach_balancer(sock: Any, workers: int) -> bool:
    """Spread new IPv4 connections over a ``SO_REUSEPORT`` group by client source port.

    A classic BPF program returns ``(source port >> 1) % workers`` as the index of the listening
    socket (Linux gives one client's consecutive connections ports two apart). Returns whether it
    was attached; if not, the kernel's 4-tuple hash spreads connections (evenly only on average).
    """
    if sys.platform != "linux" or workers < 2:
        return False
    program = [
        (0x28, 0, 0, (_SKF_NET_OFF + 20) & 0xFFFFFFFF),  # ldh [net + 20]: TCP source port (IPv4)
        (0x74, 0, 0, 1),  # rsh #1
        (0x94, 0, 0, workers),  # mod #workers
        (0x16, 0, 0, 0),  # ret a
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)
    except (OSError, AttributeError, TypeError):
        return False
    return True


# -- merging the workers' admin answers ---------------------------------------------------------


def merge_admin(method: str, path: str, views: list[Any]) -> Any:
    """Merge the answers of every worker to one admin request (all answered 200)."""
    url = urlsplit(path)
    if url.path == "/_emulator/stats":
        merged: dict[str, Any] = {}
        for side in ("apns", "fcm", "oauth", "webpush", "hms", "broadcast"):
            total: Counter[str] = Counter()
            for view in views:
                total.update(view.get(side, {}))
            merged[side] = dict(total)
        for key in ("inbox_total", "connections"):
            merged[key] = sum(int(v.get(key, 0)) for v in views)
        merged["workers"] = sorted(views, key=lambda v: int(v.get("worker", 0)))
        return merged
    if method == "DELETE":
        return {"cleared": True, "workers": len(views)}
    if url.path == "/_emulator/subscribe":
        return {**views[0], "workers": len(views)}
    token = parse_qs(url.query).get("token", [None])[0]
    if token is not None:
        deliveries = [d for view in views for d in view["deliveries"]]
        deliveries.sort(key=lambda d: float(d.get("received_at", 0.0)))
        return {"token": token, "count": len(deliveries), "deliveries": deliveries}
    counts: Counter[str] = Counter()
    for view in views:
        counts.update(view["counts"])
    return {
        "total": sum(int(v["total"]) for v in views),
        "counts": {t: counts[t] for t in sorted(counts)},
    }


def _fetch(
    admin_url: str, method: str, path: str, token: str, body: bytes = b"", timeout: float = 10.0
) -> tuple[int, Any]:
    parts = urlsplit(admin_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=admin_headers(token))
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# -- a worker -----------------------------------------------------------------------------------


class WorkerEmulator(Emulator):
    """One worker: an :class:`Emulator` on a shared ``SO_REUSEPORT`` port whose admin views merge."""

    reuse_port = True
    publish_endpoints = False

    def __init__(self, *args: Any, index: int, workers: int, secret: bytes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = index
        self.workers = workers
        self.tokens.secret = secret
        self.hms_tokens.secret = secret
        self.own_admin_url = ""
        self.peers: list[str] = []
        """Private admin URLs of the other workers (set by the parent once all listen)."""
        self.balanced = False

    async def astart(self) -> None:
        await super().astart()
        balanced = True
        if self.host.count(".") == 3:  # the BPF program reads an IPv4 header
            for server in self._servers:
                for sock in server.sockets:
                    balanced = attach_balancer(sock, self.workers) and balanced
        else:
            balanced = False
        self.balanced = balanced

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "worker": self.index, "pid": os.getpid()}

    def _admin(self, req: Request) -> Response:
        status, body = self.admin_view(req.method, req.path, req.body)
        if status != 200 or not self.peers:
            return json_response(status, body)
        # Blocks this worker's loop for the few ms the peers take; they answer from their admin
        # threads, so two workers merging at once cannot wait on each other.
        views = [body]
        for url in self.peers:
            try:
                peer_status, peer_body = _fetch(url, req.method, req.path, self.admin_token, req.body)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                return json_response(503, {"error": f"emulator worker at {url} did not answer: {exc}"})
            if peer_status != 200:
                return json_response(peer_status, peer_body)
            views.append(peer_body)
        return json_response(200, merge_admin(req.method, req.path, views))


class _AdminHandler(http.server.BaseHTTPRequestHandler):
    """A worker's private admin port: its own (unmerged) ``/_emulator/...`` views, as JSON."""

    emulator: WorkerEmulator
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        # Plain HTTP on loopback, but the same token as the shared port: another local user
        # could find this port too.
        length = int(self.headers.get("content-length") or 0)
        request_body = self.rfile.read(length) if length else b""
        refused = refusal(self.headers.get("authorization"), self.emulator.admin_token)
        status, body = refused or self.emulator.admin_view(self.command, self.path, request_body)
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_DELETE = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def worker_main(stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
    """Entry point of a worker process (started by :class:`EmulatorWorkers`)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    config = json.loads(stdin.readline())
    index = int(config["index"])
    scenario = Scenario.from_dict(config["scenario"])
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    emu = WorkerEmulator(
        Path(config["state_dir"]),
        scenario=scenario,
        apns_port=int(config["apns_port"]),
        fcm_port=int(config["fcm_port"]),
        webpush_port=int(config["webpush_port"]),
        hms_port=int(config["hms_port"]),
        seed=config["seed"],
        host=config["host"],
        index=index,
        workers=int(config["workers"]),
        secret=bytes.fromhex(config["secret"]),
    )
    try:
        loop.run_until_complete(emu.astart())
    except OSError as exc:
        sys.stderr.write(f"pushctl emulator worker {index}: cannot listen: {exc}\n")
        raise SystemExit(2) from None
    handler = type("AdminHandler", (_AdminHandler,), {"emulator": emu})
    admin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    admin.daemon_threads = True
    threading.Thread(target=admin.serve_forever, name="emulator-admin", daemon=True).start()
    emu.own_admin_url = f"http://127.0.0.1:{admin.server_address[1]}"
    loop.add_signal_handler(signal.SIGTERM, loop.stop)

    def control() -> None:
        for line in stdin:
            message = json.loads(line)
            if "workers" in message:
                urls = [w["admin_url"] for w in message["workers"]]
                emu.peers = [u for u in urls if u != emu.own_admin_url]
                stdout.write(json.dumps({"peers": len(emu.peers)}) + "\n")
                stdout.flush()
        loop.call_soon_threadsafe(loop.stop)  # EOF: the parent stopped us or died

    ready = {"pid": os.getpid(), "admin_url": emu.own_admin_url, "balanced": emu.balanced}
    stdout.write(json.dumps(ready) + "\n")
    stdout.flush()
    threading.Thread(target=control, name="emulator-control", daemon=True).start()
    try:
        loop.run_forever()
        loop.run_until_complete(emu.astop())
    finally:
        admin.shutdown()
        admin.server_close()
        loop.close()


# -- the parent ---------------------------------------------------------------------------------


@dataclasses.dataclass
class WorkerInfo:
    """One running worker as the parent knows it."""

    index: int
    pid: int
    admin_url: str
    balanced: bool = False


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening ``SO_REUSEPORT`` socket holding ``port`` (0 = a free one) for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        # Refuse a port something else listens on (joining another process's group would be silent).
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class EmulatorWorkers:
    """``N`` emulator processes behind the same APNs and FCM ports, managed from this process.

    Same surface as :class:`Emulator` for the CLI (``start``/``stop``, URLs, ``ca_file``,
    ``write_profile``); the inbox and stats are read through the admin endpoints, merged.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        workers: int = 2,
        scenario: Scenario | None = None,
        apns_port: int = 0,
        fcm_port: int = 0,
        webpush_port: int = 0,
        hms_port: int = 0,
        seed: int | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.state_dir = Path(state_dir or default_emulator_state_dir()).resolve()
        self.scenario = scenario if scenario is not None else Scenario()
        self.n_workers = workers
        self.seed = seed if seed is not None else self.scenario.seed
        self.host = host
        self.start_timeout = start_timeout
        self._wanted_ports = (apns_port, fcm_port, webpush_port, hms_port)
        self.apns_port = 0
        self.fcm_port = 0
        self.webpush_port = 0
        self.hms_port = 0
        self.workers: list[WorkerInfo] = []
        self._procs: list[subprocess.Popen[str]] = []
        self.admin_token = ""
        """The admin endpoints' bearer token (the state dir's, set by :meth:`start`)."""

    # -- addresses (as Emulator) ----------------------------------------------------------------

    @property
    def apns_url(self) -> str:
        return f"https://{self.host}:{self.apns_port}"

    @property
    def fcm_url(self) -> str:
        return f"https://{self.host}:{self.fcm_port}"

    @property
    def webpush_url(self) -> str:
        return f"https://{self.host}:{self.webpush_port}"

    @property
    def hms_url(self) -> str:
        return f"https://{self.host}:{self.hms_port}"

    @property
    def token_uri(self) -> str:
        return self.fcm_url + "/token"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p in self._procs]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EmulatorWorkers:
        """Start the workers; returns once every one listens and knows its peers.

        Raises :class:`InputError` when a port cannot be used, ``RuntimeError`` when a worker fails.
        """
        make_private_dir(self.state_dir)
        ensure_certificates(self.state_dir)
        self.admin_token = ensure_admin_token(self.state_dir)  # before the workers read it
        reserved: list[socket.socket] = []
        try:
            for port in self._wanted_ports:
                try:
                    reserved.append(_reserve_port(self.host, port))
                except OSError as exc:
                    raise InputError(
                        f"cannot listen on {self.host}:{port}: {exc}",
                        hint="choose other ports with --apns-port / --fcm-port / --webpush-port / --hms-port",
                    ) from None
            ports = [int(s.getsockname()[1]) for s in reserved]
            self.apns_port, self.fcm_port, self.webpush_port, self.hms_port = ports
            self._spawn()
        except BaseException:
            self.stop()
            raise
        finally:
            for sock in reserved:
                sock.close()
        self._write_endpoints()
        return self

    def _spawn(self) -> None:
        secret = secrets.token_hex(32)
        scenario = dataclasses.asdict(self.scenario)
        code = "from pushctl.emulator.workers import worker_main; worker_main()"
        for index in range(self.n_workers):
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            self._procs.append(proc)
            config = {
                "index": index,
                "workers": self.n_workers,
                "state_dir": str(self.state_dir),
                "host": self.host,
                "apns_port": self.apns_port,
                "fcm_port": self.fcm_port,
                "webpush_port": self.webpush_port,
                "hms_port": self.hms_port,
                "seed": worker_seed(self.seed, index),
                "scenario": scenario,
                "secret": secret,
            }
            self._send(proc, config)
        deadline = time.monotonic() + self.start_timeout
        for index, proc in enumerate(self._procs):
            ready = self._receive(proc, deadline)
            self.workers.append(WorkerInfo(index, proc.pid, ready["admin_url"], bool(ready.get("balanced"))))
        roster = {"workers": [dataclasses.asdict(w) for w in self.workers]}
        for proc in self._procs:
            self._send(proc, roster)
        for proc in self._procs:
            self._receive(proc, deadline)

    @staticmethod
    def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except OSError:
            pass  # it died: _receive reports it

    @staticmethod
    def _receive(proc: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
        assert proc.stdout is not None
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
        line = proc.stdout.readline() if readable else ""
        if not line:
            if not readable:
                raise RuntimeError(f"emulator worker {proc.pid} did not start in time")
            code = proc.wait(5)
            raise RuntimeError(f"emulator worker {proc.pid} exited with status {code} while starting")
        message: dict[str, Any] = json.loads(line)
        return message

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker (EOF on stdin, then SIGTERM, then SIGKILL) and wait for them."""
        for proc in self._procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []
        path = self.state_dir / ENDPOINTS_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()

    def __enter__(self) -> EmulatorWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- files ------------------------------------------------------------------------------------

    def write_profile(self, config_path: Path, name: str = "emulator") -> Path:
        """Merge a profile for these workers into ``config_path`` (see :meth:`Emulator.write_profile`)."""
        return write_profile(
            config_path,
            name,
            ca_file=self.ca_file,
            apns_url=self.apns_url,
            fcm_url=self.fcm_url,
            token_uri=self.token_uri,
            webpush_url=self.webpush_url,
            hms_url=self.hms_url,
        )

    def _write_endpoints(self) -> None:
        info = {
            "apns_url": self.apns_url,
            "fcm_url": self.fcm_url,
            "token_uri": self.token_uri,
            "webpush_url": self.webpush_url,
            "hms_url": self.hms_url,
            "ca_file": str(self.ca_file),
            "service_account": str(write_service_account(self.state_dir, self.token_uri)),
            "pid": os.getpid(),
            "workers": [dataclasses.asdict(w) for w in self.workers],
        }
        write_private(self.state_dir / ENDPOINTS_FILE, json.dumps(info, indent=2) + "\n")

    def admin_headers(self) -> dict[str, str]:
        """The ``authorization`` header for the ``/_emulator/`` endpoints (after start)."""
        return admin_headers(self.admin_token)

    def admin(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        """Ask every worker's private admin port and merge: (status, JSON), like the shared port."""
        views = []
        for worker in self.workers:
            status, answer = _fetch(worker.admin_url, method, path, self.admin_token, body)
            if status != 200:
                return status, answer
            views.append(answer)
        return 200, merge_admin(method, path, views)
