"""`pushctl engage import`: events attributed by provider id, campaign + token/user, token alone or
campaign + variant; duplicates once; the attribution window; bad rows located or skipped."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NOW = "2026-03-02T09:00:00Z"


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample A/B template sent to the sample audience on the emulator at NOW (campaign smoke)."""
    tmp = tmp_path_factory.mktemp("sent")
    journal = tmp / "j.sqlite3"
    res = CliRunner().invoke(
        app,
        ["--output", "json", "send", str(SAMPLES / "templates" / "ab-test.yaml"),
         "--audience", str(SAMPLES / "audience.csv"), "--emulator", "--journal", str(journal),
         "--campaign", "smoke"],
        env={"PUSHCTL_NOW": NOW},
    )  # fmt: skip
    assert res.exit_code == 1, res.stderr  # the sample's bad tokens
    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT d.token, d.variant, d.provider_id, u.user_id FROM devices d "
            "LEFT JOIN device_users u USING (campaign_id, token) "
            "WHERE d.outcome = 'delivered' ORDER BY d.line"
        ).fetchall()
    return {"journal": journal, "devices": rows}


def _copy(sent: dict[str, object], tmp_path: Path) -> Path:
    target = tmp_path / "j.sqlite3"
    with sqlite3.connect(sent["journal"]) as src, sqlite3.connect(target) as dst:  # type: ignore[arg-type]
        src.backup(dst)
    return target


def _import(journal: Path, text: str, name: str, *args: str) -> tuple[int, dict[str, object], str]:
    path = journal.parent / name
    path.write_text(text)
    res = CliRunner().invoke(
        app, ["--output", "json", "engage", "import", str(path), "--journal", str(journal), *args]
    )
    return res.exit_code, json.loads(res.stdout.splitlines()[-1]) if res.stdout else {}, res.stderr


def _attributed(journal: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(journal) as conn:
        return {
            e: (a, u)
            for e, a, u in conn.execute("SELECT event_id, attribution, user_id FROM engagement_events")
        }


def test_every_way_of_naming_a_notification(sent: dict[str, object], tmp_path: Path) -> None:
    journal = _copy(sent, tmp_path)
    devices = sent["devices"]
    assert isinstance(devices, list)
    ios = next(d for d in devices if d[2] and "-" in d[2] and "/" not in d[2])  # an apns-id (UUID)
    fcm = next(d for d in devices if d[2] and "/messages/" in d[2])
    third, fourth = [d for d in devices if d not in (ios, fcm) and d[3]][:2]
    fcm_tail = fcm[2].split("/messages/")[1]
    text = "\n".join([
        "event_id,type,ts,campaign,token,user_id,variant,provider_id,value",
        f"e1,opened,2026-03-02T09:10:00Z,,,,,{ios[2].upper()},",           # apns-id, any case
        f"e2,push_converted,2026-03-02T09:20:00Z,,,,,{fcm_tail},19.90",     # FCM id as the app sees it
        f"e3,opened,2026-03-02T10:00:00Z,smoke,{third[0]},,,,",             # campaign + token
        f"e4,opened,2026-03-02T11:00:00+01:00,smoke,,{fourth[3]},,,",       # campaign + user
        f"e5,dismissed,1772445600,,{third[0]},,,,",                         # token alone (last touch)
        "e6,opened,2026-03-02T10:00:00Z,smoke,,,B,,",                       # campaign + variant
        "e7,opened,2026-03-02T10:00:00Z,other-campaign,,u1,,,",             # nothing matches
        f"e8,opened,2026-03-06T10:00:00Z,smoke,{ios[0]},,,,",               # 97 h after the send
        f"e3,opened,2026-03-02T10:00:00Z,smoke,{third[0]},,,,",             # duplicate id
    ]) + "\n"  # fmt: skip
    code, summary, stderr = _import(journal, text, "events.csv")
    assert code == 0, stderr
    assert summary["read"] == 9 and summary["duplicates"] == 1
    assert summary["attributed"] == 5 and summary["anonymous"] == 1
    assert summary["unmatched"] == 1 and summary["outside_window"] == 1
    assert summary["by_kind"] == {"open": 4, "conversion": 1, "dismissal": 1}
    assert "outside the 72h attribution window" in stderr and "events.csv:9" in stderr
    got = _attributed(journal)
    assert got["e1"][0] == got["e2"][0] == got["e4"][0] == got["e5"][0] == "attributed"
    assert got["e6"][0] == "anonymous" and got["e7"][0] == "unmatched" and got["e8"][0] == "outside_window"
    assert got["e3"] == ("attributed", third[3])  # the user id filled in from the campaign
    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT token, opened_at, converted_at, dismissed_at, value FROM engagement_devices"
        )
        engaged = {t: (o, c, d, v) for t, o, c, d, v in rows}
        tallies = conn.execute("SELECT variant, opened FROM engagement_tallies").fetchall()
    assert set(engaged) == {ios[0], fcm[0], third[0], fourth[0]}
    assert engaged[fcm[0]][1] is not None and engaged[fcm[0]][3] == pytest.approx(19.9)
    assert engaged[third[0]][2] is not None  # the dismissal found the last delivery to the token
    assert tallies == [("B", 1)]
    # Again: every event id is known, nothing counts twice.
    code, summary, _ = _import(journal, text, "events.csv")
    assert code == 0 and summary["duplicates"] == 9 and summary["attributed"] == 0


def test_a_longer_window_counts_late_events(sent: dict[str, object], tmp_path: Path) -> None:
    journal = _copy(sent, tmp_path)
    token = sent["devices"][0][0]  # type: ignore[index]
    event = {"id": "late", "type": "opened", "ts": "2026-03-06T10:00:00Z",
             "data": {"pushctl_campaign": "smoke", "token": token}}  # fmt: skip
    text = json.dumps(event) + "\n"
    code, summary, _ = _import(journal, text, "late.jsonl", "--window", "7d")
    assert code == 0 and summary["attributed"] == 1


def test_a_bad_row_is_located_or_skipped_and_counted(sent: dict[str, object], tmp_path: Path) -> None:
    journal = _copy(sent, tmp_path)
    text = "\n".join([
        "event_id,type,ts,campaign,token",
        "a,opened,2026-03-02T10:00:00Z,smoke,tok",
        "b,clicked,2026-03-02T10:00:00Z,smoke,tok",
        "c,opened,yesterday,smoke,tok",
        "d,opened,2026-03-02T10:00:00,smoke,tok",
        "e,opened,2026-03-02T10:00:00Z,,",
    ]) + "\n"  # fmt: skip
    code, _, stderr = _import(journal, text, "bad.csv")
    assert code == 2
    assert "bad.csv:3: field 'type': unknown event type 'clicked'" in stderr
    assert "Traceback" not in stderr
    code, summary, stderr = _import(journal, text, "bad.csv", "--on-bad-row", "skip")
    assert code == 0 and summary["bad_rows"] == 4 and summary["read"] == 1
    assert "bad.csv:4: field 'ts': not a time" in stderr
    assert "bad.csv:5: field 'ts'" in stderr and "no UTC offset" in stderr
    assert "bad.csv:6: field 'provider_id': names no notification" in stderr


def test_opens_without_a_journal_start_one_for_best_hours(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("type,ts,user_id\nopened,2026-03-02T10:00:00Z,u1\n")
    journal = tmp_path / "new.sqlite3"
    args = ["--output", "json", "engage", "import", str(path), "--journal", str(journal)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["unmatched"] == 1 and "they tell when their users open" in res.stderr
    assert journal.stat().st_mode & 0o777 == 0o600


def test_trigger_run_records_push_opened_events(sent: dict[str, object], tmp_path: Path) -> None:
    journal = _copy(sent, tmp_path)
    token, user = sent["devices"][0][0], sent["devices"][0][3]  # type: ignore[index]
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  hello:\n    on: signed_up\n    template: {title: Hi, body: there}\n")
    events = [
        {"id": "o1", "type": "push_opened", "ts": "2026-03-02T09:30:00Z", "token": token,
         "data": {"pushctl_campaign": "smoke"}},
        {"id": "o2", "type": "push_converted", "ts": "2026-03-02T09:40:00Z", "user_id": user,
         "data": {"campaign": "smoke", "value": 12.5}},
        {"id": "o3", "type": "push_converted", "ts": "2026-03-02T09:30:00Z", "user_id": "u1",
         "data": {"value": "lots"}},
    ]  # fmt: skip
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    res = CliRunner().invoke(
        app,
        ["--output", "json", "trigger", "run", str(rules), "--events", str(source), "--emulator",
         "--journal", str(journal), "--until-idle", "0.2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["engagement"] == {"attributed": 2, "bad_event": 1}
    got = _attributed(journal)
    assert got["o1"] == ("attributed", user) and got["o2"][0] == "attributed"


def test_forget_erases_a_users_engagement_and_preferences_but_keeps_report_totals(
    sent: dict[str, object], tmp_path: Path
) -> None:
    journal = _copy(sent, tmp_path)
    devices = sent["devices"]
    assert isinstance(devices, list)
    token, user = next((d[0], d[3]) for d in devices if d[3])
    events = tmp_path / "e.csv"
    events.write_text(f"event_id,type,ts,campaign,token\nx1,opened,2026-03-02T09:10:00Z,smoke,{token}\n")
    prefs = tmp_path / "p.csv"
    prefs.write_text(f"user_id,category,opted_in\n{user},marketing,false\nsomeone,marketing,false\n")
    runner = CliRunner()
    assert runner.invoke(app, ["engage", "import", str(events), "--journal", str(journal)]).exit_code == 0
    assert runner.invoke(app, ["prefs", "import", str(prefs), "--journal", str(journal)]).exit_code == 0
    report = ["--output", "json", "runs", "report", "smoke", "--journal", str(journal)]
    before = json.loads(runner.invoke(app, report).stdout)["funnel"]
    assert before["opened"] == 1
    res = runner.invoke(app, ["--output", "json", "forget", "--user", user, "--journal", str(journal)])
    assert res.exit_code == 0, res.stderr
    removed = json.loads(res.stdout)["removed"]
    tables = ("engagement_events", "engagement_devices", "preferences")
    assert {k: removed[k] for k in tables} == dict.fromkeys(tables, 1)
    assert json.loads(runner.invoke(app, report).stdout)["funnel"] == before  # tallied, not lost
    with sqlite3.connect(journal) as conn:
        assert conn.execute("SELECT COUNT(*) FROM preferences").fetchone() == (1,)  # the other user's stays
        dump = "\n".join(conn.iterdump())
    assert token not in dump and f"'{user}'" not in dump
