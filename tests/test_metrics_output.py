"""Metrics a monitoring stack reads: `--metrics-file` (parsed with prometheus_client's own text
parser) holds the counts of the run's summary; `trigger run --metrics-port` serves /metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_resume_support import Pushctl, emulator, make_audience, send_argv, write_template
from trigger_support import directory_csv, event, events_file, fcm, invoke, ios

from pushctl.metrics import LATENCY_BUCKETS, RunMetrics, Tally
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return found


def _by_outcome(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for labels, value in samples.get("pushctl_notifications_total", []):
        counts[labels["outcome"]] = counts.get(labels["outcome"], 0) + int(value)
    return counts


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    [(_labels, value)] = samples[name]
    return value


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_file_holds_the_counts_of_the_summary(tmp_path: Path, workers: str) -> None:
    audience = make_audience(tmp_path / "audience.csv", 300, dead=3)
    template = write_template(tmp_path / "template.yaml")
    prom = tmp_path / "textfile" / "pushctl.prom"
    prom.parent.mkdir()
    old = os.umask(0o022)
    try:
        with emulator(tmp_path / "emu") as emu:
            cfg = emu.write_profile(tmp_path / "config.toml")
            argv = send_argv(cfg, template, audience.path, tmp_path / "j.sqlite3", "--workers", workers,
                             "--metrics-file", str(prom), "--shard", "0/1")  # fmt: skip
            done = Pushctl(argv, tmp_path, "send").wait()
    finally:
        os.umask(old)
    assert done.code == 1, done.stderr  # 6 invalid tokens
    summary = [json.loads(line) for line in done.stdout.splitlines()][-1]
    samples = _samples(prom.read_text())
    counts = _by_outcome(samples)
    assert counts == {k: v for k, v in summary["this_run"].items() if v}
    assert counts == {k: v for k, v in summary["outcomes"].items() if v}
    assert counts["invalid_token"] == 6 and sum(counts.values()) == 300
    reasons = {labels["reason"] for labels, _ in samples["pushctl_notifications_total"]}
    assert reasons == {"", "Unregistered", "UNREGISTERED"}
    assert {labels["campaign"] for labels, _ in samples["pushctl_notifications_total"]} == {"kill-test"}
    # Every device was sent: one latency observation each, in the histogram's +Inf bucket.
    inf = sum(v for labels, v in samples["pushctl_send_latency_seconds_bucket"] if labels["le"] == "+Inf")
    assert inf == 300 == sum(v for _l, v in samples["pushctl_send_latency_seconds_count"])
    assert _value(samples, "pushctl_run_exit_code") == 1
    assert _value(samples, "pushctl_run_running") == 0
    assert _value(samples, "pushctl_in_flight") == 0
    assert time.time() - _value(samples, "pushctl_last_success_timestamp_seconds") < 120
    # node_exporter must read it: the one file pushctl does not make private.
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert [p.name for p in prom.parent.iterdir()] == ["pushctl.prom"]  # no temp file left behind


def test_a_failed_run_keeps_the_last_success_and_says_it_failed(tmp_path: Path) -> None:
    prom = tmp_path / "pushctl.prom"
    earlier = RunMetrics("send", Tally(), campaign="yesterday")
    earlier.finish(0)
    earlier.last_completed = 1_700_000_000.0
    from pushctl.metrics import MetricsFile

    MetricsFile(prom, earlier).write()
    template = write_template(tmp_path / "template.yaml")
    code, _lines, stderr = invoke(
        "send", str(template), "--audience", str(tmp_path / "missing.csv"), "--emulator",
        "--metrics-file", str(prom),
    )  # fmt: skip
    assert code == 2, stderr
    samples = _samples(prom.read_text())
    assert _value(samples, "pushctl_run_exit_code") == 2
    assert _value(samples, "pushctl_last_success_timestamp_seconds") == 1_700_000_000.0


def test_tally_counts_like_a_summary() -> None:
    tally = Tally()
    for i in range(5):
        tally.add(Result(f"t{i}", Platform.IOS, Outcome.DELIVERED, "", 200, 1 + i % 2, 20.0))
    tally.add(Result("bad", Platform.ANDROID, Outcome.INVALID_TOKEN, "UNREGISTERED", 404, 1, 2000.0))
    tally.add(Result("tpl", Platform.ANDROID, Outcome.REJECTED, "template field 'name': missing", None, 0, 0))
    assert tally.outcomes() == {"delivered": 5, "invalid_token": 1, "rejected": 1}
    assert tally.retries == {"apns": 2}
    assert sum(tally.latency["apns"]) == 5
    assert tally.latency["fcm"][LATENCY_BUCKETS.index(2.5)] == 1  # 2 s lands in the 2.5 s bucket
    assert ("fcm", "android", "rejected", "template") in tally.notifications  # bounded label values
    parts = [tally.snapshot(), tally.snapshot()]
    total = Tally()
    total.replace(parts)
    assert total.outcomes() == {"delivered": 10, "invalid_token": 2, "rejected": 2}


def _metrics_url(err: Path, proc: Pushctl) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"metrics at (http://\S+/metrics)", err.read_text())
        if found:
            return found.group(1)
        assert proc.proc.poll() is None, err.read_text()
        time.sleep(0.05)
    raise AssertionError("trigger run never said where its metrics are")


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return _samples(response.read().decode())


def test_trigger_run_serves_metrics_while_running(tmp_path: Path) -> None:
    users = [{"token": ios(i) if i % 2 else fcm(i), "platform": "ios" if i % 2 else "android",
              "user_id": f"u{i}"} for i in range(6)]  # fmt: skip
    devices = directory_csv(tmp_path / "devices.csv", users)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "name: shop\nrules:\n  order_shipped:\n    on: order.shipped\n"
        "    template:\n      title: 'Your order {{ event.data.order_id }} is on its way'\n"
    )
    events = events_file(
        tmp_path / "events.jsonl",
        [event(f"e{i}", "order.shipped", f"2026-11-20T09:0{i}:00Z", f"u{i}", order_id=f"A{i}")
         for i in range(3)],
    )
    with emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = [sys.executable, "-m", "pushctl", "--config", str(cfg), "--profile", "emulator", "-o", "json",
                "trigger", "run", str(rules), "--events", str(events), "--follow", "--devices", str(devices),
                "--journal", str(tmp_path / "j.sqlite3"), "--metrics-port", "0"]  # fmt: skip
        proc = Pushctl(argv, tmp_path, "trigger")
        try:
            url = _metrics_url(proc.err_path, proc)
            assert url.startswith("http://127.0.0.1:")  # loopback unless --metrics-host says otherwise
            deadline = time.monotonic() + 60
            while True:
                samples = _scrape(url)
                if _by_outcome(samples).get("delivered") == 3:
                    break
                assert time.monotonic() < deadline, samples
                time.sleep(0.1)
            assert _value(samples, "pushctl_trigger_events_total") == 3
            assert _value(samples, "pushctl_run_running") == 1
            assert "pushctl_trigger_pending_delayed_sends" in samples
            assert "pushctl_trigger_consumer_lag" in samples or "pushctl_in_flight" in samples
            # More events arrive: the endpoint follows.
            with events.open("a") as fh:
                late = event("e9", "order.shipped", "2026-11-20T09:09:00Z", "u4", order_id="B")
                fh.write(json.dumps(late) + "\n")
            while _by_outcome(samples := _scrape(url)).get("delivered") != 4:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            proc.signal(signal.SIGINT)
            done = proc.wait()
    assert done.code in (0, 130), done.stderr
    summary = done.json_lines()[-1]
    # campaign = the rule set, shard = the consumer (one member of a consumer group each).
    labels = {(lab["campaign"], lab["shard"]) for lab, _ in samples["pushctl_notifications_total"]}
    assert labels == {("shop", summary["consumer"])}
