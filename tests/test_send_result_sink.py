"""Result lines are written in batches, but never behind the journal: every result the journal has
committed is already on stdout and in the --results file (what a crash, even kill -9, leaves)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from pushctl.cli.console import OutputFormat, Terminal
from pushctl.cli.progress import SendProgress
from pushctl.cli.result_sink import MAX_DELAY, MAX_LINES, ResultSink
from pushctl.delivery import InvalidTokenFile, ResultFile
from pushctl.journal import FLUSH_ROWS, Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def result(i: int) -> Result:
    outcome = Outcome.INVALID_TOKEN if i % 7 == 0 else Outcome.DELIVERED
    return Result(f"tok{i:05d}", Platform.IOS, outcome, "", 200, 1, 1.5, f"id{i}", "", i + 2)


def test_outputs_are_written_before_each_journal_commit(tmp_path: Path) -> None:
    asyncio.run(outputs_before_commit(tmp_path))


async def outputs_before_commit(tmp_path: Path) -> None:
    stdout = io.StringIO()
    terminal = Terminal(output=OutputFormat.JSON, stdout=stdout, stderr=io.StringIO())
    files: list[ResultFile | InvalidTokenFile] = [
        ResultFile(tmp_path / "results.jsonl"), InvalidTokenFile(tmp_path / "prune.txt")
    ]
    sink = ResultSink(terminal, SendProgress(terminal, None), files)
    seen_at_commit: list[tuple[int, int, int, int]] = []
    with Journal(tmp_path / "journal.sqlite3") as journal:
        run = journal.open_run("c1", template_fp="t", audience_fp="a", options={})

        def before_commit() -> None:
            sink.flush()
            committed = journal._conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            written = len(stdout.getvalue().splitlines())
            in_file = len((tmp_path / "results.jsonl").read_text().splitlines())
            pruned = len((tmp_path / "prune.txt").read_text().splitlines())
            seen_at_commit.append((committed, written, in_file, pruned))

        run.before_commit = before_commit
        total = 2 * FLUSH_ROWS + 17
        for i in range(total):
            sink.add(result(i))  # the order run_campaign uses: outputs first, then the journal
            run.record(result(i))
            if i < FLUSH_ROWS - 1:  # nothing is written line by line
                assert stdout.getvalue() == ""
        run.finish()
        sink.close()
    for f in files:
        f.close()
    assert len(seen_at_commit) >= 3  # two full batches and the tail at finish()
    for committed, written, in_file, _ in seen_at_commit:
        # At each commit: everything committed before, plus the batch about to be, is written.
        assert written == in_file and written >= committed
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [obj["token"] for obj in lines] == [f"tok{i:05d}" for i in range(total)]
    assert lines[0] == {"type": "result", **result(0).to_dict()}
    assert (tmp_path / "prune.txt").read_text().split() == [f"tok{i:05d}" for i in range(0, total, 7)]


def test_lines_go_out_every_max_lines_and_after_a_delay() -> None:
    asyncio.run(every_max_lines_and_after_a_delay())


async def every_max_lines_and_after_a_delay() -> None:
    stdout = io.StringIO()
    terminal = Terminal(output=OutputFormat.JSON, stdout=stdout, stderr=io.StringIO())
    sink = ResultSink(terminal, SendProgress(terminal, None), [])
    for i in range(MAX_LINES + 5):
        sink.add(result(i))
    assert len(stdout.getvalue().splitlines()) == MAX_LINES
    await asyncio.sleep(MAX_DELAY * 2)  # the tail goes out without another result or commit
    assert len(stdout.getvalue().splitlines()) == MAX_LINES + 5
    sink.add(result(0))
    sink.close()
    assert len(stdout.getvalue().splitlines()) == MAX_LINES + 6
