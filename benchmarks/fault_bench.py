"""The sender on a bad day: ``pushctl send`` through injected faults, side by side with a clean run,
and against a project-wide quota.

    .venv/bin/python benchmarks/fault_bench.py                    # defect 5's faults vs none, then quota
    .venv/bin/python benchmarks/fault_bench.py --only faults --runs 3   # alternate clean/faulty 3 times
    .venv/bin/python benchmarks/fault_bench.py --only quota --quota 500 --quota-devices 15000
    .venv/bin/python benchmarks/fault_bench.py --sink thread      # the emulator in this process instead

**Faults** (issue 11, defect 5): 7% 429 + 7% 503 + 6% 500 answers (all ``Retry-After: 1``), a
GOAWAY every 5,000 streams and 0.2% of requests dropping their whole connection, on both APNs and
FCM; 20,000 devices, half APNs, half FCM, interleaved. The **clean** run is the same command
against the same emulator without faults.

**Quota**: an FCM-only audience against an emulator that allows ``R`` messages per second per
project (``fcm_quota_per_second``; 429 ``QUOTA_EXCEEDED`` with ``Retry-After`` above it) and no
other fault. The achieved rate is the number of devices delivered per second (their ``settled_at``
in the journal), reported per second and as the mean over the second half of the time it took to
deliver 90% of the audience ("settled": the drain at the end, when only devices waiting for a
retry are left, is not the pace).

Both are the real CLI (``python -m pushctl send``, journal on disk) in a child process pinned to
core 0. The sink (``--sink process``, the default) is ``pushctl emulator run --scenario ...`` in
its own process pinned to core 1, as a user runs it; ``--sink thread`` runs the emulator in this
process instead. Afterwards the emulator's inbox must hold every token, and the summary must show
0 ``failed``. Reported: wall time and devices/s, CPU of pushctl and of the emulator, retries,
provider-wide pauses (the ``pausing`` lines on stderr), duplicate deliveries (requests delivered
whose answer was lost with a dropped connection) and the requests the emulator answered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import tomli_w

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pushctl.emulator import (  # noqa: E402
    Emulator,
    Scenario,
    admin_headers,
    client_context,
    read_admin_token,
)

TEMPLATE = """\
title: "Hello {{ name }}"
body: "Your weekly summary is ready, {{ name }}."
badge: 1
data:
  deep_link: "example://summary?user={{ user_id }}"
"""

FAULTS: dict[str, Any] = {
    "goaway_after": 5000,
    "drop_rate": 0.002,
    "errors": [
        {"status": 429, "rate": 0.07, "retry_after": 1},
        {"status": 503, "rate": 0.07, "retry_after": 1},
        {"status": 500, "rate": 0.06, "retry_after": 1},
    ],
}
_FCM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def write_audience(path: Path, n: int, *, mixed: bool) -> list[str]:
    """``n`` distinct tokens (APNs and FCM alternating when ``mixed``, else all FCM)."""
    rng = random.Random(n)
    tokens = []
    with path.open("w") as fh:
        fh.write("token,platform,name,user_id\n")
        for i in range(n):
            if mixed and i % 2 == 0:
                token, platform = f"a{i:015x}{rng.getrandbits(192):048x}", "ios"
            else:
                token = f"f{i:010d}:APA91b{''.join(rng.choices(_FCM_CHARS, k=130))}"
                platform = "android"
            tokens.append(token)
            fh.write(f"{token},{platform},User {i},u{i}\n")
    return tokens


def pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class ThreadSink:
    """The emulator in this process (one thread): its inbox and stats are read directly."""

    def __init__(self, tmp: Path, options: dict[str, Any], seed: int) -> None:
        self.emu = Emulator(tmp / "emu", scenario=Scenario(), seed=seed, **options)

    def __enter__(self) -> ThreadSink:
        self.emu.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emu.stop()

    def write_profile(self, config: Path) -> None:
        self.emu.write_profile(config)

    def cpu(self) -> float:
        return time.process_time()

    def inbox_counts(self) -> dict[str, int]:
        return {token: self.emu.inbox.count(token) for token in self.emu.inbox.tokens()}

    def stats(self) -> dict[str, Any]:
        return self.emu.stats()


class ProcessSink:
    """``pushctl emulator run --scenario`` in its own process, read through its admin endpoints."""

    def __init__(self, tmp: Path, options: dict[str, Any], seed: int, core: int | None) -> None:
        self.state = tmp / f"emu-{seed}-{len(options)}"
        self.scenario = tmp / "scenario.toml"
        faults = {k: v for k, v in options.items() if k in ("goaway_after", "drop_rate", "errors")}
        opts = {k: v for k, v in options.items() if k not in faults}
        self.scenario.write_text(tomli_w.dumps({"seed": seed, "options": opts, "faults": faults}))
        self.cmd = pinned([sys.executable, "-m", "pushctl", "emulator", "run", "--state-dir", str(self.state),
                           "--scenario", str(self.scenario), "--no-profile"], core)
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> ProcessSink:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoints = self.state / "endpoints.json"
        deadline = time.monotonic() + 30
        while not endpoints.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the emulator did not start")
            time.sleep(0.05)
        self.info = json.loads(endpoints.read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def write_profile(self, config: Path) -> None:
        from pushctl.emulator.emulator import write_profile

        write_profile(config, "emulator", ca_file=Path(self.info["ca_file"]), apns_url=self.info["apns_url"],
                      fcm_url=self.info["fcm_url"], token_uri=self.info["token_uri"])

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def _admin(self, path: str) -> Any:
        headers = admin_headers(read_admin_token(self.state))
        with httpx.Client(http2=True, verify=client_context(Path(self.info["ca_file"])), timeout=60) as c:
            return c.get(self.info["fcm_url"] + path, headers=headers).json()

    def inbox_counts(self) -> dict[str, int]:
        return dict(self._admin("/_emulator/inbox")["counts"])

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("/_emulator/stats"))


def run_send(tmp: Path, audience: Path, *, core: int | None, extra: list[str]) -> dict[str, Any]:
    journal = tmp / "journal.sqlite3"
    for stale in tmp.glob("journal.sqlite3*"):
        stale.unlink()
    out, err = tmp / "stdout.jsonl", tmp / "stderr.txt"
    cmd = [sys.executable, "-m", "pushctl", "--config", str(tmp / "config.toml"), "--output", "json",
           "send", str(tmp / "template.yaml"), "--audience", str(audience), "--journal", str(journal),
           "--show", "none", *extra]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(pinned(cmd, core), stdout=stdout, stderr=stderr, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    lines = out.read_text().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    if summary.get("type") != "summary":
        sys.stderr.write(err.read_text()[-3000:])
        raise SystemExit(f"pushctl send exited {returncode} without a summary")
    pause_lines = [line for line in err.read_text().splitlines() if "pausing" in line]
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute("SELECT settled_at FROM devices WHERE outcome = 'delivered'")
        settled = sorted(t for (t,) in rows)
    return {"exit": returncode, "wall": wall, "summary": summary, "pauses": len(pause_lines),
            "pause_lines": pause_lines[:5], "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "settled": settled}


@contextlib.contextmanager
def sink_for(kind: str, tmp: Path, options: dict[str, Any], seed: int, core: int | None) -> Iterator[Any]:
    sink = ProcessSink(tmp, options, seed, core) if kind == "process" else ThreadSink(tmp, options, seed)
    with sink:
        yield sink


def one_run(tmp: Path, audience: Path, tokens: list[str], options: dict[str, Any], *, sink_kind: str,
            seed: int, core: int | None, extra: list[str]) -> dict[str, Any]:
    sink_core = None if core is None else 1 - core
    with sink_for(sink_kind, tmp, options, seed, sink_core) as sink:
        sink.write_profile(tmp / "config.toml")
        before = sink.cpu()
        result = run_send(tmp, audience, core=core, extra=extra)
        result["emulator_cpu_s"] = round(sink.cpu() - before, 2)
        counts = sink.inbox_counts()
        stats = sink.stats()
    result["missing"] = sum(1 for t in tokens if not counts.get(t))
    result["duplicates"] = sum(counts.values()) - sum(1 for n in counts.values() if n)
    result["requests"] = sum(n for side in ("apns", "fcm") for n in stats[side].values())
    result["quota_answers"] = stats["fcm"].get("429", 0)
    return result


def milestones(settled: list[float]) -> list[float]:
    """Seconds from the first delivery until 50%, 99% and 100% of them: the main body of the run,
    and its tail of retries."""
    if not settled:
        return []
    last = len(settled) - 1
    return [round(settled[min(last, int(len(settled) * q))] - settled[0], 2) for q in (0.5, 0.99, 1.0)]


def per_second(settled: list[float]) -> tuple[list[int], float]:
    """Deliveries in each second of the run, and the second by which 90% were delivered."""
    if not settled:
        return [], 0.0
    start = settled[0]
    counts = Counter(int(t - start) for t in settled)
    return [counts[i] for i in range(max(counts) + 1)], settled[int(len(settled) * 0.9)] - start


def describe(name: str, devices: int, r: dict[str, Any]) -> dict[str, Any]:
    s = r["summary"]
    return {
        "run": name, "devices": devices, "exit": r["exit"], "wall_s": round(r["wall"], 2),
        "per_s_wall": round(devices / r["wall"]), "client_cpu_s": r["client_cpu_s"],
        "emulator_cpu_s": r["emulator_cpu_s"], "delivered": s["outcomes"]["delivered"],
        "failed": s["outcomes"]["failed"], "retries": s["retries"], "pauses": r["pauses"],
        "missing_in_inbox": r["missing"], "duplicate_deliveries": r["duplicates"], "requests": r["requests"],
        "first_delivery_to_50_99_100_pct_s": milestones(r["settled"]), "pause_lines": r["pause_lines"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", "-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1, help="clean/faulty pairs, alternating")
    parser.add_argument("--quota", type=int, default=500, help="R: FCM messages/s allowed per project")
    parser.add_argument("--quota-devices", type=int, default=15_000)
    parser.add_argument("--only", choices=["faults", "quota", "both"], default="both")
    parser.add_argument("--sink", choices=["process", "thread"], default="process")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--client-core", type=int, default=0, help="-1: do not pin")
    parser.add_argument("--send-arg", action="append", default=[],
                        help="extra `pushctl send` argument for every run (repeatable), "
                        "e.g. --send-arg=--max-connections=8")
    args = parser.parse_args()
    core = None if args.client_core < 0 else args.client_core
    two_cores = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    if args.sink == "thread" and core is not None and two_cores:
        os.sched_setaffinity(0, {1 - core})  # the emulator's thread: the other core
    with tempfile.TemporaryDirectory(prefix="fault-bench-") as name:
        tmp = Path(name)
        (tmp / "template.yaml").write_text(TEMPLATE)
        extra = list(args.send_arg)
        if core is not None and not any(a.startswith("--workers") for a in extra):
            extra += ["--workers", "1"]  # pinned to one core: one process (default: one per core)
        common = {"sink_kind": args.sink, "core": core, "extra": extra}
        if args.only in ("faults", "both"):
            audience = tmp / "mixed.csv"
            tokens = write_audience(audience, args.devices, mixed=True)
            rows = []
            for i in range(args.runs):
                for label, options in (("clean", {}), ("faults", FAULTS)):
                    r = one_run(tmp, audience, tokens, options, seed=args.seed + i, **common)
                    rows.append(describe(label, args.devices, r))
                    print(json.dumps(rows[-1]), flush=True)
            clean = sum(r["wall_s"] for r in rows if r["run"] == "clean")
            faulty = sum(r["wall_s"] for r in rows if r["run"] == "faults")
            print(json.dumps({"faulty_vs_clean_throughput": round(clean / faulty, 3)}))
        if args.only in ("quota", "both"):
            audience = tmp / "fcm.csv"
            tokens = write_audience(audience, args.quota_devices, mixed=False)
            r = one_run(tmp, audience, tokens, {"fcm_quota_per_second": args.quota}, seed=args.seed, **common)
            seconds, t90 = per_second(r["settled"])
            half = seconds[int(t90 / 2) : int(t90)] or seconds
            settled = sum(half) / len(half) if half else 0.0
            row = describe(f"quota {args.quota}/s", args.quota_devices, r)
            row.update({"per_second": seconds, "settled_per_s": round(settled, 1),
                        "settled_vs_quota": round(settled / args.quota, 3),
                        "quota_answers": r["quota_answers"]})
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
