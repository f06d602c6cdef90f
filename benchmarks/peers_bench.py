"""pushctl against its Python peers, side by side: CPU per notification, rate and the ratios.

Every client sends to the same nginx HTTP/2 + TLS sink (``send_bench.py``'s), pinned to core 1,
while the client is pinned to core 0. Rounds alternate (pushctl APNs, aioapns, pushctl FCM,
firebase-admin, then again), so a machine that slows down during the sitting slows every client
alike; each client's figure is the median of the rounds::

    pip install -e '.[bench]'                       # aioapns, firebase-admin (not runtime deps)
    .venv/bin/python benchmarks/peers_bench.py      # 3 rounds: 100,000 pushctl, 100,000 aioapns,
                                                    # 20,000 firebase-admin per round
    .venv/bin/python benchmarks/peers_bench.py --rounds 1 -n 20000 --firebase 5000   # quick look

What each row is:

* **pushctl send, APNs / FCM**: the whole command, ``python -m pushctl --output json send
  template.yaml --audience a.csv --journal j.sqlite3`` (start-up, template load, audience read,
  rendering, journal on disk, one JSON result line per device on stdout), CPU from ``wait4``.
* **aioapns**: ``APNs(key=...).send_notification`` with 500 concurrent senders (the send loop
  only: CPU measured with ``time.process_time()`` around the loop, so imports and start-up are
  not counted), the same tokens and a payload personalised the same way, with a collapse id.
* **firebase-admin**: ``messaging.send_each_async`` in batches of 500 (its maximum), the send
  loop only, with a fixed access token (the OAuth exchange happens once per hour in real use).

The peers run on the standard asyncio loop, as their documentation shows them
(``--peer-loop uvloop`` runs them on uvloop instead); pushctl runs as installed (uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOPIC = "com.example.pushctl"


def _tokens(audience: Path) -> list[tuple[str, str, str]]:
    rows = []
    with audience.open() as fh:
        next(fh)
        for line in fh:
            token, _platform, name, user_id = line.rstrip("\n").split(",")
            rows.append((token, name, user_id))
    return rows


# ---- children: one peer's send loop, run in its own pinned process -----------------------------


async def _aioapns(args: argparse.Namespace) -> dict[str, Any]:
    import aioapns
    from aioapns.connection import APNsDevelopmentClientProtocol

    host, port = args.url.removeprefix("https://").rsplit(":", 1)
    APNsDevelopmentClientProtocol.APNS_SERVER = host
    APNsDevelopmentClientProtocol.APNS_PORT = int(port)
    import ssl

    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.set_alpn_protocols(["h2"])  # what aioapns's own default context sets; nginx needs it
    apns = aioapns.APNs(
        key=Path(args.key).read_text(), key_id=args.key_id, team_id=args.team_id, topic=TOPIC,
        use_sandbox=True, ssl_context=ctx,
    )
    rows = _tokens(Path(args.audience))
    it = iter(rows)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for token, name, user_id in it:
            message = {
                "aps": {
                    "alert": {
                        "title": f"Hello {name}",
                        "body": f"Your weekly summary is ready, {name}. Tap to see what changed.",
                    },
                    "badge": 1,
                    "sound": "default",
                },
                "deep_link": f"example://summary?user={user_id}",
            }
            request = aioapns.NotificationRequest(
                device_token=token, message=message, collapse_key="peers-bench",
                push_type=aioapns.PushType.ALERT,
            )
            result = await apns.send_notification(request)
            ok += result.is_successful

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    apns.pool.close()
    await asyncio.sleep(0.1)
    return {"sent": len(rows), "ok": ok, "loop_cpu_s": cpu, "loop_wall_s": wall}


async def _firebase(args: argparse.Namespace) -> dict[str, Any]:
    import firebase_admin
    import google.oauth2.credentials
    from firebase_admin import credentials, messaging

    class FixedToken(credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> Any:
            return google.oauth2.credentials.Credentials(token="bench-access-token")

    messaging._MessagingService.FCM_URL = args.url + "/v1/projects/{0}/messages:send"
    app = firebase_admin.initialize_app(FixedToken(), options={"projectId": "pushctl-emulator"})
    rows = _tokens(Path(args.audience))
    ok = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, len(rows), 500):
        batch = [
            messaging.Message(
                token=token,
                notification=messaging.Notification(
                    title=f"Hello {name}",
                    body=f"Your weekly summary is ready, {name}. Tap to see what changed.",
                ),
                data={"deep_link": f"example://summary?user={user_id}"},
                android=messaging.AndroidConfig(collapse_key="peers-bench"),
            )
            for token, name, user_id in rows[start : start + 500]
        ]
        response = await messaging.send_each_async(batch, app=app)
        ok += response.success_count
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"sent": len(rows), "ok": ok, "loop_cpu_s": cpu, "loop_wall_s": wall}


def child_main(args: argparse.Namespace) -> None:
    coro = _aioapns(args) if args.child == "aioapns" else _firebase(args)
    if args.peer_loop == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


# ---- parent ------------------------------------------------------------------------------------


def run_peer(
    kind: str, sink: Any, audience: Path, core: int | None, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    from send_bench import pinned
    from send_bench import registry as reg

    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", kind,
        "--url", sink.apns_url, "--ca", str(sink.ca_file), "--audience", str(audience),
        "--key", str(reg.SAMPLE_APNS_KEY), "--key-id", reg.SAMPLE_KEY_ID, "--team-id", reg.SAMPLE_TEAM_ID,
        "--concurrency", str(args.concurrency), "--peer-loop", args.peer_loop,
    ]
    out_file, err_file = audience.with_suffix(".out"), audience.with_suffix(".err")
    with out_file.open("wb") as stdout, err_file.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(pinned(cmd, core), stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    out, err = out_file.read_text(), err_file.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(err[-3000:])
        raise SystemExit(f"{kind} child failed")
    data = json.loads(out.strip().splitlines()[-1])
    if data["ok"] != data["sent"]:
        raise SystemExit(f"{kind}: only {data['ok']} of {data['sent']} succeeded")
    n = data["sent"]
    return {
        "client": kind,
        "devices": n,
        "cpu_us_per_notification": round(data["loop_cpu_s"] / n * 1e6, 1),
        "per_s": round(n / data["loop_wall_s"]),
        "process_cpu_us_per_notification": round((usage.ru_utime + usage.ru_stime) / n * 1e6, 1),
        "process_wall_s": round(wall, 2),
    }


def run_pushctl(provider: str, tmp: Path, devices: int, core: int | None) -> dict[str, Any]:
    from send_bench import run_send

    row = run_send(tmp, provider, devices, tmp / "journal.sqlite3", core, None, [])
    return {
        "client": f"pushctl-{provider}",
        "devices": devices,
        "cpu_us_per_notification": row["cpu_us_per_notification"],
        "per_s": row["per_s_wall"],
        "per_s_send": row["per_s_send"],
        "peak_rss_mb": row["peak_rss_mb"],
        "machine_sum1000_us": row["machine_sum1000_us"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--devices", "-n", type=int, default=100_000, help="pushctl and aioapns per round")
    parser.add_argument("--firebase", type=int, default=20_000, help="firebase-admin messages per round")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--peer-loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--client-core", type=int, default=0)
    parser.add_argument("--sink-core", type=int, default=1)
    parser.add_argument("--only", default="pushctl-apns,aioapns,pushctl-fcm,firebase-admin")
    # child mode (internal)
    parser.add_argument("--child", choices=["aioapns", "firebase-admin"], help=argparse.SUPPRESS)
    for name in ("--url", "--ca", "--audience", "--key", "--key-id", "--team-id"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    sys.path.insert(0, str(HERE))
    from send_bench import TEMPLATE, nginx_sink, write_audience, write_config

    client_core = None if args.client_core < 0 else args.client_core
    sink_core = None if args.sink_core < 0 else args.sink_core
    only = args.only.split(",")
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in only}
    tmp = Path(tempfile.mkdtemp(prefix="pushctl-peers-", dir=os.environ.get("BENCH_TMP")))
    try:
        (tmp / "template.yaml").write_text(TEMPLATE)
        with nginx_sink(tmp, sink_core) as sink:
            write_config(tmp / "config.toml", sink, args.concurrency)
            apns_aud = tmp / f"audience-apns-{args.devices}.csv"
            write_audience(apns_aud, args.devices, "apns")
            fcm_aud = tmp / f"audience-fcm-{args.firebase}.csv"
            write_audience(fcm_aud, args.firebase, "fcm")
            env = dict(os.environ, SSL_CERT_FILE=str(sink.ca_file))
            for rnd in range(1, args.rounds + 1):
                for name in only:
                    if name == "pushctl-apns":
                        row = run_pushctl("apns", tmp, args.devices, client_core)
                    elif name == "pushctl-fcm":
                        row = run_pushctl("fcm", tmp, args.devices, client_core)
                    elif name == "aioapns":
                        row = run_peer("aioapns", sink, apns_aud, client_core, args, env)
                    else:
                        row = run_peer("firebase-admin", sink, fcm_aud, client_core, args, env)
                    row["round"] = rnd
                    rows[name].append(row)
                    print(json.dumps(row), flush=True)
        from send_bench import machine_speed_us

        yardstick = machine_speed_us(client_core)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    med = {
        name: (
            statistics.median(r["cpu_us_per_notification"] for r in rs),
            statistics.median(r["per_s"] for r in rs),
        )
        for name, rs in rows.items()
        if rs
    }
    print(f"\nmedians of {args.rounds} alternating rounds (machine yardstick sum(range(1000)) = "
          f"{yardstick} µs; peers on {args.peer_loop}):")
    print("| client | CPU µs / notification | rate |")
    print("| --- | ---: | ---: |")
    for name, (cpu, rate) in med.items():
        print(f"| {name} | {cpu:.0f} | {rate:,.0f}/s |")
    for mine, peer in (("pushctl-apns", "aioapns"), ("pushctl-fcm", "firebase-admin")):
        if mine in med and peer in med:
            print(f"{mine} / {peer} CPU per notification: {med[mine][0] / med[peer][0]:.3f}")


if __name__ == "__main__":
    main()
