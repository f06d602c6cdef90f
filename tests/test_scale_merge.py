"""`send --shard I/N` and `runs merge`: shards run at once against the emulator, then combined.

The emulator (in this process) is the judge of what was sent; the journals of what was recorded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_resume_support import (
    Pushctl,
    cli_env,
    emulator,
    journal_tokens,
    make_audience,
    run_pushctl,
    send_argv,
    write_template,
)
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result
from pushctl.scale import Shard, shard_of

CAMPAIGN = "spring"


def _runs(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["-o", "json", "runs", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _summary(stdout: str) -> dict[str, object]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summary = [d for d in lines if d.get("type") == "summary"][-1]
    return {k: summary[k] for k in ("total", "outcomes", "reasons", "platforms", "retries")}


@pytest.mark.slow
def test_four_shards_at_once_then_merge_equals_one_process(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", 2_000, dead=5)
    template = write_template(tmp_path / "template.yaml")
    shards = tmp_path / "shards"
    shards.mkdir()
    with emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        procs = [
            Pushctl(
                send_argv(cfg, template, audience.path, shards / f"s{i}.sqlite3", "--shard", f"{i}/4",
                          "--workers", "1", campaign=CAMPAIGN),
                tmp_path, f"shard{i}",
            )
            for i in range(4)
        ]  # fmt: skip
        finished = [p.wait() for p in procs]
        # 0, or 1 for a shard that holds one of the invalid tokens.
        assert all(f.code in (0, 1) for f in finished), [f.stderr for f in finished]
        # What the devices saw: every valid device exactly once, no invalid one.
        assert emu.inbox.tokens() == audience.valid
        assert not emu.inbox.duplicates()

        # The union of the shards is the audience; no device in two shards; each where the cut says.
        per_shard = [journal_tokens(shards / f"s{i}.sqlite3", CAMPAIGN) for i in range(4)]
        assert set().union(*per_shard) == set(audience.tokens)
        assert sum(len(s) for s in per_shard) == len(audience.tokens)
        for i, tokens in enumerate(per_shard):
            assert tokens and all(shard_of(CAMPAIGN, t, 4) == i for t in tokens)

        code, out, err = _runs("merge", *(str(shards / f"s{i}.sqlite3") for i in range(4)),
                               "--into", str(tmp_path / "merged.sqlite3"))  # fmt: skip
        assert code == 0, err
        report = json.loads(out)
        assert report["complete"] and report["devices"] == len(audience.tokens) and not report["missing"]

        # The same campaign by one process (another journal): the same counts per outcome.
        single = run_pushctl(
            send_argv(cfg, template, audience.path, tmp_path / "single.sqlite3", "--workers", "1",
                      campaign=CAMPAIGN),
            tmp_path, "single",
        )  # fmt: skip
        assert single.code == 1, single.stderr
    code, out, err = _runs("show", CAMPAIGN, "--journal", str(tmp_path / "merged.sqlite3"))
    assert code == 0, err
    merged = _summary(out)
    assert merged == _summary(single.stdout)
    assert merged["outcomes"]["invalid_token"] == len(audience.invalid)  # type: ignore[index]
    assert "merged from 4 of 4 shard journals" in err
    # Reading the shard journals through a glob gives the same view.
    code, out, err = _runs("show", CAMPAIGN, "--journal", str(shards / "*.sqlite3"))
    assert _summary(out) == merged, err


def _shard_journal(path: Path, shard: Shard, tokens: list[str], *, campaign: str = CAMPAIGN,
                   template: str = "t", status_running: bool = False) -> Path:
    """A journal holding one shard of ``campaign`` whose devices were delivered."""
    with Journal(path) as journal:
        run = journal.open_run(campaign, template_fp=template, audience_fp="a", options={}, shard=str(shard))
        for line, token in enumerate(tokens, 1):
            if shard.contains(campaign, token):
                run.record(Result(token, Platform.IOS, Outcome.DELIVERED, "", 200, 1, 3.0, "id", "", line))
        run.finish()
    if status_running:  # as if its process had been killed mid-run
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE runs SET status = 'running', finished_at = NULL")
    return path


TOKENS = [f"{i:064x}" for i in range(400)]


def test_merge_names_missing_and_unfinished_shards_then_completes(tmp_path: Path) -> None:
    journals = [_shard_journal(tmp_path / f"s{i}.sqlite3", Shard(i, 4), TOKENS, status_running=i == 1)
                for i in range(3)]  # fmt: skip
    into = tmp_path / "merged.sqlite3"
    code, out, err = _runs("merge", *map(str, journals), "--into", str(into))
    assert code == 1, err
    assert "missing: shard 3/4" in err
    assert f"unfinished: shard 1/4 in {journals[1]}: abandoned" in err
    report = json.loads(out)
    assert report["missing"] == ["3/4"] and report["unfinished"] == ["1/4"] and not report["complete"]
    code, out, err = _runs("list", "--journal", str(into))
    assert json.loads(out)["status"] == "partial"

    # Shard 3 arrives and shard 1 finishes: merging again replaces the partial merge.
    journals.append(_shard_journal(tmp_path / "s3.sqlite3", Shard(3, 4), TOKENS))
    journals[1].unlink()
    for extra in tmp_path.glob("s1.sqlite3-*"):
        extra.unlink()
    _shard_journal(journals[1], Shard(1, 4), TOKENS)
    code, out, err = _runs("merge", str(tmp_path / "s*.sqlite3"), "--into", str(into))
    assert code == 0, err
    assert json.loads(out)["devices"] == len(TOKENS)
    code, out, err = _runs("show", CAMPAIGN, "--journal", str(into))
    assert code == 0 and _summary(out)["outcomes"]["delivered"] == len(TOKENS)  # type: ignore[index]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"shard": Shard(1, 3)}, "different shard count"),
        ({"shard": Shard(1, 4), "template": "other"}, "different template"),
        ({"shard": Shard(0, 4)}, "shard 0/4 of spring is in both"),
        ({"shard": Shard(1, 4), "campaign": "autumn"}, "no shards of one same campaign"),
    ],
)
def test_merge_refuses_shards_that_do_not_belong_together(
    tmp_path: Path, second: dict[str, object], message: str
) -> None:
    first = _shard_journal(tmp_path / "a.sqlite3", Shard(0, 4), TOKENS)
    shard = second.pop("shard")
    assert isinstance(shard, Shard)
    other = _shard_journal(tmp_path / "b.sqlite3", shard, TOKENS, **second)  # type: ignore[arg-type]
    into = tmp_path / "merged.sqlite3"
    code, _out, err = _runs("merge", str(first), str(other), "--into", str(into))
    assert code == 2 and message in err, err
    with Journal(into) as journal:
        assert journal.list_runs() == []  # nothing half-merged


def test_merge_refuses_a_device_outside_its_shard(tmp_path: Path) -> None:
    good = _shard_journal(tmp_path / "a.sqlite3", Shard(0, 2), TOKENS)
    bad = _shard_journal(tmp_path / "b.sqlite3", Shard(1, 2), TOKENS)
    stray = next(t for t in TOKENS if shard_of(CAMPAIGN, t, 2) == 0)
    with sqlite3.connect(bad) as conn:  # as if shard 1 had been sent with another cut
        conn.execute(
            "INSERT INTO devices (campaign_id, token, platform, state) VALUES (?, ?, 'ios', 'settled')",
            (CAMPAIGN, stray),
        )
    code, _out, err = _runs("merge", str(good), str(bad), "--into", str(tmp_path / "m.sqlite3"))
    assert code == 2 and "1 devices in" in err and "are not in shard 1/2 of spring" in err


def test_a_journal_holds_one_shard_or_the_whole_campaign(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", 40)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "shard.sqlite3"
    with emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        env = {**cli_env(), "JOB_COMPLETION_INDEX": "2"}
        argv = send_argv(cfg, template, audience.path, journal, "--shard", "auto/4", "--workers", "1")
        result = CliRunner().invoke(app, argv[3:], env=env)  # argv[:3] is python -m pushctl
        assert result.exit_code == 0, result.stderr
        sent = journal_tokens(journal)
        assert sent == {t for t in audience.tokens if shard_of("kill-test", t, 4) == 2}
        assert emu.inbox.tokens() == sent
        for extra, text in (
            (["--shard", "1/4"], "holds shard 2/4 of campaign kill-test, not shard 1/4"),
            ([], "holds shard 2/4 of campaign kill-test"),
        ):
            argv = send_argv(cfg, template, audience.path, journal, *extra, "--workers", "1")
            result = CliRunner().invoke(app, argv[3:], env=cli_env())
            assert result.exit_code == 2 and text in result.stderr, result.stderr
        # The same shard again continues it (nothing left to send).
        argv = send_argv(cfg, template, audience.path, journal, "--shard", "2/4", "--workers", "1")
        result = CliRunner().invoke(app, argv[3:], env=cli_env())
        assert result.exit_code == 0 and "continuing kill-test" in result.stderr
        assert len(emu.inbox.all()) == len(sent)
    _code, out, _err = _runs("list", "--journal", str(journal))
    assert json.loads(out)["shard"] == "2/4"
