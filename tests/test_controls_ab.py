"""A/B variants over 10,000 devices against the emulator: split, summary, payload data, journal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
N = 10_000


def _audience(path: Path) -> Path:
    # Half iOS (hex), half Android (FCM-shaped); none starts with an emulator test prefix.
    lines = ["token,platform,name"]
    for i in range(N):
        if i % 2:
            lines.append(f"{'a' + f'{i:063x}'},ios,User{i}")
        else:
            lines.append(f"abtest{i:010d}:APA91b{i:030d},android,User{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ab_split_summary_payload_and_journal(tmp_path: Path) -> None:
    audience = _audience(tmp_path / "ab.csv")
    journal = tmp_path / "j.sqlite3"
    runner = CliRunner()
    with Emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        base = ["--config", str(cfg), "--profile", "emulator"]
        res = runner.invoke(
            app,
            [*base, "--output", "json", "send", str(SAMPLES / "templates" / "ab-test.yaml"),
             "--audience", str(audience), "--journal", str(journal)],
        )  # fmt: skip
        assert res.exit_code == 0, res.stderr
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        results, summary = lines[:-1], lines[-1]
        assert summary["outcomes"]["delivered"] == N
        variants = summary["variants"]
        assert set(variants) == {"A", "B"}
        a, b = variants["A"]["delivered"], variants["B"]["delivered"]
        assert a + b == N
        assert abs(a - N / 2) <= 0.02 * N, (a, b)

        # Each delivered payload carries its variant, and it matches the device's result line.
        assigned = {r["token"]: r["variant"] for r in results}
        deliveries = emu.inbox.all()
        assert len(deliveries) == N and emu.inbox.duplicates() == {}
        titles: dict[str, set[str]] = {"A": set(), "B": set()}
        for d in deliveries:
            if d.provider == "apns":
                variant, title = d.payload["pushctl_variant"], d.payload["aps"]["alert"]["title"]
            else:
                variant, title = d.payload["data"]["pushctl_variant"], d.payload["notification"]["title"]
            assert variant == assigned[d.token]
            titles[variant].add(title)
        assert titles["A"] == {"Your weekly picks are here"}
        assert all(t.endswith(", we found something you'll love") for t in titles["B"])

        # The journal keeps the variant per device and `runs show` breaks counts down by it.
        with sqlite3.connect(journal) as conn:
            stored = dict(conn.execute("SELECT token, variant FROM devices"))
        assert stored == assigned
        cid = summary["campaign"]
        shown = runner.invoke(app, [*base, "--output", "json", "runs", "show", cid, "--journal", str(journal),
                                    "--show", "none"])  # fmt: skip
        assert shown.exit_code == 0, shown.stderr
        assert json.loads(shown.stdout.splitlines()[-1])["variants"] == variants
        table = runner.invoke(
            app,
            [*base, "--output", "table", "runs", "show", cid, "--journal", str(journal)],
            env={"COLUMNS": "120"},
        )
        assert table.exit_code == 0, table.stderr
        assert "By variant" in table.stdout
        rows = {ln.split("│")[1].strip(): ln for ln in table.stdout.splitlines() if ln.count("│") >= 3}
        assert f"{a:,}" in rows["A"] and f"{b:,}" in rows["B"]
