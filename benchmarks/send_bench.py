"""End-to-end throughput of ``pushctl send``: notifications/s, CPU per notification, peak RSS.

Runs the real CLI (``python -m pushctl send``) as a child process pinned to one core, against a
local HTTP/2 + TLS sink pinned to the other core, once per provider (APNs, then FCM):

    .venv/bin/python benchmarks/send_bench.py                      # 100,000 each, nginx sink
    .venv/bin/python benchmarks/send_bench.py --devices 1000000 --provider apns
    .venv/bin/python benchmarks/send_bench.py --sink emulator      # `pushctl emulator run` as the sink
    .venv/bin/python benchmarks/send_bench.py --sink emulator --emulator-workers 2 --sink-core -1
    .venv/bin/python benchmarks/send_bench.py --journal shm        # journal in /dev/shm (overhead check)
    .venv/bin/python benchmarks/send_bench.py --profile            # cProfile the pushctl process
    .venv/bin/python benchmarks/send_bench.py --py-spy /tmp/s.txt --provider apns  # sampled profile
    .venv/bin/python benchmarks/send_bench.py --workers 1,2 --repeat 3 -n 200000 --provider apns
                                                  # --workers 1 vs 2, alternating, nothing pinned

Sinks:

* ``nginx`` (default): nginx with HTTP/2 + TLS, configured in a temp dir with a throwaway CA and
  server certificate; it answers ``POST /3/device/<token>`` with 200 + ``apns-id``, FCM sends with
  ``{"name": ...}`` and the OAuth token exchange with a fixed access token. Installed with
  ``apt-get install -y nginx`` if it is missing (needs root). A C sink that is not the bottleneck.
* ``emulator``: ``pushctl emulator run`` in its own process (every request fully checked and
  recorded in its inbox), so it measures the emulator as much as the client. With
  ``--emulator-workers N`` it runs ``--workers N`` and a scenario lowering the stream limit so that
  pushctl opens 2N connections (the kernel spreads connections, not requests, over the workers).
  Rows then also report the emulator's CPU per request (all its processes, from ``/proc``).

What is measured is the pushctl process only: CPU time (user + system, from ``wait4``'s rusage,
i.e. the child's ``process_time``), peak RSS (``ru_maxrss``), wall time of the whole command
(start-up, template load and audience read included) and the send rate the command itself reports
in its JSON summary. Results go to stdout as JSON Lines, which the benchmark writes to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pushctl.emulator import registry  # noqa: E402
from pushctl.emulator.tls import ensure_certificates  # noqa: E402

TEMPLATE = """\
title: "Hello {{ name }}"
body: "Your weekly summary is ready, {{ name }}. Tap to see what changed."
badge: 1
sound: default
data:
  deep_link: "example://summary?user={{ user_id }}"
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    http2_max_concurrent_streams 1000;
    client_body_buffer_size 16k;
    # Like APNs, echo the request's apns-id (aioapns matches answers by it), else make one up.
    map $http_apns_id $apns_id {{ "" $request_id; default $http_apns_id; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location /3/device/ {{
            add_header apns-id $apns_id always;
            return 200;
        }}
        location /token {{
            default_type application/json;
            return 200 '{{"access_token":"bench-access-token","expires_in":3600,"token_type":"Bearer"}}';
        }}
        location /v1/ {{
            default_type application/json;
            return 200 '{{"name":"projects/pushctl-emulator/messages/0:$request_id"}}';
        }}
    }}
}}
"""


@dataclass
class Sink:
    apns_url: str
    fcm_url: str
    token_uri: str
    ca_file: Path
    pids: tuple[int, ...] = ()
    """Processes whose CPU is the sink's (the emulator and its workers)."""


def cpu_seconds(pids: tuple[int, ...]) -> float:
    """User + system CPU of ``pids`` so far (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"sink did not listen on port {port}")


def ensure_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path:
        return path
    print("nginx not found: apt-get install -y nginx", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "nginx"], check=True, stdout=subprocess.DEVNULL)
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise SystemExit("nginx could not be installed; use --sink emulator")
    return path


@contextlib.contextmanager
def nginx_sink(tmp: Path, core: int | None) -> Iterator[Sink]:
    certs = ensure_certificates(tmp / "tls")
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, port=port, cert=certs.server_cert, key=certs.server_key)
    )
    cmd = [ensure_nginx(), "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")]
    proc = subprocess.Popen(pinned(cmd, core), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        url = f"https://127.0.0.1:{port}"
        yield Sink(url, url, url + "/token", certs.ca_cert)
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def emulator_sink(tmp: Path, core: int | None, workers: int = 1, concurrency: int = 500) -> Iterator[Sink]:
    state = tmp / "emulator"
    cmd = [sys.executable, "-m", "pushctl", "emulator", "run", "--state-dir", str(state), "--no-profile"]
    if workers > 1:
        scenario = tmp / "scenario.toml"
        streams = max(1, -(-concurrency // (2 * workers)))
        scenario.write_text(f"[options]\nmax_concurrent_streams = {streams}\n")
        cmd += ["--workers", str(workers), "--scenario", str(scenario)]
    proc = subprocess.Popen(pinned(cmd, core), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoints = state / "endpoints.json"
        deadline = time.monotonic() + 30
        while not endpoints.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the emulator did not start")
            time.sleep(0.05)
        info = json.loads(endpoints.read_text())
        pids = (proc.pid, *(int(w["pid"]) for w in info.get("workers", [])))
        yield Sink(info["apns_url"], info["fcm_url"], info["token_uri"], Path(info["ca_file"]), pids)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def write_config(path: Path, sink: Sink, concurrency: int) -> None:
    path.write_text(
        f"""\
default_profile = "bench"

[profiles.bench]
ca_file = "{sink.ca_file}"

[profiles.bench.apns]
environment = "sandbox"
endpoint = "{sink.apns_url}"
key_file = "{registry.SAMPLE_APNS_KEY}"
key_id = "{registry.SAMPLE_KEY_ID}"
team_id = "{registry.SAMPLE_TEAM_ID}"
topic = "{registry.SAMPLE_TOPIC}"

[profiles.bench.fcm]
service_account = "{registry.SAMPLE_SERVICE_ACCOUNT}"
endpoint = "{sink.fcm_url}"
token_uri = "{sink.token_uri}"

[profiles.bench.sender]
concurrency = {concurrency}
"""
    )


_FCM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


TOKENS = "random"  # or "sorted": --tokens


def write_audience(path: Path, n: int, provider: str, tokens: str = "random") -> None:
    """``n`` distinct, valid-looking tokens: 64-hex APNs tokens or 152-char FCM tokens.

    ``random`` tokens are like real ones; ``sorted`` ones (a counter first) land in the journal's
    B-trees in order, which hides the cost of journaling a real audience (see benchmarks/README).
    """
    rng = random.Random(n)
    with path.open("w") as fh:
        fh.write("token,platform,name,user_id\n")
        rows = []
        for i in range(n):
            if provider == "apns":
                head = f"{i:015x}" if tokens == "sorted" else f"{rng.getrandbits(60):015x}"
                token = f"a{head}{rng.getrandbits(192):048x}"  # "a": never a test-token prefix
                platform = "ios"
            else:
                tail = "".join(rng.choices(_FCM_CHARS, k=130))
                head = f"{i:010d}" if tokens == "sorted" else f"{rng.getrandbits(32):010d}"
                token = f"f{head}:APA91b{tail}"
                platform = "android"
            rows.append(f"{token},{platform},User {i},u{i}\n")
            if len(rows) == 10_000:
                fh.writelines(rows)
                rows.clear()
        fh.writelines(rows)


def last_line(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        lines = [line for line in fh.read().splitlines() if line.startswith(b"{")]  # not py-spy's
    return lines[-1].decode() if lines else ""


def machine_speed_us(core: int | None) -> float:
    """Best time of ``sum(range(1000))`` in µs on the client core: a yardstick for the machine.

    The shared VM's speed varies from day to day (seen: the same commit at ~200 µs CPU per
    notification one week and ~700 µs another), so every result carries it and runs are only
    compared at a similar yardstick.
    """
    code = "import timeit; print(min(timeit.repeat('sum(range(1000))', number=2000, repeat=7)) / 2000 * 1e6)"
    cmd = pinned([sys.executable, "-c", code], core)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return round(float(out.stdout), 1)


def run_send(
    tmp: Path, provider: str, devices: int, journal: Path, core: int | None, profile: Path | None,
    extra: list[str], pyspy: Path | None = None,
) -> dict[str, float | int | str]:
    audience = tmp / f"audience-{provider}-{devices}-{TOKENS}.csv"
    if not audience.exists():
        write_audience(audience, devices, provider, TOKENS)
    for stale in journal.parent.glob(journal.name + "*"):
        stale.unlink()
    out = tmp / "stdout.jsonl"
    err = tmp / "stderr.txt"
    py = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "pushctl"]
    if pyspy is not None:  # sampled at 250 Hz; idle time (waiting for the sink) is not sampled
        spy = Path(sys.executable).with_name("py-spy")
        py = [str(spy), "record", "--format", "raw", "-r", "250", "-o", str(pyspy), "--", *py]
    cmd = [
        *py,
        "--config", str(tmp / "config.toml"),
        "--output", "json",
        "send", str(tmp / "template.yaml"),
        "--audience", str(audience),
        "--journal", str(journal),
        *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="0")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(pinned(cmd, core), stdout=stdout, stderr=stderr, env=env, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(err.read_text()[-3000:])
        sys.stderr.write(last_line(out)[:3000] + "\n")
        raise SystemExit(f"pushctl send exited {code}")
    summary = json.loads(last_line(out))
    out.unlink()
    delivered = int(summary["outcomes"]["delivered"])
    if delivered != devices:
        raise SystemExit(f"only {delivered} of {devices} delivered: {summary}")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "provider": provider,
        "devices": devices,
        "wall_s": round(wall, 2),
        "per_s_wall": round(devices / wall),
        "per_s_send": round(float(summary["throughput_per_s"])),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_notification": round(cpu / devices * 1e6, 1),
        "per_s_per_core": round(devices / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "machine_sum1000_us": machine_speed_us(core),
    }


def compare_workers(args: argparse.Namespace, tmp: Path, providers: list[str], journal: Path) -> None:
    """``--workers 1,2``: each value once per round, rounds alternating, the load noted each run;
    the median rate of each value against the first's (the machine is shared: medians of
    alternating runs, not one lucky run)."""
    counts = [int(n) for n in args.workers.split(",")]
    for provider in providers:
        rates: dict[int, list[float]] = {n: [] for n in counts}
        for _round in range(args.repeat):
            for n in counts:
                load = os.getloadavg()[0]
                extra = [*args.extra, "--workers", str(n)]
                row = run_send(tmp, provider, args.devices, journal, None, None, extra)
                row |= {"sink": args.sink, "workers": n, "load_1m_before": round(load, 2),
                        "load_1m_after": round(os.getloadavg()[0], 2)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rates[n].append(float(row["per_s_send"]))
        base = sorted(rates[counts[0]])[len(rates[counts[0]]) // 2]
        for n in counts:
            median = sorted(rates[n])[len(rates[n]) // 2]
            print(
                f"{provider}: --workers {n}: median {median:,.0f}/s while sending "
                f"(runs: {', '.join(f'{r:,.0f}' for r in rates[n])}) = "
                f"{median / base:.2f}x --workers {counts[0]}",
                file=sys.stderr,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", "-n", type=int, default=100_000, help="notifications per provider")
    parser.add_argument("--provider", choices=["apns", "fcm", "both"], default="both")
    parser.add_argument("--sink", choices=["nginx", "emulator"], default="nginx")
    parser.add_argument(
        "--emulator-workers", type=int, default=1,
        help="with --sink emulator: `pushctl emulator run --workers N` (pair with --sink-core -1)",
    )
    parser.add_argument(
        "--journal", choices=["disk", "shm"], default="disk",
        help="journal on the temp dir's disk, or in /dev/shm (to measure the journal's cost)",
    )
    parser.add_argument("--concurrency", type=int, default=500, help="requests in flight")
    parser.add_argument("--client-core", type=int, default=0, help="core for pushctl (-1: no pinning)")
    parser.add_argument("--sink-core", type=int, default=1, help="core for the sink (-1: no pinning)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per provider (best is reported)")
    parser.add_argument("--profile", action="store_true", help="cProfile pushctl; print the top functions")
    parser.add_argument("--py-spy", type=Path, help="sample pushctl with py-spy into this file "
                        "(collapsed stacks; see profile_buckets.py); CPU figures then include py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--workers", default="",
        help="compare `send --workers N` values, e.g. 1,2: alternating runs in one sitting, nothing "
        "pinned (the workers need every core); prints the rate of each against the first",
    )
    parser.add_argument(
        "--tokens", choices=["random", "sorted"], default="random",
        help="random tokens, like a real audience; sorted ones (a counter first) journal in order, cheaper",
    )
    parser.add_argument("extra", nargs="*", help="extra `pushctl send` options (after --)")
    args = parser.parse_args()
    global TOKENS
    TOKENS = args.tokens
    client_core = None if args.client_core < 0 else args.client_core
    sink_core = None if args.sink_core < 0 else args.sink_core
    if args.workers:
        client_core = sink_core = None  # N workers on N cores: pinning would serialise them
    providers = ["apns", "fcm"] if args.provider == "both" else [args.provider]

    tmp = Path(tempfile.mkdtemp(prefix="pushctl-bench-", dir=os.environ.get("BENCH_TMP")))
    try:
        (tmp / "template.yaml").write_text(TEMPLATE)
        sink_cm = (
            nginx_sink(tmp, sink_core)
            if args.sink == "nginx"
            else emulator_sink(tmp, sink_core, args.emulator_workers, args.concurrency)
        )
        with sink_cm as sink:
            write_config(tmp / "config.toml", sink, args.concurrency)
            if args.journal == "shm":
                shm = Path(tempfile.mkdtemp(prefix="pushctl-bench-", dir="/dev/shm"))
                journal = shm / "journal.sqlite3"
            else:
                shm = None
                journal = tmp / "journal.sqlite3"
            try:
                if args.workers:
                    compare_workers(args, tmp, providers, journal)
                    return
                for provider in providers:
                    best: dict[str, float | int | str] | None = None
                    for _ in range(args.repeat):
                        prof = tmp / f"{provider}.prof" if args.profile else None
                        sink_cpu = cpu_seconds(sink.pids)
                        row = run_send(tmp, provider, args.devices, journal, client_core, prof, args.extra,
                                       args.py_spy)
                        row |= {"sink": args.sink, "journal": args.journal}
                        if sink.pids:
                            used = cpu_seconds(sink.pids) - sink_cpu
                            row |= {
                                "sink_workers": args.emulator_workers,
                                "sink_cpu_s": round(used, 2),
                                "sink_cpu_us_per_request": round(used / args.devices * 1e6, 1),
                                "sink_per_s_per_core": round(args.devices / used) if used else 0,
                            }
                        print(json.dumps(row), flush=True)
                        if best is None or float(row["per_s_wall"]) > float(best["per_s_wall"]):
                            best = row
                        if prof is not None:
                            import pstats

                            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
                    assert best is not None
                    print(
                        f"{provider}: {best['devices']:,} notifications in {best['wall_s']} s = "
                        f"{best['per_s_wall']:,}/s ({best['per_s_send']:,}/s while sending), "
                        f"{best['cpu_us_per_notification']} µs CPU each "
                        f"({best['per_s_per_core']:,}/s per core), "
                        f"peak RSS {best['peak_rss_mb']} MB; machine yardstick "
                        f"sum(range(1000)) = {best['machine_sum1000_us']} µs",
                        file=sys.stderr,
                    )
            finally:
                if shm is not None:
                    shutil.rmtree(shm, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
