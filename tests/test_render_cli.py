"""`pushctl render` through the CLI: payloads, sizes, JSON lines and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), terminal_width=120)
    return result.exit_code, result.stdout, result.stderr


def test_render_row_one_shows_payload_and_size() -> None:
    code, out, err = invoke(
        "-o",
        "table",
        "render",
        "samples/templates/welcome.yaml",
        "--audience",
        "samples/audience.csv",
        "--row",
        "1",
    )
    assert code == 0, err
    assert "samples/audience.csv:2" in out
    assert "POST /3/device/a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1" in out
    assert "apns-push-type: alert" in out
    assert '"title": "Welcome, Alice!"' in out
    assert "size: " in out and "/ 4,096 bytes" in out
    assert "com.example.app" in err  # the fallback topic is announced on stderr


def test_render_json_lines_parse() -> None:
    code, out, _ = invoke(
        "-o", "json", "render", "samples/templates/welcome.yaml", "--audience", "samples/audience.csv",
        "--on-bad-row", "skip", "--topic", "com.example.pushctl",
    )  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) >= 10
    first = records[0]
    assert first["provider"] == "apns" and first["line"] == 2
    assert first["headers"]["apns-topic"] == "com.example.pushctl"
    assert first["payload"]["aps"]["alert"]["title"] == "Welcome, Alice!"
    assert first["bytes"] == len(
        json.dumps(first["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    )
    fcm = next(r for r in records if r["provider"] == "fcm")
    assert fcm["path"] == "/v1/projects/<project-id>/messages:send"
    assert fcm["payload"]["message"]["token"] == fcm["token"]
    assert (
        fcm["locale"] == "fr" and fcm["payload"]["message"]["notification"]["title"] == "Bienvenue, Benoît !"
    )


def test_render_token_and_platform_filters() -> None:
    token = "a2cec255404e4fb440034d6608697a8d41bed440e50454f31af3176813e02ea6"
    code, out, _ = invoke(
        "-o",
        "json",
        "render",
        "samples/templates/welcome.yaml",
        "--audience",
        "samples/audience.csv",
        "--token",
        token,
    )
    assert code == 0
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["locale"] == "zh-CN" and record["token"] == token
    code, out, _ = invoke(
        "-o", "json", "render", "samples/templates/promo-image.yaml", "--audience", "samples/audience.csv",
        "--platform", "web", "--on-bad-row", "skip",
    )  # fmt: skip
    assert code == 0
    assert {json.loads(line)["platform"] for line in out.splitlines()} == {"web"}


def test_missing_variable_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # Rich wraps stderr at the terminal width; keep the line whole
    tpl = tmp_path / "needs-coupon.yaml"
    tpl.write_text("title: Hi\nbody: 'Your code: {{ coupon }}'\n")
    code, out, err = invoke("render", str(tpl), "--audience", "samples/audience.csv", "--row", "2")
    assert code == 2
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {tpl}:2: field 'body': variable 'coupon' is not defined")
    assert "samples/audience.csv:3" in line


def test_malformed_yaml_exits_2_naming_line(tmp_path: Path) -> None:
    tpl = tmp_path / "broken.yaml"
    tpl.write_text("title: Hi\nbody: x\ndata: {a: b\n")
    code, _, err = invoke("render", str(tpl), "--audience", "samples/audience.csv")
    assert code == 2
    assert "Traceback" not in err
    assert "invalid YAML" in err and f"{tpl}:" in err


def test_row_past_end_and_unknown_variant() -> None:
    code, _, err = invoke("render", "samples/templates/welcome.yaml", "--audience", "samples/audience.csv",
                          "--row", "999", "--on-bad-row", "skip")  # fmt: skip
    assert code == 2 and "--row 999 is past the end" in err
    code, _, err = invoke("render", "samples/templates/ab-test.yaml", "--audience", "samples/audience.csv",
                          "--variant", "C")  # fmt: skip
    assert code == 2 and "no variant 'C'" in err


def test_google_services_json_is_exit_2(tmp_path: Path) -> None:
    gs = tmp_path / "google-services.json"
    gs.write_text(json.dumps({"project_info": {"project_id": "p"}, "client": []}))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'default_profile = "p"\n[profiles.p.fcm]\nservice_account = "{gs}"\n')
    code, out, err = invoke("--config", str(cfg), "render", "samples/templates/welcome.yaml",
                            "--audience", "samples/audience.csv", "--row", "2")  # fmt: skip
    assert code == 2 and out == ""
    assert "google-services.json" in err


def test_service_account_project_in_path(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    sa = REPO / "samples" / "credentials" / "service-account.json"
    cfg.write_text(f'default_profile = "p"\n[profiles.p.fcm]\nservice_account = "{sa}"\n')
    code, out, err = invoke("--config", str(cfg), "-o", "json", "render", "samples/templates/welcome.yaml",
                            "--audience", "samples/audience.csv", "--row", "2")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["path"] == "/v1/projects/pushctl-emulator/messages:send"


@pytest.mark.slow
def test_million_devices_stream_in_flat_memory(tmp_path: Path) -> None:
    audience = tmp_path / "million.csv"
    with audience.open("w") as fh:
        fh.write("token,platform,name,locale\n")
        locales = ("en", "fr", "zh-CN", "de")
        for i in range(1_000_000):
            if i % 2:
                fh.write(f"fcm_{i:060x},android,User{i},{locales[i % 4]}\n")
            else:
                fh.write(f"{i:064x},ios,User{i},{locales[i % 4]}\n")
    template = tmp_path / "mix.yaml"
    template.write_text(
        (REPO / "samples" / "templates" / "welcome.yaml").read_text()
        + "variants:\n  A: {weight: 50}\n  B: {weight: 50, title: 'Hey {{ name }}'}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = REPO / "tests" / "render_stream_child.py"
    proc = subprocess.run(
        [sys.executable, str(child), "measure", str(audience), str(template)],
        capture_output=True, text=True, env=env, timeout=280, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    count, seconds, peak_kib = proc.stdout.split()
    assert int(count) == 1_000_000
    peak_mb = int(peak_kib) / 1024
    print(f"1,000,000 devices rendered + built in {seconds} s, child peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 150
