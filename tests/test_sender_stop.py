"""Stopping: credential failures, graceful stop (first Ctrl-C), abort (second), cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

from test_sender_fakes import OK, RETRY, FakeProvider, Recorder, item, mixed

from pushctl.delivery import Sender, SendOptions
from pushctl.errors import AuthRefused
from pushctl.outcome import Outcome
from pushctl.providers.base import Attempt, AttemptKind

K = AttemptKind
REFUSED = Attempt(K.AUTH_FAILED, 403, "InvalidProviderToken")


def make(providers: list[FakeProvider], rec: Recorder, **kw: Any) -> Sender:
    return Sender({p.name: p for p in providers}, SendOptions(backoff_base=0.0), on_result=rec.result,
                  on_event=rec.event, **kw)


async def until(condition: Any, spins: int = 1000) -> None:
    for _ in range(spins):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def test_auth_failure_stops_every_provider_within_the_in_flight_window() -> None:
    sends_before_answer: list[int] = []

    def apns_script(request: str, n: int) -> Attempt:
        if request == "apns-6":
            sends_before_answer.append(len(apns.calls) + len(fcm.calls))
            return REFUSED
        return OK

    apns = FakeProvider("apns", apns_script, concurrency=4, yields=3)
    fcm = FakeProvider("fcm", concurrency=4, yields=3)
    rec = Recorder()
    sender = make([apns, fcm], rec)
    asyncio.run(sender.run(mixed(10_000)))

    (seen,) = sends_before_answer
    total_sends = len(apns.calls) + len(fcm.calls)
    assert total_sends - seen <= 4 + 4  # nothing new after the answer; at most what was already in flight
    assert total_sends < 30
    assert sender.stopped_reason == "auth_failed"
    assert [r.outcome for r in rec.results].count(Outcome.AUTH_FAILED) == 1
    # Requests still in flight were cancelled: no result, so the journal keeps them in flight
    # and the run after the fix sends them. Only answers that came before the stop are results.
    assert len(rec.results) <= seen + 1
    assert len({r.token for r in rec.results}) == len(rec.results)  # nobody twice
    stops = [e for e in rec.events if e.kind == "auth_stop"]
    assert len(stops) == 1 and "InvalidProviderToken" in stops[0].message


def test_auth_refused_raised_by_an_adapter_is_treated_as_auth_failed() -> None:
    class Raising(FakeProvider):
        async def send(self, request: Any) -> Attempt:
            raise AuthRefused("FCM refused the access token")

    rec = Recorder()
    sender = make([Raising("fcm")], rec)
    asyncio.run(sender.run(item(i, "fcm") for i in range(100)))
    assert sender.stopped_reason == "auth_failed"
    assert {r.outcome for r in rec.results} == {Outcome.AUTH_FAILED}
    assert len(rec.results) <= 4


def test_stop_lets_in_flight_finish_and_takes_nothing_new() -> None:
    apns = FakeProvider("apns", concurrency=4)
    apns.gate = asyncio.Event()
    rec = Recorder()
    sender = make([apns], rec)

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(item(i) for i in range(1000)))
        await until(lambda: apns.current == 4)
        sender.stop()
        await asyncio.sleep(0)
        assert not task.done()  # waiting for the in-flight requests
        apns.gate.set()
        await task

    asyncio.run(scenario())
    assert len(apns.calls) == 4
    assert [r.outcome for r in rec.results] == [Outcome.DELIVERED] * 4
    assert sender.stopped_reason == "interrupted" and sender.in_flight == 0


def test_stop_leaves_items_waiting_for_a_retry_unfinished() -> None:
    never = asyncio.Event()

    async def sleep(delay: float) -> None:
        await never.wait()  # a retry that would come "much later"

    apns = FakeProvider("apns", lambda r, n: RETRY if r == "apns-0" else OK, concurrency=2)
    rec = Recorder()
    sender = make([apns], rec, sleep=sleep)

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(item(i) for i in range(5)))
        await until(lambda: sender.sent == 4)
        assert sender.retries == 1
        sender.stop()
        await asyncio.wait_for(task, timeout=5)
        assert asyncio.all_tasks() == {asyncio.current_task()}  # the retry's task was cancelled

    asyncio.run(scenario())
    assert sorted(r.line for r in rec.results) == [2, 3, 4, 5]  # line 1 stays in flight for a resume


def test_stop_interrupts_a_long_rate_limit_wait() -> None:
    apns = FakeProvider("apns", concurrency=3)
    rec = Recorder()
    sender = Sender({"apns": apns}, SendOptions(rate=0.01), on_result=rec.result)  # one per 100 s

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(item(i) for i in range(10)))
        await until(lambda: sender.sent == 1)
        sender.stop()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert len(rec.results) == 1 and len(apns.calls) == 1


def test_abort_cancels_in_flight_requests() -> None:
    apns, fcm = FakeProvider("apns", concurrency=3), FakeProvider("fcm", concurrency=3)
    apns.gate = asyncio.Event()
    fcm.gate = asyncio.Event()
    rec = Recorder()
    sender = make([apns, fcm], rec)

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(mixed(100)))
        await until(lambda: sender.in_flight == 6)
        sender.stop()
        await asyncio.sleep(0)
        sender.abort()  # the second Ctrl-C
        await asyncio.wait_for(task, timeout=5)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(scenario())
    assert rec.results == []
    assert sender.in_flight == 0 and sender.stopped_reason == "interrupted"


def test_cancelling_run_cleans_up_and_propagates() -> None:
    apns = FakeProvider("apns")
    apns.gate = asyncio.Event()
    sender = make([apns], Recorder())

    async def scenario() -> None:
        task = asyncio.create_task(sender.run(item(i) for i in range(100)))
        await until(lambda: sender.in_flight == 4)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("run() swallowed its own cancellation")
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(scenario())


def test_stop_before_run_sends_nothing() -> None:
    apns = FakeProvider("apns")
    rec = Recorder()
    sender = make([apns], rec)
    sender.stop()
    asyncio.run(sender.run(item(i) for i in range(10)))
    assert apns.calls == [] and rec.results == []
