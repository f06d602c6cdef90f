"""Event sources and the event model: JSON Lines files (with --follow across rotation and
truncation), stdin, the field mapping and the reasons a malformed event gets."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest

from pushctl.triggers import FieldMap, FileSource, StdinSource, parse_event, parse_line, parse_time


def _ids(records: list) -> list[str]:
    return [json.loads(r.text)["id"] for r in records]


def _line(eid: str) -> str:
    return json.dumps({"id": eid, "type": "t", "user_id": "u"}) + "\n"


def test_follow_keeps_reading_across_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_line("a") + _line("b"))

    async def scenario() -> list[list[str]]:
        source = FileSource(path, follow=True)
        await source.open()
        seen = [_ids(await source.read(10, 0.01))]
        with path.open("a") as fh:
            fh.write(_line("c") + '{"id": "d", "ty')  # a writer mid-line: d waits for its end
        seen.append(_ids(await source.read(10, 0.01)))
        with path.open("a") as fh:
            fh.write('pe": "t", "user_id": "u"}\n')
        seen.append(_ids(await source.read(10, 0.01)))
        os.rename(path, tmp_path / "events.jsonl.1")  # logrotate: move away, start a new file
        path.write_text(_line("e"))
        seen.append(_ids(await source.read(10, 0.01)))
        path.write_text("")  # copytruncate: the same file, emptied, then written again
        assert await source.read(10, 0.01) == []
        with path.open("a") as fh:
            fh.write(_line("f"))
        seen.append(_ids(await source.read(10, 0.01)))
        assert source.caught_up and not source.exhausted
        await source.close()
        return seen

    assert asyncio.run(scenario()) == [["a", "b"], ["c"], ["d"], ["e"], ["f"]]


def test_a_file_without_follow_ends_and_a_huge_line_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_line("a") + "x" * (1 << 20 | 5) + "\n\n" + _line("b"))

    async def scenario() -> tuple[list, bool]:
        source = FileSource(path)
        await source.open()
        records = await source.read(10, 0.01)
        assert await source.read(10, 0.01) == []
        await source.close()
        return records, source.exhausted

    records, exhausted = asyncio.run(scenario())
    assert exhausted and [r.problem for r in records] == ["", "line longer than 1 MiB", ""]
    assert [r.where for r in records] == [f"{path}:1", f"{path}:2", f"{path}:4"]


def test_stdin_source_reads_until_the_end() -> None:
    async def scenario() -> list[str]:
        source = StdinSource(io.StringIO(_line("a") + "\n" + _line("b")))
        await source.open()
        got: list[str] = []
        while not source.exhausted:
            got += _ids(await source.read(10, 1.0))
        return got

    assert asyncio.run(scenario()) == ["a", "b"]


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1], "not a JSON object (got list)"),
        ({"type": "t", "user_id": "u"}, "missing 'id' (the event id)"),
        ({"id": "1", "user_id": "u"}, "missing 'type' (the event type)"),
        ({"id": "1", "type": "t"}, "neither 'user_id' nor 'token': whom is it for?"),
        ({"id": "1", "type": "t", "user_id": "u", "ts": "yesterday"}, "'ts' is not a time"),
        ({"id": "1", "type": "t", "user_id": "u", "ts": "2026-11-20T09:00:00"}, "'ts' is not a time"),
        ({"id": "1", "type": "t", "user_id": "u", "data": [1]}, "'data' must be a JSON object, got list"),
        ({"id": "x" * 201, "type": "t", "user_id": "u"}, "'id' is longer than 200 characters"),
    ],
)
def test_malformed_events_get_a_reason(obj: object, reason: str) -> None:
    result = parse_event(obj, FieldMap(), now=0.0)
    assert isinstance(result, str) and result.startswith(reason)


def test_field_mapping_and_times() -> None:
    fields = FieldMap(id="event_id", type="name", ts="meta.at", user_id="uid", data="props")
    obj = {
        "event_id": 7,
        "name": "order_placed",
        "meta": {"at": 1_763_629_200_000},
        "uid": 42,
        "props": {"n": 1},
    }
    event = parse_event(obj, fields, now=0.0)
    assert not isinstance(event, str)
    assert (event.id, event.type, event.ts, event.user_id, event.data) == (
        "7",
        "order_placed",
        1_763_629_200.0,
        "42",
        {"n": 1},
    )
    assert event.flat()["event.data.n"] == "1" and event.context()["ts"] == "2025-11-20T09:00:00Z"
    assert parse_time("2026-11-20T10:00:00+01:00") == parse_time("2026-11-20T09:00:00Z") == 1_795_165_200.0
    assert (
        parse_line("{nope", FieldMap(), now=0.0)
        == "invalid JSON: Expecting property name enclosed in double quotes"
    )
