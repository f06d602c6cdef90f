"""Retries, backoff, Retry-After, the provider-wide gate, the rate limit and the env warning.

Everything runs in virtual time (see ``VirtualTime``): exact delays, no real waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from test_sender_fakes import OK, RETRY, FakeProvider, Recorder, VirtualTime, item, mixed

from pushctl.delivery import Sender, SendOptions, TokenBucket, WorkItem, backoff_delay, retry_delay
from pushctl.outcome import Outcome
from pushctl.providers.base import Attempt, AttemptKind, classify_fcm

K = AttemptKind


class MaxRng(random.Random):
    """Jitter always picks the top of its range, so backoff delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def run_virtual(
    providers: list[FakeProvider], items: Any, vt: VirtualTime, **opts: Any
) -> tuple[Sender, Recorder]:
    rec = Recorder()
    sender = Sender(
        {p.name: p for p in providers}, SendOptions(**opts), on_result=rec.result, on_event=rec.event,
        sleep=vt.sleep, clock=vt.clock, rng=MaxRng(),
    )
    asyncio.run(vt.run(sender.run(items)))
    return sender, rec


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    assert [backoff_delay(n, base=0.5, cap=3.0, rng=MaxRng()) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    rng = random.Random(1)
    samples = [backoff_delay(3, base=0.5, cap=30, rng=rng) for _ in range(200)]
    assert all(0 <= s <= 2.0 for s in samples) and len(set(samples)) > 100  # spread, not fixed
    assert backoff_delay(10_000, base=0.5, cap=30, rng=MaxRng()) == 30  # no overflow


def test_retry_after_is_the_wait_with_a_little_jitter_and_is_capped() -> None:
    kw: dict[str, Any] = {"base": 0.5, "cap": 30.0, "retry_after_max": 300.0, "rng": MaxRng()}
    assert retry_delay(1, None, **kw) == 0.5
    assert retry_delay(4, None, **kw) == 4.0
    assert retry_delay(1, 7.0, **kw) == pytest.approx(7.35)  # at most 5% later than asked
    assert retry_delay(4, 1.0, **kw) == pytest.approx(1.05)  # the service said when: no growth on top
    assert retry_delay(1, 10_000.0, **kw) == pytest.approx(315.0)
    low = random.Random(3)
    assert all(1.0 <= retry_delay(5, 1.0, **{**kw, "rng": low}) <= 1.05 for _ in range(100))


def test_retryable_answers_back_off_then_fail_after_max_attempts() -> None:
    vt = VirtualTime()
    p = FakeProvider("apns", lambda r, n: RETRY)
    sender, rec = run_virtual([p], [item(0)], vt, max_attempts=4, backoff_base=0.5, backoff_max=30)
    (r,) = rec.results
    assert (r.outcome, r.attempts, r.reason, r.status) == (Outcome.FAILED, 4, "ServiceUnavailable", 503)
    assert vt.sleeps == [0.5, 1.0, 2.0]
    assert r.latency_ms == pytest.approx(3500.0)  # first attempt -> final answer, in virtual time
    assert sender.retries == 3


def test_a_retry_that_succeeds_is_delivered_with_its_attempt_count() -> None:
    vt = VirtualTime()
    p = FakeProvider("fcm", lambda r, n: RETRY if n < 3 else OK)
    _, rec = run_virtual([p], [item(0, "fcm")], vt, max_attempts=5)
    (r,) = rec.results
    assert (r.outcome, r.attempts) == (Outcome.DELIVERED, 3)


def test_retry_after_is_honoured() -> None:
    vt = VirtualTime()
    busy = Attempt(K.RETRYABLE, 429, "TooManyRequests", retry_after=7.0)
    p = FakeProvider("apns", lambda r, n: busy if n == 1 else OK)
    _, rec = run_virtual([p], [item(0)], vt, backoff_base=0.5)
    assert vt.sleeps == [pytest.approx(7.35)]  # MaxRng: the top of the 5% jitter
    assert rec.results[0].outcome is Outcome.DELIVERED
    assert rec.results[0].latency_ms == pytest.approx(7350.0)


def test_retries_do_not_hold_a_concurrency_slot() -> None:
    # One slot; item 0 waits 100 s for its retry while the others go through meanwhile.
    vt = VirtualTime()
    slow = Attempt(K.RETRYABLE, 503, "ServiceUnavailable", retry_after=100.0)
    p = FakeProvider("apns", lambda r, n: slow if r == "apns-0" and n == 1 else OK, concurrency=1)
    p.clock = vt.clock
    _, rec = run_virtual([p], [item(i) for i in range(5)], vt)
    assert [r.line for r in rec.results] == [2, 3, 4, 5, 1]
    assert p.call_times == [0, 0, 0, 0, 0, pytest.approx(105)]


def test_a_burst_of_quota_answers_pauses_the_whole_provider_only() -> None:
    vt = VirtualTime()
    quota = classify_fcm(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Quota exceeded", 10.0)
    assert quota.provider_wide
    calls_at_burst: list[int] = []

    def script(request: str, n: int) -> Attempt:
        if n == 1 and int(request.split("-")[1]) < 60:  # the first 30 FCM devices: all refused
            if not calls_at_burst and len(fcm.calls) >= 20:
                calls_at_burst.append(len(fcm.calls))  # the 20th refusal completes the burst
            return quota
        return OK

    fcm = FakeProvider("fcm", script, concurrency=2)
    apns = FakeProvider("apns", concurrency=2)
    fcm.clock = apns.clock = vt.clock
    sender, rec = run_virtual([apns, fcm], mixed(80), vt)
    assert len(rec.results) == 80 and all(r.outcome is Outcome.DELIVERED for r in rec.results)
    # Nothing new goes to FCM after the burst until the gate opens 10 s later (one answer was in flight).
    (seen,) = calls_at_burst
    assert all(t >= 10 for t in fcm.call_times[seen + 1:])
    assert set(apns.call_times) == {0.0}  # APNs never waited
    assert sender.pauses == 1
    (event,) = [e.message for e in rec.events if "pausing" in e.message]
    # Nothing was accepted yet: the new rate is 3/4 of the 20 answers of the last second.
    assert event == ("fcm: QUOTA_EXCEEDED answers from many devices at once: pausing all sends to it for "
                     "10.0s; sending to it at 15/s from now on, then faster while it accepts")


def test_rate_limit_is_shared_and_smooth() -> None:
    vt = VirtualTime()
    apns, fcm = FakeProvider("apns", concurrency=4), FakeProvider("fcm", concurrency=4)
    apns.clock = fcm.clock = vt.clock
    _, rec = run_virtual([apns, fcm], mixed(30), vt, rate=10.0)
    times = sorted(apns.call_times + fcm.call_times)
    assert len(times) == 30 == len(rec.results)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(0.1)  # never two requests in the same slot, across providers
    assert times[-1] == pytest.approx(2.9)


def test_token_bucket_does_not_burst_after_idling() -> None:
    now = [0.0]
    bucket = TokenBucket(5.0, clock=lambda: now[0], sleep=asyncio.sleep)
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.2, 0.4])
    now[0] = 100.0  # long idle: no saved-up tokens to spend at once
    assert [bucket.reserve() for _ in range(2)] == pytest.approx([0.0, 0.2])
    with pytest.raises(ValueError):
        TokenBucket(0, clock=lambda: 0.0, sleep=asyncio.sleep)


def bad_token_script(bad: set[int]) -> Any:
    def script(request: str, n: int) -> Attempt:
        if int(request.split("-")[1]) in bad:
            return Attempt(K.INVALID_TOKEN, 400, "BadDeviceToken")
        return OK

    return script


@pytest.mark.parametrize(("bad", "warned"), [(set(range(10)), True), (set(range(9)), False),
                                             (set(range(20, 100)), False)])
def test_environment_mixup_warning(bad: set[int], warned: bool) -> None:
    vt = VirtualTime()
    items: list[WorkItem] = [item(i) for i in range(100)]
    _, rec = run_virtual([FakeProvider("apns", bad_token_script(bad))], items, vt, env_check_window=20)
    warnings = [e for e in rec.events if e.kind == "warning"]
    assert len(warnings) == int(warned)
    if warned:
        assert "sandbox/production" in warnings[0].message
    assert len(rec.results) == 100
