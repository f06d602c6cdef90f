"""End-to-end throughput of ``pushctl trigger run``: events/s, CPU per event, peak RSS.

One rule fires per event (an immediate send rendered from the event and the device's columns);
the real CLI runs as a child process pinned to one core, the sink (nginx with HTTP/2 + TLS, from
``send_bench.py``) and the Redis server on the other:

    .venv/bin/python benchmarks/trigger_bench.py                   # 50,000 events, JSONL then Redis
    .venv/bin/python benchmarks/trigger_bench.py --events 100000 --source redis
    .venv/bin/python benchmarks/trigger_bench.py --profile         # cProfile the pushctl process

The device directory (10,000 users, one APNs device each) is imported before the clock starts;
what is timed is reading, journaling and acknowledging the events, applying the rule, rendering,
and sending. Results are JSON Lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from send_bench import last_line, machine_speed_us, nginx_sink, pinned, write_config  # noqa: E402

RULES = """\
name: bench
rules:
  ping:
    on: ping
    template:
      title: "{{ event.data.title }}"
      body: "Hi {{ name }}, {{ event.data.what }} is ready."
      data:
        deep_link: "example://items/{{ event.data.item }}"
"""


def write_inputs(tmp: Path, events: int, users: int) -> tuple[Path, Path, list[str]]:
    rng = random.Random(events)
    devices = tmp / "devices.csv"
    with devices.open("w") as fh:
        fh.write("token,platform,user_id,name\n")
        for i in range(users):
            fh.write(f"a{i:015x}{rng.getrandbits(192):048x},ios,u{i},User {i}\n")
    lines = []
    for i in range(events):
        lines.append(
            json.dumps(
                {
                    "id": f"e{i}",
                    "type": "ping",
                    "ts": 1_795_165_200 + i / 100,
                    "user_id": f"u{rng.randrange(users)}",
                    "data": {"title": "Your order", "what": f"order {i}", "item": i},
                }
            )
        )
    path = tmp / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return devices, path, lines


def start_redis(tmp: Path, core: int | None) -> tuple[subprocess.Popen[bytes], str]:
    from redis_support import free_port, server_binary

    port = free_port()
    cmd = [
        server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    proc = subprocess.Popen(pinned(cmd, core), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def run(tmp: Path, source: str, events: int, journal: Path, core: int | None, profile: Path | None) -> dict:
    for stale in journal.parent.glob(journal.name + "*"):
        stale.unlink()
    py = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []), "-m", "pushctl"]
    base = [*py, "--config", str(tmp / "config.toml"), "--output", "json"]
    subprocess.run(
        [*base, "devices", "import", str(tmp / "devices.csv"), "--journal", str(journal)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cmd = [
        *base,
        "trigger",
        "run",
        str(tmp / "rules.yaml"),
        "--events",
        source,
        "--journal",
        str(journal),
        "--max-events",
        str(events),
        "--clock",
        "events",
    ]
    out, err = tmp / "stdout.jsonl", tmp / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(pinned(cmd, core), stdout=stdout, stderr=stderr, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    summary = json.loads(last_line(out))
    delivered = summary.get("sent", {}).get("delivered")
    if code != 0 or delivered != events:
        sys.stderr.write(err.read_text()[-3000:])
        raise SystemExit(f"pushctl trigger run exited {code}, delivered {delivered} of {events}")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "source": source.split("?")[0].split(":")[0] if "://" in source else "jsonl",
        "events": events,
        "wall_s": round(wall, 2),
        "events_per_s_wall": round(events / wall),
        "events_per_s_run": summary["events_per_s"],
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "events_per_s_per_core": round(events / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "machine_sum1000_us": machine_speed_us(core),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", "-n", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--source", choices=["jsonl", "redis", "both"], default="both")
    parser.add_argument("--client-core", type=int, default=0, help="-1: do not pin")
    parser.add_argument("--sink-core", type=int, default=1, help="-1: do not pin")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument(
        "--profile", action="store_true", help="write a cProfile of pushctl to ./trigger.prof"
    )
    args = parser.parse_args()
    client = None if args.client_core < 0 else args.client_core
    sink_core = None if args.sink_core < 0 else args.sink_core
    with tempfile.TemporaryDirectory(prefix="pushctl-trigger-bench-") as name:
        tmp = Path(name)
        (tmp / "rules.yaml").write_text(RULES)
        _devices, events_path, lines = write_inputs(tmp, args.events, args.users)
        profile = Path("trigger.prof").resolve() if args.profile else None
        with nginx_sink(tmp / "nginx", sink_core) as sink:
            write_config(tmp / "config.toml", sink, args.concurrency)
            journal = tmp / "journal.sqlite3"
            if args.source in ("jsonl", "both"):
                print(
                    json.dumps(run(tmp, str(events_path), args.events, journal, client, profile)), flush=True
                )
            if args.source in ("redis", "both"):
                import redis

                proc, url = start_redis(tmp, sink_core)
                try:
                    r = redis.Redis.from_url(url)
                    for start in range(0, len(lines), 5000):
                        pipe = r.pipeline(transaction=False)
                        for line in lines[start : start + 5000]:
                            pipe.xadd("events", {"event": line})
                        pipe.execute()
                    r.close()
                    source = f"{url}?stream=events&group=bench&consumer=b1"
                    print(json.dumps(run(tmp, source, args.events, journal, client, profile)), flush=True)
                finally:
                    proc.terminate()
                    proc.wait()


if __name__ == "__main__":
    main()
