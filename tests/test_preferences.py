"""Users' preferences: a user opted out of `marketing` gets no marketing campaign and no marketing
trigger, but does get an `orders` one; every source counts (--preferences, pref_<category>
columns, `prefs import`), an opt-out wins, mandatory categories ignore opt-outs, and quiet hours,
caps and suppression keep working beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AUDIENCE = SAMPLES / "audience.csv"
LI_WEI = "a2cec255404e4fb440034d6608697a8d41bed440e50454f31af3176813e02ea6"  # u1003
ALICE = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"  # u1001

RULES = """
name: prefs
rules:
  promo:
    on: promo_started
    category: marketing
    template:
      title: "A sale for you, {{ name }}"
      body: "{{ event.data.what }}"
  shipped:
    on: order_shipped
    template: ORDERS
"""
EVENTS = [
    {
        "id": "e1",
        "type": "promo_started",
        "ts": "2026-03-02T09:00:00Z",
        "user_id": "u1003",
        "data": {"what": "30%"},
    },
    {"id": "e2", "type": "order_shipped", "ts": "2026-03-02T09:01:00Z", "user_id": "u1003", "data": {}},
    {
        "id": "e3",
        "type": "promo_started",
        "ts": "2026-03-02T09:02:00Z",
        "user_id": "u1001",
        "data": {"what": "30%"},
    },
]


def _results(stdout: str) -> dict[str, tuple[str, str]]:
    lines = [json.loads(line) for line in stdout.splitlines()]
    return {r["token"]: (r["outcome"], r["reason"]) for r in lines if r.get("type") == "result"}


def _send(base: list[str], journal: Path, template: str, *args: str, audience: Path = AUDIENCE) -> Any:
    return CliRunner().invoke(
        app,
        [*base, "--output", "json", "send", str(SAMPLES / "templates" / template),
         "--audience", str(audience), "--journal", str(journal), *args],
    )  # fmt: skip


def test_opted_out_of_marketing_gets_orders_but_no_marketing_campaign_or_trigger(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("user_id,category,opted_in\nu1003,marketing,false\nu1001,marketing,true\n")
    runner = CliRunner()
    with Emulator(tmp_path / "emu") as emu:
        base = ["--config", str(emu.write_profile(tmp_path / "config.toml")), "--profile", "emulator"]
        imported = runner.invoke(app, [*base, "--output", "json", "prefs", "import", str(prefs),
                                       "--journal", str(journal)])  # fmt: skip
        assert imported.exit_code == 0, imported.stderr
        assert json.loads(imported.stdout)["saved"] == 2

        # Campaigns: the journal's choices apply without any option.
        marketing = _send(base, journal, "spring-sale.yaml", "--campaign", "sale")
        assert marketing.exit_code == 1, marketing.stderr  # the sample's invalid tokens
        assert _results(marketing.stdout)[LI_WEI] == ("skipped", "preference")
        assert _results(marketing.stdout)[ALICE][0] == "delivered"
        orders = _send(base, journal, "order-update.yaml", "--campaign", "order")
        assert _results(orders.stdout)[LI_WEI][0] == "delivered"
        assert [d.payload["aps"]["alert"]["title"] for d in emu.inbox.received(LI_WEI)] == [
            "Your order is on its way"
        ]

        # Trigger rules: the rule's category, else its template's (orders).
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.replace("ORDERS", str(SAMPLES / "templates" / "order-update.yaml")))
        events = tmp_path / "events.jsonl"
        events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
        before = {token: emu.inbox.count(token) for token in (LI_WEI, ALICE)}
        run = runner.invoke(
            app,
            [*base, "--output", "json", "trigger", "run", str(rules), "--events", str(events), "--devices",
             str(AUDIENCE), "--journal", str(journal), "--until-idle", "0.5"],
        )  # fmt: skip
        assert run.exit_code == 0, run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        assert lines[-1]["skipped"] == {"preference": 1}
        assert emu.inbox.count(LI_WEI) == before[LI_WEI] + 1
        assert emu.inbox.received(LI_WEI)[-1].payload["aps"]["alert"]["title"] == "Your order is on its way"
        assert emu.inbox.count(ALICE) == before[ALICE] + 1
        assert emu.inbox.received(ALICE)[-1].payload["aps"]["alert"]["title"] == "A sale for you, Alice"

    shown = runner.invoke(app, ["--output", "json", "prefs", "show", "u1003", "--journal", str(journal)])
    assert json.loads(shown.stdout) == {
        "type": "preference", "user_id": "u1003", "token": None, "category": "marketing", "opted_in": False,
        "source": str(prefs),
    }  # fmt: skip


def test_every_source_counts_an_opt_out_wins_and_mandatory_categories_go_through(tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    rows = AUDIENCE.read_text().splitlines()
    # Alice (the first row) says no in her own pref_marketing column; the others say nothing.
    body = [rows[1] + ",no", *(row + "," for row in rows[2:])]
    audience.write_text("\n".join([rows[0] + ",pref_marketing", *body]) + "\n")
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        json.dumps({"user_id": "u1003", "category": "Marketing", "opted_in": "no"}) + "\n"
        + json.dumps({"token": ALICE, "category": "security", "opted_in": False}) + "\n"
        + json.dumps({"user_id": "u1004", "category": "marketing", "opted_in": "yes"}) + "\n"
    )  # fmt: skip
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        base = ["--config", str(config), "--profile", "emulator"]
        journal = tmp_path / "j.sqlite3"
        res = _send(base, journal, "spring-sale.yaml", "--preferences", str(prefs), audience=audience)
        got = _results(res.stdout)
        assert got[ALICE] == ("skipped", "preference")  # pref_marketing=no in the audience row
        assert got[LI_WEI] == ("skipped", "preference")  # the file (category names ignore case)
        assert sum(1 for outcome, _ in got.values() if outcome == "skipped") == 2
        security = _send(base, journal, "critical-alert.yaml", "--preferences", str(prefs))
        assert _results(security.stdout)[ALICE] == ("skipped", "preference")
        # A category the profile makes mandatory is sent whatever the preferences say.
        config.write_text(
            config.read_text() + '\n[profiles.emulator.preferences]\nmandatory_categories = ["security"]\n'
        )
        forced = _send(
            base, journal, "critical-alert.yaml", "--preferences", str(prefs), "--campaign", "forced"
        )
        assert _results(forced.stdout)[ALICE][0] == "delivered"
        # Suppression and caps keep working beside preferences.
        suppress = tmp_path / "suppress.txt"
        suppress.write_text("u1004\n")
        capped = _send(base, journal, "order-update.yaml", "--suppress", str(suppress), "--cap", "1/24h",
                       "--preferences", str(prefs), "--campaign", "capped")  # fmt: skip
        reasons = {reason for outcome, reason in _results(capped.stdout).values() if outcome == "skipped"}
        assert reasons == {"suppressed", "frequency_cap"}


def test_bad_preference_rows(tmp_path: Path) -> None:
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("user_id,category,opted_in\nu1,marketing,false\nu2,marketing,maybe\n,marketing,no\n")
    journal = tmp_path / "j.sqlite3"
    res = CliRunner().invoke(app, ["prefs", "import", str(prefs), "--journal", str(journal)])
    assert res.exit_code == 2 and "prefs.csv:3: field 'opted_in': not a yes or no: 'maybe'" in res.stderr
    res = CliRunner().invoke(
        app,
        [
            "--output",
            "json",
            "prefs",
            "import",
            str(prefs),
            "--journal",
            str(journal),
            "--on-bad-row",
            "skip",
        ],
    )
    assert (
        res.exit_code == 0
        and json.loads(res.stdout)["bad_rows"] == 2
        and json.loads(res.stdout)["saved"] == 1
    )
    send = CliRunner().invoke(app, ["send", str(SAMPLES / "templates" / "spring-sale.yaml"), "--audience",
                                    str(AUDIENCE), "--emulator", "--preferences", str(prefs)])  # fmt: skip
    assert send.exit_code == 2 and "prefs.csv:3: field 'opted_in'" in send.stderr
