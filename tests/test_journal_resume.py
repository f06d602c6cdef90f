"""Journal write path: resume states, fingerprints, ids, batching and cross-campaign queries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushctl.errors import CampaignLocked, InputError
from pushctl.journal import DeviceState, Journal, Run
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result

FP = {"template_fp": "t" * 64, "audience_fp": "a" * 64, "options": {"concurrency": 10}}


def _open(journal: Journal, campaign: str = "spring", **kw: object) -> Run:
    args: dict[str, object] = {**FP, **kw}
    return journal.open_run(campaign, **args)  # type: ignore[arg-type]


def _result(token: str, outcome: Outcome = Outcome.DELIVERED, **kw: object) -> Result:
    return Result(token=token, platform=Platform.IOS, outcome=outcome, attempts=1, **kw)  # type: ignore[arg-type]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "j" / "journal.sqlite3") as j:
        yield j


def test_new_run_then_resume_reports_each_device_state(journal: Journal) -> None:
    run = _open(journal)
    assert not run.resumed
    run.mark_inflight([(t, Platform.IOS, i, "") for i, t in enumerate(["a", "b", "c", "d"], 1)])
    run.record(_result("a"))
    run.record(_result("b", Outcome.INVALID_TOKEN, reason="Unregistered"))
    run.record(_result("c", Outcome.DEFERRED, reason="quiet hours"))
    # "d" stays in flight: the process "crashed" after sending it.
    run.abandon()

    again = _open(journal)
    assert again.resumed
    assert again.lookup(["a", "b", "c", "d", "e"]) == {
        "a": DeviceState.SETTLED,
        "b": DeviceState.SETTLED,
        "c": DeviceState.DEFERRED,
        "d": DeviceState.INFLIGHT,
    }
    assert again.collapse_id == run.collapse_id == "pushctl-spring"
    again.finish()
    info = journal.run_info("spring")
    assert info.runs_count == 2
    assert info.status == "completed"
    assert info.inflight == 1
    assert info.counts == {"delivered": 1, "invalid_token": 1, "deferred": 1}


def test_lookup_sees_buffered_results_before_flush(journal: Journal) -> None:
    run = _open(journal)
    run.mark_inflight([("a", Platform.ANDROID, 1, "")])
    run.record(_result("a"))  # buffered: fewer than 500 rows and within 0.2 s
    assert run.lookup(["a"]) == {"a": DeviceState.SETTLED}
    run.finish()


def test_lookup_chunks_large_batches(journal: Journal) -> None:
    run = _open(journal)
    tokens = [f"tok{i:05d}" for i in range(1700)]
    run.mark_inflight([(t, Platform.IOS, i, "") for i, t in enumerate(tokens)])
    states = run.lookup(tokens)
    assert len(states) == 1700
    assert set(states.values()) == {DeviceState.INFLIGHT}
    run.finish()


def test_record_keeps_line_and_variant_from_the_mark(journal: Journal) -> None:
    run = _open(journal)
    run.mark_inflight([("a", Platform.IOS, 7, "B")])
    run.record(Result(token="a", platform=Platform.IOS, outcome=Outcome.DELIVERED, attempts=2))
    run.finish()
    (result,) = journal.results("spring")
    assert (result.line, result.variant, result.attempts) == (7, "B", 2)


@pytest.mark.parametrize("changed", ["template_fp", "audience_fp"])
def test_changed_fingerprint_is_refused_unless_forced(journal: Journal, changed: str) -> None:
    _open(journal).finish()
    with pytest.raises(InputError) as err:
        _open(journal, **{changed: "z" * 64})
    what = changed.removesuffix("_fp")
    assert f"campaign spring was started with a different {what}" in str(err.value)
    assert err.value.hint == "use a new --campaign id, or --force"
    # The refusal released the lock: a correct resume works at once.
    _open(journal).finish()

    forced = _open(journal, force=True, **{changed: "z" * 64})
    assert forced.resumed
    forced.finish()
    info = journal.run_info("spring")
    assert getattr(info, changed) == "z" * 64


def test_options_may_change_on_resume(journal: Journal) -> None:
    _open(journal).finish()
    _open(journal, options={"concurrency": 99}).finish()
    assert journal.run_info("spring").options == {"concurrency": 99}


@pytest.mark.parametrize("bad", ["", "a b", "x/y", "é", "a" * 65])
def test_bad_campaign_id_is_an_input_error(journal: Journal, bad: str) -> None:
    with pytest.raises(InputError) as err:
        _open(journal, campaign=bad)
    assert err.value.field == "--campaign"


def test_long_campaign_id_gets_a_collapse_id_of_at_most_64_bytes(journal: Journal) -> None:
    a, b = "x" * 63 + "a", "x" * 63 + "b"
    run_a, run_b = _open(journal, campaign=a), _open(journal, campaign=b)
    assert len(run_a.collapse_id.encode()) <= 64
    assert run_a.collapse_id != run_b.collapse_id
    run_a.finish()
    run_b.finish()


def test_derived_campaign_id_is_stable_and_input_sensitive() -> None:
    one = Journal.derive_campaign_id("t", "a", {"x": 1, "y": 2})
    assert one == Journal.derive_campaign_id("t", "a", {"y": 2, "x": 1})
    assert one != Journal.derive_campaign_id("t", "a", {"x": 2, "y": 2})
    assert one.startswith("c-") and len(one) == 14


def test_same_process_second_open_is_locked(journal: Journal) -> None:
    run = _open(journal)
    with pytest.raises(CampaignLocked):
        _open(journal)
    run.finish()
    _open(journal).finish()


def test_ten_thousand_records_are_visible_to_a_fresh_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        run = _open(journal)
        tokens = [f"{i:064x}" for i in range(10_000)]
        for start in range(0, len(tokens), 1000):
            run.mark_inflight([(t, Platform.IOS, i, "") for i, t in enumerate(tokens[start : start + 1000])])
        statements: list[str] = []
        journal._conn.set_trace_callback(statements.append)
        for t in tokens:
            run.record(_result(t))
        journal._conn.set_trace_callback(None)
        run.finish()
    # Results are written in batches (500 rows or 0.2 s), never one commit per device.
    commits = sum(1 for sql in statements if sql.strip().upper() == "COMMIT")
    assert 1 <= commits <= 100
    with Journal(path) as fresh:
        assert fresh.run_info("spring").counts == {"delivered": 10_000}
        assert sum(1 for _ in fresh.results("spring")) == 10_000


def test_delivered_counts_since_spans_campaigns(journal: Journal) -> None:
    for campaign in ("one", "two"):
        run = _open(journal, campaign=campaign)
        run.record(_result("a"))
        run.record(_result("b", Outcome.FAILED))
        run.finish()
    third = _open(journal, campaign="three")
    third.record(_result("a"))  # still buffered: the query must see it
    since = time.time() - 60
    assert journal.delivered_counts_since(["a", "b", "c"], since) == {"a": 3}
    assert journal.delivered_counts_since(["a"], time.time() + 60) == {}
    third.finish()


def test_known_invalid_and_prune_list(journal: Journal) -> None:
    run = _open(journal, campaign="one")
    run.record(_result("dead1", Outcome.INVALID_TOKEN, reason="Unregistered", line=2))
    run.record(_result("ok", line=1))
    run.record(_result("dead0", Outcome.INVALID_TOKEN, reason="BadDeviceToken", line=1))
    run.record(_result("flaky", Outcome.FAILED, reason="ServiceUnavailable", line=3))
    run.finish()
    assert list(journal.prune_list("one")) == ["dead0", "dead1"]
    assert journal.known_invalid(["dead0", "dead1", "ok", "flaky", "new"]) == {"dead0", "dead1"}
    with pytest.raises(InputError):
        journal.prune_list("nope")


def test_results_failures_first_and_unknown_run_suggests_close_matches(journal: Journal) -> None:
    run = _open(journal, campaign="spring-sale")
    run.record(_result("ok", line=1))
    run.record(_result("bad", Outcome.REJECTED, reason="PayloadTooLarge", line=2))
    run.record(_result("skip", Outcome.SKIPPED, line=3))
    run.finish()
    assert [r.token for r in journal.results("spring-sale")] == ["ok", "bad", "skip"]
    assert [r.token for r in journal.results("spring-sale", failures_first=True)] == ["bad", "ok", "skip"]
    with pytest.raises(InputError) as err:
        journal.run_info("spring-sal")
    assert "spring-sale" in str(err.value)


def test_list_runs_newest_first_with_status(journal: Journal) -> None:
    _open(journal, campaign="old").finish(stopped_reason="interrupted")
    time.sleep(0.01)
    live = _open(journal, campaign="new")
    infos = journal.list_runs()
    assert [i.campaign_id for i in infos] == ["new", "old"]
    assert [(i.status, i.stopped_reason) for i in infos] == [("running", None), ("stopped", "interrupted")]
    live.abandon()
    assert journal.run_info("new").status == "abandoned"
    assert len(journal.list_runs(limit=1)) == 1


def test_an_older_journal_gets_the_narrow_token_index_and_keeps_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with Journal(path) as j:
        run = _open(j, campaign="one")
        run.record(_result("a"))
        run.record(_result("dead", Outcome.INVALID_TOKEN, reason="Unregistered"))
        run.finish()
        # What journals before the narrowing held: outcome and settled_at in the token index.
        j._conn.execute("DROP INDEX devices_by_token")
        j._conn.execute("CREATE INDEX devices_by_token ON devices (token, outcome, settled_at)")
    with Journal(path) as j:
        (sql,) = j._conn.execute("SELECT sql FROM sqlite_master WHERE name = 'devices_by_token'").fetchone()
        assert sql.endswith("(token)")
        assert j.delivered_counts_since(["a", "dead"], time.time() - 60) == {"a": 1}
        assert j.known_invalid(["a", "dead"]) == {"dead"}


@pytest.mark.parametrize("where", ["device", "directory"])
def test_a_journal_path_that_is_not_a_file_is_named_for_what_it_is(tmp_path: Path, where: str) -> None:
    path = Path("/dev/zero") if where == "device" else tmp_path
    with pytest.raises(InputError, match="character device" if where == "device" else "directory"):
        Journal(path)
