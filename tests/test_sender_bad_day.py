"""The sender on a bad day (issue 11): per-device backoff, one pause per burst, the provider-level
backoff, AIMD against a quota, and requests lost with their connection. Virtual time throughout:
the assertions are about counts and order, never about how long a test takes."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from typing import Any

import pytest
from test_sender_fakes import OK, FakeProvider, Recorder, VirtualTime, item, mixed

from pushctl.delivery import Sender, SendOptions
from pushctl.outcome import Outcome
from pushctl.providers.base import Attempt, AttemptKind, classify_apns, classify_fcm

K = AttemptKind
LOST = Attempt(K.RETRYABLE, None, "ConnectionLost")


class TopRng(random.Random):
    """Backoff jitter always picks the top of its range: retries of one wave stay together."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Slow(FakeProvider):
    """Answers ``latency`` virtual seconds after the request, as a real service does: requests
    overlap, so a burst's answers arrive while its other requests are still in flight."""

    def __init__(self, name: str, script: Any, vt: VirtualTime, *, latency: float = 0.1, **kw: Any) -> None:
        super().__init__(name, script, **kw)
        self.vt = vt
        self.latency = latency

    async def send(self, request: Any) -> Attempt:
        answer = await super().send(request)
        await self.vt.sleep(self.latency)
        return answer


def run(
    providers: list[FakeProvider], items: Any, rng: random.Random | None = None,
    vt: VirtualTime | None = None, spins: int = 30, **opts: Any,
) -> tuple[Sender, Recorder, VirtualTime]:
    vt = vt or VirtualTime()
    for p in providers:
        p.clock = vt.clock
    rec = Recorder()
    sender = Sender({p.name: p for p in providers}, SendOptions(**opts), on_result=rec.result,
                    on_event=rec.event, sleep=vt.sleep, clock=vt.clock, rng=rng or random.Random(11))
    asyncio.run(vt.run(sender.run(items), spins=spins))
    return sender, rec, vt


def outcomes(rec: Recorder) -> Counter[Outcome]:
    return Counter(r.outcome for r in rec.results)


# -- one device's trouble is that device's -------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [classify_apns(429, "TooManyRequests", 2.0),
     classify_fcm(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Device message rate exceeded.", 2.0),
     classify_fcm(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric", 2.0)],
    ids=["apns-too-many-requests", "fcm-device-rate", "fcm-project-quota-once"],
)
def test_one_devices_429s_back_off_that_device_alone(answer: Attempt) -> None:
    stuck = {"apns-0", "fcm-1"}

    def script(request: str, n: int) -> Attempt:
        return answer if request in stuck and n <= 5 else OK

    apns, fcm = FakeProvider("apns", script), FakeProvider("fcm", script)
    sender, rec, _ = run([apns, fcm], mixed(62))
    assert outcomes(rec) == {Outcome.DELIVERED: 62}
    assert sender.pauses == 0 and not [e for e in rec.events if "pausing" in e.message]
    for p in (apns, fcm):
        its = [t for r, t in zip(p.calls, p.call_times, strict=True) if r in stuck]
        others = [t for r, t in zip(p.calls, p.call_times, strict=True) if r not in stuck]
        assert len(its) == 6 and its[1] >= 2.0  # five refusals, each followed by its own Retry-After
        assert set(others) == {0.0}  # nobody else waited for it


# -- a burst closes the gate, once ---------------------------------------------------------------


def test_a_burst_of_503s_closes_the_gate_once_for_its_retry_after() -> None:
    unavailable = classify_apns(503, "ServiceUnavailable", 5.0)

    def script(request: str, n: int) -> Attempt:
        return unavailable if n == 1 and int(request.split("-")[1]) < 100 else OK

    vt = VirtualTime()
    apns = Slow("apns", script, vt, concurrency=100)  # all 100 in flight when the burst shows
    fcm = FakeProvider("fcm", concurrency=4)
    items = [*[item(i) for i in range(100)], *[item(i, "fcm") for i in range(20)]]
    sender, rec, _ = run([apns, fcm], items, vt=vt)
    assert outcomes(rec) == {Outcome.DELIVERED: 120}
    assert sender.pauses == 1  # 100 refusals, one pause: the answers in flight belong to the same burst
    (event,) = [e.message for e in rec.events if "pausing" in e.message]
    assert event == ("apns: ServiceUnavailable answers from many devices at once: "
                     "pausing all sends to it for 5.0s")
    first_attempts = apns.call_times[:100]
    assert max(first_attempts) == 0.0  # the first 100 all went out before any answer came back
    assert min(apns.call_times[100:]) >= 5.0  # nothing during the pause
    assert set(fcm.call_times) == {0.0}  # the other provider never waited


def test_without_retry_after_the_pause_is_a_provider_backoff_that_resets_on_success() -> None:
    bare = classify_fcm(503, "UNAVAILABLE", "UNAVAILABLE", "", None)

    def script(request: str, n: int) -> Attempt:
        # Three waves of refusals from all devices, then the service is back.
        return bare if n <= 3 else OK

    vt = VirtualTime()
    fcm = Slow("fcm", script, vt, concurrency=40)
    sender, rec, _ = run([fcm], [item(i, "fcm") for i in range(40)], rng=TopRng(), vt=vt, backoff_base=0.5,
                         backoff_max=30.0)
    assert outcomes(rec) == {Outcome.DELIVERED: 40}
    pauses = [e.message.rsplit(" ", 1)[1] for e in rec.events if "pausing" in e.message]
    assert pauses == ["0.5s", "1.0s", "2.0s"]  # doubling with each burst
    assert sender.pauses == 3


def test_the_provider_backoff_starts_over_after_a_delivery() -> None:
    bare = classify_apns(503, "ServiceUnavailable", None)

    def script(request: str, n: int) -> Attempt:
        # Devices 0-39 and 80-119 are refused once: two bursts, with deliveries (40-79) between.
        return bare if n == 1 and not 40 <= int(request.split("-")[1]) < 80 else OK

    vt = VirtualTime()
    apns = Slow("apns", script, vt, concurrency=40)
    _, rec, _ = run([apns], [item(i) for i in range(120)], rng=TopRng(), vt=vt, backoff_base=0.5)
    pauses = [e.message.rsplit(" ", 1)[1] for e in rec.events if "pausing" in e.message]
    assert pauses == ["0.5s", "0.5s"]  # not 1.0 s: the deliveries between reset the backoff
    assert outcomes(rec) == {Outcome.DELIVERED: 120}


# -- AIMD against a quota ------------------------------------------------------------------------


class QuotaService:
    """A provider allowing ``limit`` requests per (virtual) second in fixed windows, 429 above it."""

    def __init__(self, vt: VirtualTime, limit: int) -> None:
        self.vt = vt
        self.limit = limit
        self.window = (0.0, 0)
        self.accepted: list[float] = []

    def __call__(self, request: str, n: int) -> Attempt:
        now = self.vt.clock()
        start, count = self.window
        if now - start >= 1.0:
            start, count = now, 0
        self.window = (start, count + 1)
        if count >= self.limit:
            wait = math.ceil(1.0 - (now - start)) or 1
            return classify_fcm(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Quota exceeded", float(wait))
        self.accepted.append(now)
        return OK


def test_against_a_quota_the_rate_settles_under_it_with_nothing_failed() -> None:
    vt = VirtualTime()
    quota = QuotaService(vt, 50)
    fcm = FakeProvider("fcm", quota, concurrency=100)
    fcm.clock = vt.clock
    rec = Recorder()
    sender = Sender({"fcm": fcm}, SendOptions(), on_result=rec.result, on_event=rec.event,
                    sleep=vt.sleep, clock=vt.clock, rng=random.Random(11))
    asyncio.run(vt.run(sender.run(item(i, "fcm") for i in range(2000))))
    assert outcomes(rec) == {Outcome.DELIVERED: 2000}
    per_second = Counter(int(t) for t in quota.accepted)
    seconds = [per_second[s] for s in range(int(max(quota.accepted)))]
    settled = seconds[len(seconds) // 2 :]
    mean = sum(settled) / len(settled)
    assert 0.7 * 50 <= mean <= 50, seconds
    # It slowed down instead of hammering: a few pauses, and far fewer refusals than deliveries.
    assert 1 <= sender.pauses <= len(seconds) // 5
    assert sum(r.attempts - 1 for r in rec.results) < 2000 // 4


# -- requests lost with their connection ---------------------------------------------------------


def test_requests_lost_with_their_connection_do_not_spend_attempts() -> None:
    apns = FakeProvider("apns", lambda r, n: LOST if n <= 3 else OK)
    sender, rec, vt = run([apns], [item(i) for i in range(10)], max_attempts=1)
    assert outcomes(rec) == {Outcome.DELIVERED: 10}  # max_attempts=1 and still delivered
    assert {r.attempts for r in rec.results} == {1}
    assert sender.resent == 30 and sender.retries == 30 and sender.pauses == 0
    assert 0.0 in vt.sleeps  # the first loss is re-sent at once


def test_a_service_that_drops_every_connection_still_ends_the_run() -> None:
    apns = FakeProvider("apns", lambda r, n: LOST)
    sender, rec, _ = run([apns], [item(i) for i in range(5)], max_losses=4, backoff_max=2.0)
    assert outcomes(rec) == {Outcome.FAILED: 5}
    assert {(r.reason, r.status, r.attempts) for r in rec.results} == {("ConnectionLost", None, 1)}
    assert Counter(apns.calls) == {f"apns-{i}": 5 for i in range(5)}  # 1 + 4 re-sends each
    assert sender.resent == 20


def test_answers_still_spend_attempts_among_losses() -> None:
    busy = classify_apns(500, "InternalServerError", 1.0)
    apns = FakeProvider("apns", lambda r, n: LOST if n % 2 else busy)
    _, rec, _ = run([apns], [item(0)], max_attempts=3)
    (result,) = rec.results
    assert (result.outcome, result.attempts, result.reason) == (Outcome.FAILED, 3, "InternalServerError")


# -- devices waiting for a retry do not starve the others -----------------------------------------


@pytest.mark.parametrize(("backlog", "first_round"), [(10_000, 60), (5, 6)])
def test_devices_waiting_for_a_retry_leave_room_for_new_ones_up_to_the_backlog(
    backlog: int, first_round: int
) -> None:
    busy = classify_apns(500, "InternalServerError", 10.0)
    apns = FakeProvider("apns", lambda r, n: busy if n == 1 else OK, concurrency=2)
    # spins: let the event loop run dry before virtual time jumps to the first retry.
    sender, rec, _ = run([apns], [item(i) for i in range(60)], spins=2000, read_ahead=0,
                         retry_backlog=backlog)
    assert outcomes(rec) == {Outcome.DELIVERED: 60}
    # Every device is refused once and waits 10 s: the reader kept feeding the two slots while the
    # waiting devices were few enough (all 60 first attempts before any second one), and with a
    # backlog of 5 it stopped taking new devices until waiting ones came back.
    seen: set[str] = set()
    firsts_before_a_retry = 0
    for request in apns.calls:
        if request in seen:
            break
        seen.add(request)
        firsts_before_a_retry += 1
    assert firsts_before_a_retry == first_round
    assert sender.pulled == 60
