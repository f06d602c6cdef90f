"""Sender basics: exactly one result per item, in-flight bounds, lanes side by side, laziness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sender_fakes import OK, FakeProvider, Recorder, item, mixed

from pushctl.delivery import Sender, SendOptions, WorkItem, prepare_item
from pushctl.errors import AudienceError, PayloadError
from pushctl.model import Device, Platform
from pushctl.outcome import Outcome, Result
from pushctl.providers.base import Attempt, AttemptKind

K = AttemptKind
ANSWER = {
    K.DELIVERED: OK,
    K.INVALID_TOKEN: Attempt(K.INVALID_TOKEN, 410, "Unregistered"),
    K.REJECTED: Attempt(K.REJECTED, 413, "PayloadTooLarge"),
    K.RETRYABLE: Attempt(K.RETRYABLE, 503, "ServiceUnavailable"),
}
EXPECTED = {K.DELIVERED: Outcome.DELIVERED, K.INVALID_TOKEN: Outcome.INVALID_TOKEN,
            K.REJECTED: Outcome.REJECTED}


def make(providers: list[FakeProvider], rec: Recorder, **opts: Any) -> Sender:
    opts.setdefault("backoff_base", 0.0)
    return Sender({p.name: p for p in providers}, SendOptions(**opts), on_result=rec.result,
                  on_event=rec.event)


@settings(max_examples=40, deadline=None)
@given(
    scripts=st.lists(st.lists(st.sampled_from(list(ANSWER)), min_size=1, max_size=4),
                     min_size=1, max_size=40),
    conc=st.integers(1, 5),
)
def test_every_item_ends_exactly_once_with_the_right_outcome(
    scripts: list[list[AttemptKind]], conc: int
) -> None:
    max_attempts = 3

    def script(request: str, n: int) -> Attempt:
        kinds = scripts[int(request.split("-")[1])]
        return ANSWER[kinds[min(n, len(kinds)) - 1]]

    apns, fcm = FakeProvider("apns", script, concurrency=conc), FakeProvider("fcm", script, concurrency=conc)
    rec = Recorder()
    sender = make([apns, fcm], rec, max_attempts=max_attempts)
    asyncio.run(sender.run(mixed(len(scripts))))

    assert sorted(r.line for r in rec.results) == list(range(1, len(scripts) + 1))
    for r in rec.results:
        kinds = scripts[r.line - 1]
        answers = [kinds[min(n, len(kinds)) - 1] for n in range(1, max_attempts + 1)]
        final = next((i for i, k in enumerate(answers) if k is not K.RETRYABLE), None)
        if final is None:
            assert (r.outcome, r.attempts, r.reason) == (Outcome.FAILED, max_attempts, "ServiceUnavailable")
        else:
            assert (r.outcome, r.attempts) == (EXPECTED[answers[final]], final + 1)
    assert sender.sent == len(scripts) == sum(sender.counts.values())
    assert sender.in_flight == 0 and sender.stopped_reason is None


def test_result_carries_device_fields_and_latency() -> None:
    rec = Recorder()
    apns = FakeProvider("apns", lambda r, n: Attempt(K.DELIVERED, 200, "", provider_id="apns-id-1"))
    work = WorkItem(Device("abcd", Platform.IOS, line=42), "apns", "req", variant="B")
    asyncio.run(make([apns], rec).run([work]))
    (r,) = rec.results
    assert (r.token, r.platform, r.outcome, r.status) == ("abcd", Platform.IOS, Outcome.DELIVERED, 200)
    assert (r.provider_id, r.variant, r.line, r.attempts) == ("apns-id-1", "B", 42, 1)
    assert r.latency_ms >= 0.0


def test_in_flight_never_exceeds_each_providers_concurrency() -> None:
    apns = FakeProvider("apns", concurrency=3, yields=6)
    fcm = FakeProvider("fcm", concurrency=50, yields=6)
    rec = Recorder()
    # The option overrides the provider's declared default for fcm only.
    sender = make([apns, fcm], rec, concurrency={"fcm": 5})
    asyncio.run(sender.run(mixed(600)))
    assert len(rec.results) == 600
    assert apns.max_current == 3
    assert fcm.max_current == 5


def test_stalled_fcm_does_not_hold_up_apns() -> None:
    apns, fcm = FakeProvider("apns"), FakeProvider("fcm", concurrency=2)
    fcm.gate = asyncio.Event()
    rec = Recorder()

    def on_result(r: Result) -> None:
        rec.result(r)
        # Every APNs device finishing while FCM is still stuck proves the lanes are independent.
        if r.platform is Platform.IOS and sum(x.platform is Platform.IOS for x in rec.results) == 200:
            assert not fcm.gate.is_set() and len(fcm.calls) == 2
            fcm.gate.set()

    sender = Sender({"apns": apns, "fcm": fcm}, SendOptions(), on_result=on_result)
    asyncio.run(asyncio.wait_for(sender.run(mixed(400)), timeout=10))
    assert len(rec.results) == 400


def test_read_ahead_bounds_how_far_a_stalled_provider_lets_the_reader_go() -> None:
    apns, fcm = FakeProvider("apns"), FakeProvider("fcm", concurrency=2)
    fcm.gate = asyncio.Event()
    sender = make([apns, fcm], Recorder(), read_ahead=10)
    limit = 10 + apns.default_concurrency + 2

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(mixed(10_000)))
        for _ in range(200):
            await asyncio.sleep(0)
        # APNs ran ahead of the stuck FCM lane, but only as far as the bound allows.
        assert 0 < sender.sent <= limit
        assert sender.pulled - sender.sent <= limit
        assert len(fcm.calls) == 2
        fcm.gate.set()
        await task

    asyncio.run(scenario())
    assert sender.sent == 10_000


def test_a_large_audience_is_pulled_lazily() -> None:
    pulled = 0
    worst = 0
    done = 0

    def audience() -> Iterator[WorkItem]:
        nonlocal pulled
        for w in mixed(100_000):
            pulled += 1
            yield w

    def on_result(r: Result) -> None:
        nonlocal worst, done
        done += 1
        worst = max(worst, pulled - done)

    apns, fcm = FakeProvider("apns", concurrency=8, yields=0), FakeProvider("fcm", concurrency=8, yields=0)
    sender = Sender({"apns": apns, "fcm": fcm}, SendOptions(read_ahead=64), on_result=on_result)
    asyncio.run(sender.run(audience()))
    assert done == 100_000
    assert worst <= 64 + 16 + 1


def test_async_sources_work_too() -> None:
    async def audience() -> AsyncIterator[WorkItem]:
        for w in mixed(50):
            await asyncio.sleep(0)
            yield w

    rec = Recorder()
    asyncio.run(make([FakeProvider("apns"), FakeProvider("fcm")], rec).run(audience()))
    assert len(rec.results) == 50


def test_item_for_an_unconfigured_provider_is_rejected_not_lost() -> None:
    rec = Recorder()
    asyncio.run(make([FakeProvider("apns")], rec).run([item(0, "apns"), item(1, "fcm")]))
    outcomes = {r.line: (r.outcome, r.reason) for r in rec.results}
    assert outcomes[1][0] is Outcome.DELIVERED
    assert outcomes[2][0] is Outcome.REJECTED and "fcm" in outcomes[2][1]


def test_prepare_item_turns_a_payload_error_into_a_rejected_result() -> None:
    class Picky(FakeProvider):
        def prepare(self, device: Device, notification: Any, *, collapse_id: str | None) -> Any:
            if notification == "huge":
                raise PayloadError("payload is 5000 bytes, over the 4096-byte limit")
            return (device.token, notification, collapse_id)

    p = Picky("apns")
    device = Device("t1", Platform.IOS, line=3)
    work = prepare_item(p, device, "hi", collapse_id="c1", variant="A")
    assert isinstance(work, WorkItem)
    assert (work.provider, work.request, work.variant) == ("apns", ("t1", "hi", "c1"), "A")
    rejected = prepare_item(p, device, "huge", variant="A")
    assert isinstance(rejected, Result)
    assert (rejected.outcome, rejected.line, rejected.attempts) == (Outcome.REJECTED, 3, 0)
    assert "4096" in rejected.reason


def test_source_error_lets_in_flight_finish_then_propagates() -> None:
    def audience() -> Iterator[WorkItem]:
        yield from mixed(10)
        raise AudienceError("bad platform", file="a.csv", line=12)

    rec = Recorder()
    sender = make([FakeProvider("apns"), FakeProvider("fcm")], rec)
    with pytest.raises(AudienceError, match="bad platform"):
        asyncio.run(sender.run(audience()))
    assert all(r.outcome is Outcome.DELIVERED for r in rec.results)


def test_a_provider_bug_aborts_the_run_and_propagates() -> None:
    def script(request: str, n: int) -> Attempt:
        if request == "apns-10":
            raise RuntimeError("adapter bug")
        return OK

    async def scenario() -> None:
        sender = make([FakeProvider("apns", script)], Recorder())
        with pytest.raises(RuntimeError, match="adapter bug"):
            await sender.run(item(i) for i in range(100))
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running

    asyncio.run(scenario())


def test_a_sender_runs_once() -> None:
    sender = make([FakeProvider("apns")], Recorder())
    asyncio.run(sender.run([]))
    with pytest.raises(RuntimeError):
        asyncio.run(sender.run([]))
