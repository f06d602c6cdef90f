"""`send --ab-test 10%` then `send --winner-of`: on the emulator, the test slice gets the variants in
the first run, every other device exactly the winner in the second, no device two notifications
(the inbox), and `runs show` explains both runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Delivery, Emulator
from pushctl.journal import in_ab_slice
from pushctl.message import Template

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TEMPLATE = SAMPLES / "templates" / "spring-sale.yaml"
AUDIENCE = SAMPLES / "engagement" / "audience.csv"


def _variant(d: Delivery) -> str:
    data = d.payload if d.provider == "apns" else d.payload["data"]
    return str(data["pushctl_variant"])


def _tokens() -> list[str]:
    with AUDIENCE.open(newline="") as fh:
        return [row["token"] for row in csv.DictReader(fh)]


def _send(base: list[str], journal: Path, now: str, *args: str, output: str = "json") -> Any:
    return CliRunner().invoke(
        app,
        [*base, "--output", output, "send", str(TEMPLATE), "--audience", str(AUDIENCE),
         "--journal", str(journal), "--show", "none", *args],
        env={"PUSHCTL_NOW": now, "COLUMNS": "200"},
    )  # fmt: skip


def test_ab_test_then_winner_of(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    tokens = _tokens()
    template = Template.load(TEMPLATE)
    in_slice = {t for t in tokens if in_ab_slice("spring-rollout", t, 0.10)}
    assert 300 < len(in_slice) < 500
    runner = CliRunner()
    with Emulator(tmp_path / "emu") as emu:
        base = ["--config", str(emu.write_profile(tmp_path / "config.toml")), "--profile", "emulator"]
        first = _send(
            base, journal, "2026-03-02T09:00:00Z", "--ab-test", "10%", "--campaign", "spring-rollout"
        )
        assert first.exit_code == 0, first.stderr
        summary = json.loads(first.stdout.splitlines()[-1])
        assert summary["outcomes"]["delivered"] == len(in_slice)
        assert summary["outcomes"]["deferred"] == len(tokens) - len(in_slice)
        assert {"outcome": "deferred", "reason": "ab_holdout", "count": len(tokens) - len(in_slice)} in (
            summary["reasons"]
        )
        # The slice, and only the slice, got a notification: its own variant.
        assert emu.inbox.tokens() == in_slice
        for d in emu.inbox.all():
            assert _variant(d) == template.choose_variant(d.token, "spring-rollout")
        assert {_variant(d) for d in emu.inbox.all()} == {"short", "long"}

        imported = runner.invoke(
            app, ["--output", "json", "engage", "import", str(SAMPLES / "engagement" / "ab-test-events.csv"),
                  "--journal", str(journal)],
        )  # fmt: skip
        assert imported.exit_code == 0 and json.loads(imported.stdout)["attributed"] > 40

        second = _send(base, journal, "2026-03-05T09:00:00Z", "--winner-of", "spring-rollout")
        assert second.exit_code == 0, second.stderr
        assert "winner of spring-rollout: `short`" in second.stderr
        assert f"{len(in_slice):,} devices were already settled" in second.stderr
        final = json.loads(second.stdout.splitlines()[-1])
        assert final["campaign"] == "spring-rollout" and final["outcomes"]["delivered"] == len(tokens)
        assert final["this_run"] == {"delivered": len(tokens) - len(in_slice)}

        # Every device exactly once; the held-back ones exactly the winner.
        assert emu.inbox.duplicates() == {}
        assert emu.inbox.tokens() == set(tokens)
        for d in emu.inbox.all():
            if d.token not in in_slice:
                assert _variant(d) == "short", d.token

        # Again: nothing left to send, the winner stays.
        again = _send(
            base, journal, "2026-03-06T09:00:00Z", "--winner-of", "spring-rollout", "--metric", "conversions"
        )
        assert again.exit_code == 0 and json.loads(again.stdout.splitlines()[-1])["this_run"] == {}
        assert emu.inbox.total() == len(tokens)

    shown = runner.invoke(
        app,
        ["--output", "table", "runs", "show", "spring-rollout", "--journal", str(journal), "--show", "none"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    held = len(tokens) - len(in_slice)
    assert f"A/B test (--ab-test 10%): {len(in_slice):,} devices in the test slice got the variants" in text
    assert f"{held:,} were held back for the winner" in text
    assert (
        "Winner `short` (--winner-of, on opens" in text
        and "variant `short` beats `long` on open rate" in text
    )
    assert f"Delivered to the held-back devices: short {held:,}" in text
    as_json = runner.invoke(
        app,
        ["--output", "json", "runs", "show", "spring-rollout", "--journal", str(journal), "--show", "none"],
    )
    record = json.loads(as_json.stdout.splitlines()[0])
    assert (
        record["type"] == "ab_test"
        and record["winner"] == "short"
        and record["rollout_delivered"] == {"short": held}
    )


def test_without_a_winner_wait_holds_and_a_named_variant_goes(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        base = ["--config", str(emu.write_profile(tmp_path / "config.toml")), "--profile", "emulator"]
        first = _send(base, journal, "2026-03-02T09:00:00Z", "--ab-test", "10", "--campaign", "t1")
        assert first.exit_code == 0, first.stderr
        sent = emu.inbox.total()
        # No opens imported: nothing is significant.
        wait = _send(base, journal, "2026-03-03T09:00:00Z", "--winner-of", "t1", "--if-no-winner", "wait")
        assert wait.exit_code == 0 and "no winner for t1 yet" in wait.stderr and "nothing sent" in wait.stderr
        assert emu.inbox.total() == sent
        wrong = _send(base, journal, "2026-03-03T09:00:00Z", "--winner-of", "t1", "--if-no-winner", "medium")
        assert wrong.exit_code == 2 and "no variant 'medium'" in wrong.stderr
        named = _send(base, journal, "2026-03-03T09:00:00Z", "--winner-of", "t1", "--if-no-winner", "long")
        assert named.exit_code == 0, named.stderr
        assert "sending `long` (--if-no-winner)" in named.stderr
        assert emu.inbox.duplicates() == {}
        late = {d.token for d in emu.inbox.all()} - {t for t in _tokens() if in_ab_slice("t1", t, 0.10)}
        assert late and all(_variant(d) == "long" for d in emu.inbox.all() if d.token in late)


def test_refusals(tmp_path: Path) -> None:
    runner = CliRunner()
    journal = tmp_path / "j.sqlite3"
    args = ["send", "--audience", str(SAMPLES / "audience.csv"), "--emulator", "--journal", str(journal)]
    no_variants = runner.invoke(app, [*args[:1], str(SAMPLES / "templates" / "welcome.yaml"), *args[1:],
                                      "--ab-test", "10%"])  # fmt: skip
    assert no_variants.exit_code == 2 and "at least two variants" in no_variants.stderr
    share = runner.invoke(app, [*args[:1], str(TEMPLATE), *args[1:], "--ab-test", "150%"])
    assert share.exit_code == 2 and "less than 100%" in share.stderr
    both = runner.invoke(app, [*args[:1], str(TEMPLATE), *args[1:], "--ab-test", "10%", "--winner-of", "x"])
    assert both.exit_code == 2 and "give one of them" in both.stderr
    plain = runner.invoke(
        app, ["--output", "json", *args[:1], str(TEMPLATE), *args[1:], "--campaign", "plain"]
    )
    assert plain.exit_code == 1, plain.stderr
    not_ab = runner.invoke(app, [*args[:1], str(TEMPLATE), *args[1:], "--winner-of", "plain"])
    assert not_ab.exit_code == 2 and "was not sent with --ab-test" in not_ab.stderr
    late_ab = runner.invoke(
        app, [*args[:1], str(TEMPLATE), *args[1:], "--campaign", "plain", "--ab-test", "5%"]
    )
    assert late_ab.exit_code == 2 and "was started without --ab-test" in late_ab.stderr
