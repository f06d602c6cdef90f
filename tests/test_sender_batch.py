"""The sender's batch seam (pure engine logic, scripted provider): identical requests share one
attempt of up to ``batch_limit`` devices, retried as one, answered per device."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from test_sender_fakes import FakeProvider

from pushctl.delivery import Sender, SendOptions
from pushctl.model import Device, Platform
from pushctl.outcome import Outcome, Result
from pushctl.providers import WorkItem, take_batch
from pushctl.providers.base import Attempt, AttemptKind


class BatchProvider(FakeProvider):
    """Requests are (key, token); a batch's request is (key, [tokens])."""

    batch_limit = 3

    @staticmethod
    def batch_key(request: tuple[str, str]) -> str:
        return request[0]

    def merge(self, requests: list[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
        return requests[0][0], tuple(r[1] for r in requests)


def _item(key: str, token: str) -> WorkItem:
    return WorkItem(Device(token, Platform.HMS), "hms", (key, token))


def test_take_batch_groups_identical_requests_and_keeps_the_rest_in_order() -> None:
    provider = BatchProvider("hms")
    pending = deque([_item("a", "2"), _item("b", "3"), _item("a", "4"), _item("a", "5"), _item("b", "6")])
    batch = take_batch(provider, _item("a", "1"), pending, 3)
    assert batch.request == ("a", ("1", "2", "4")) and batch.size == 3
    assert [m.device.token for m in batch.members or []] == ["1", "2", "4"]
    assert [i.device.token for i in pending] == ["3", "5", "6"]


def _run(provider: BatchProvider, items: list[WorkItem]) -> list[Result]:
    results: list[Result] = []
    sender = Sender(
        {"hms": provider}, SendOptions(backoff_base=0.0, backoff_max=0.0), on_result=results.append
    )
    asyncio.run(sender.run(items))
    return results


def test_one_attempt_per_batch_and_one_result_per_device_with_its_own_answer() -> None:
    def script(request: Any, n: int) -> Attempt:
        key, tokens = request
        attempt = Attempt(AttemptKind.DELIVERED, 200, "", provider_id=f"req-{key}-{tokens[0]}")
        attempt.per_device = {
            t: Attempt(AttemptKind.INVALID_TOKEN, 200, "80100000 illegal token")
            for t in tokens
            if t.startswith("bad")
        }
        return attempt

    provider = BatchProvider("hms", script)
    tokens = ["t1", "bad2", "t3", "t4", "t5", "bad6", "t7"]
    results = _run(provider, [_item("same", t) for t in tokens])
    assert [len(call[1]) for call in provider.calls] == [3, 3, 1]
    assert {r.token: r.outcome for r in results} == {
        t: Outcome.INVALID_TOKEN if t.startswith("bad") else Outcome.DELIVERED for t in tokens
    }
    assert {r.provider_id for r in results if r.outcome is Outcome.DELIVERED} == {
        "req-same-t1",
        "req-same-t4",
        "req-same-t7",
    }


def test_a_batch_is_retried_as_one() -> None:
    def script(request: Any, n: int) -> Attempt:
        return (
            Attempt(AttemptKind.RETRYABLE, 500, "81000001 internal error")
            if n == 1
            else Attempt(AttemptKind.DELIVERED, 200, "")
        )

    provider = BatchProvider("hms", script)
    results = _run(provider, [_item("k", str(i)) for i in range(3)])
    assert [call[1] for call in provider.calls] == [("0", "1", "2"), ("0", "1", "2")]
    assert [(r.outcome, r.attempts) for r in results] == [(Outcome.DELIVERED, 2)] * 3


def test_different_messages_go_in_different_requests() -> None:
    provider = BatchProvider("hms")
    results = _run(provider, [_item(f"personal-{i}", str(i)) for i in range(4)])
    assert len(provider.calls) == 4 and len(results) == 4
