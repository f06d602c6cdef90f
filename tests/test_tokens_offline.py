"""Offline token checks: the core (check_audience) and `pushctl tokens check`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from pushctl.checks import Problem, check_audience
from pushctl.cli.app import app
from pushctl.cli.tokens_cmd import shorten
from pushctl.errors import ExitCode

APNS = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"
APNS2 = "ac2f86702824c1c099724caf4941d4072014b3ce107f80e222f828767efc2f91"
FCM = "jORS_6ilI8ihN5KXSc7Tvo:APA91b_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWt"


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    # COLUMNS: Rich sizes its consoles from it, so messages and tables are not wrapped.
    result = CliRunner().invoke(app, list(args), input=input, terminal_width=200, env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_sample_audience_has_warnings_but_no_invalid_tokens(samples: Path) -> None:
    report = check_audience(samples / "audience.csv")
    assert report.valid and report.rows == 15 and report.devices == 15
    assert report.platforms == {"ios": 6, "android": 6, "web": 1, "webpush": 1, "hms": 1}
    assert [(f.line, f.problem) for f in report.findings] == [
        (13, Problem.UNUSUAL_LENGTH),  # 62 hex chars
        (16, Problem.UNUSUAL_LENGTH),  # shorttoken123
    ]


def test_bad_rows_findings_and_prune_list(samples: Path, tmp_path: Path) -> None:
    prune = tmp_path / "prune.csv"
    report = check_audience(samples / "audience-bad-rows.csv", prune_list=prune)
    assert [(f.line, f.problem) for f in report.findings] == [
        (4, Problem.MALFORMED),
        (5, Problem.MALFORMED),
        (6, Problem.MALFORMED),
        (7, Problem.DUPLICATE),
    ]
    assert report.invalid == 3 and report.counts["duplicate"] == 1 and report.devices == 3
    with prune.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # The empty token cannot be pruned and duplicates are not invalid.
    assert [r["line"] for r in rows] == ["4", "5"]
    assert rows[0]["token"].startswith("zz") and report.pruned == 2


def test_wrong_platform_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"token,platform\n{APNS},android\n{FCM},ios\n{APNS2},web\n{FCM[:-1]},android\n")
    report = check_audience(path)
    assert [(f.line, f.problem) for f in report.findings] == [
        (2, Problem.WRONG_PLATFORM),
        (3, Problem.WRONG_PLATFORM),
        (4, Problem.WRONG_PLATFORM),
    ]
    assert report.invalid == 3
    assert "APNs" in report.findings[0].message and "FCM" in report.findings[1].message


def test_environment_mix_is_one_summary_finding(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"token,environment\n{APNS},sandbox\n{APNS2},Production\n")
    report = check_audience(path)
    assert [f.problem for f in report.findings] == [Problem.ENVIRONMENT_MIX]
    assert "1 sandbox and 1 production" in report.findings[0].message
    assert report.valid  # a warning, not an invalid token
    path.write_text(f"token,apns_environment\n{APNS},production\n{APNS2},production\n")
    assert check_audience(path).findings == []


def test_findings_kept_are_capped_but_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("".join(f"bad token {i}\n" for i in range(50)))
    report = check_audience(path, max_findings=10)
    assert len(report.findings) == 10 and report.findings_total == 50 and report.invalid == 50


def test_shorten() -> None:
    assert shorten(APNS) == "a4c1…4fd1"
    assert shorten("short") == "short"


def test_cli_json_is_one_object_per_finding_then_summary(samples: Path, tmp_path: Path) -> None:
    prune = tmp_path / "prune.csv"
    audience = str(samples / "audience-bad-rows.csv")
    code, out, err = run("--output", "json", "tokens", "check", audience, "--prune-list", str(prune))
    assert code == ExitCode.PARTIAL
    objects = json_lines(out)
    assert [o["type"] for o in objects] == ["finding"] * 4 + ["summary"]
    assert [o["problem"] for o in objects[:4]] == ["malformed", "malformed", "malformed", "duplicate"]
    summary = objects[-1]
    assert summary["invalid"] == 3 and summary["duplicate"] == 1 and summary["pruned"] == 2
    assert summary["prune_list"] == str(prune) and prune.exists()
    assert "2 invalid token(s) written" in err


def test_cli_clean_audience_exits_0_and_duplicates_alone_do_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(f"{APNS}\n{FCM}\n{APNS}\n")
    code, out, _ = run("--output", "json", "tokens", "check", str(path))
    assert code == ExitCode.OK
    objects = json_lines(out)
    assert [o["problem"] for o in objects[:-1]] == ["duplicate"]
    assert objects[-1]["devices"] == 2


def test_cli_table_mode(samples: Path) -> None:
    code, out, err = run("--output", "table", "tokens", "check", str(samples / "audience-bad-rows.csv"))
    assert code == ExitCode.PARTIAL
    assert "zz55…10ef" in out and "unknown platform 'blackberry'" in out
    assert "Summary" in out and "invalid tokens" in out
    assert err == ""


def test_cli_table_mode_caps_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("".join(f"bad token {i}\n" for i in range(60)))
    code, out, _ = run("--output", "table", "tokens", "check", str(path))
    assert code == ExitCode.PARTIAL
    assert "first 50 of 60 findings" in out


def test_cli_stdin_with_format(tmp_path: Path) -> None:
    code, out, _ = run(
        "--output", "json", "tokens", "check", "-", "--format", "csv", input=f"token\n{APNS}\nnope\n"
    )
    assert code == ExitCode.PARTIAL
    objects = json_lines(out)
    assert objects[0]["line"] == 3 and objects[-1]["source"] == "<stdin>"


def test_cli_unreadable_file_is_usage_error(tmp_path: Path) -> None:
    code, out, err = run("tokens", "check", str(tmp_path / "missing.csv"))
    assert code == ExitCode.USAGE
    assert out == "" and "missing.csv: no such file" in err and "Traceback" not in err


def test_cli_missing_token_column_is_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n1,x\n")
    code, _, err = run("tokens", "check", str(path))
    assert code == ExitCode.USAGE
    assert f"{path}:1: field 'token': no 'token' column" in err
