"""Summary: counting, exit codes, JSON shape, and the journal rebuilding the live summary."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushctl.delivery import Summary
from pushctl.errors import ExitCode
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def _r(outcome: Outcome, reason: str = "", attempts: int = 1, variant: str = "") -> Result:
    return Result(
        token="t", platform=Platform.IOS, outcome=outcome, reason=reason, attempts=attempts, variant=variant
    )


def test_add_counts_outcomes_reasons_variants_platforms_and_retries() -> None:
    summary = Summary(started_at=100.0)
    summary.add(_r(Outcome.DELIVERED, attempts=3, variant="A"))
    summary.add(_r(Outcome.INVALID_TOKEN, "Unregistered", variant="B"))
    summary.add(Result(token="x", platform=Platform.ANDROID, outcome=Outcome.DELIVERED, attempts=1))
    summary.finish(at=102.0)
    assert summary.total == 3
    assert summary.counts == {"delivered": 2, "invalid_token": 1}
    assert summary.reasons == {("delivered", ""): 2, ("invalid_token", "Unregistered"): 1}
    assert summary.by_variant == {"A": {"delivered": 1}, "B": {"invalid_token": 1}}
    assert summary.by_platform == {"ios": {"delivered": 1, "invalid_token": 1}, "android": {"delivered": 1}}
    assert summary.retries == 2
    assert summary.duration() == 2.0
    assert summary.throughput() == 1.5


@pytest.mark.parametrize(
    ("outcomes", "stopped", "code"),
    [
        ([Outcome.DELIVERED, Outcome.SKIPPED, Outcome.DEFERRED], None, ExitCode.OK),
        ([], None, ExitCode.OK),
        ([Outcome.DELIVERED, Outcome.INVALID_TOKEN], None, ExitCode.PARTIAL),
        ([Outcome.DELIVERED, Outcome.FAILED], None, ExitCode.PARTIAL),
        ([Outcome.DELIVERED, Outcome.AUTH_FAILED], None, ExitCode.AUTH),
        ([Outcome.DELIVERED], "auth_failed", ExitCode.AUTH),
        ([Outcome.DELIVERED], "interrupted", ExitCode.INTERRUPTED),
        ([Outcome.AUTH_FAILED], "interrupted", ExitCode.AUTH),
    ],
)
def test_exit_code(outcomes: list[Outcome], stopped: str | None, code: ExitCode) -> None:
    summary = Summary(stopped_reason=stopped)
    for outcome in outcomes:
        summary.add(_r(outcome))
    assert summary.exit_code() is code


def test_to_dict_is_json_with_every_outcome() -> None:
    summary = Summary(started_at=10.0, campaign="c-1")
    summary.add(_r(Outcome.FAILED, "ServiceUnavailable", attempts=5))
    summary.finish(at=12.0, stopped_reason="interrupted")
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["type"] == "summary"
    assert data["campaign"] == "c-1"
    assert data["outcomes"] == {str(o): (1 if o is Outcome.FAILED else 0) for o in Outcome}
    assert data["reasons"] == [{"outcome": "failed", "reason": "ServiceUnavailable", "count": 1}]
    assert (data["duration_s"], data["throughput_per_s"], data["retries"]) == (2.0, 0.5, 4)
    assert (data["stopped"], data["exit_code"]) == ("interrupted", 130)


_campaigns = itertools.count()  # a fresh campaign per Hypothesis example

results_strategy = st.lists(
    st.builds(
        Result,
        token=st.just(""),
        platform=st.sampled_from(list(Platform)),
        outcome=st.sampled_from(list(Outcome)),
        reason=st.sampled_from(["", "Unregistered", "UNAVAILABLE", "quiet hours"]),
        status=st.sampled_from([None, 200, 410]),
        attempts=st.integers(0, 6),
        latency_ms=st.floats(0, 5000),
        provider_id=st.just("id"),
        variant=st.sampled_from(["", "A", "B"]),
        line=st.integers(0, 10),
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(results=results_strategy)
def test_summary_rebuilt_from_journal_equals_live(tmp_path: Path, results: list[Result]) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        campaign = f"c{next(_campaigns)}"
        run = journal.open_run(campaign, template_fp="t", audience_fp="a", options={})
        live = Summary(campaign=campaign)
        for i, result in enumerate(results):
            result.token = f"tok{i}"
            run.record(result)
            live.add(result)
        run.finish(stopped_reason="interrupted" if len(results) % 2 else None)
        rebuilt = journal.summary(campaign)
    assert rebuilt.total == live.total
    assert rebuilt.counts == live.counts
    assert rebuilt.reasons == live.reasons
    assert rebuilt.by_variant == live.by_variant
    assert rebuilt.by_platform == live.by_platform
    assert rebuilt.retries == live.retries
    assert rebuilt.stopped_reason == ("interrupted" if len(results) % 2 else None)
    assert rebuilt.finished_at is not None and rebuilt.finished_at >= rebuilt.started_at
    assert rebuilt.to_dict()["outcomes"] == live.to_dict()["outcomes"]
