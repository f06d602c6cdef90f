"""`pushctl runs show` and `runs prune-list` after a real send to the emulator."""

from __future__ import annotations

import random
from pathlib import Path

from test_resume_support import (
    CAMPAIGN,
    Audience,
    emulator,
    fcm_token,
    ios_token,
    pushctl_argv,
    run_pushctl,
    send_argv,
    write_template,
)

from pushctl.emulator import Emulator


def _mixed_audience(path: Path) -> Audience:
    """Deliverable devices plus every kind of token the emulator refuses as invalid."""
    rng = random.Random(11)
    ios = [ios_token(rng) for _ in range(300)]
    android = [fcm_token(rng) for _ in range(300)]
    invalid = [
        *(ios_token(rng, "dead") for _ in range(3)),  # 410 Unregistered
        *(ios_token(rng, "0bad") for _ in range(2)),  # 400 DeviceTokenNotForTopic
        rng.randbytes(16).hex(),  # hex but too short: 400 BadDeviceToken
        *(fcm_token(rng, f"unregistered{i:010d}") for i in range(3)),  # 404 UNREGISTERED
        fcm_token(rng, "otherproject0123456789"),  # 403 SENDER_ID_MISMATCH
        "shortfcm_token:APA91b",  # 400 INVALID_ARGUMENT (not a registration token)
    ]
    tokens = [*ios, *android, *invalid]
    rng.shuffle(tokens)
    platform = {t: "ios" for t in ios} | {t: "android" for t in android}
    platform |= {t: "ios" if len(t) <= 64 and "_" not in t and ":" not in t else "android" for t in invalid}
    lines = ["token,platform,name"] + [f"{t},{platform[t]},n{i}" for i, t in enumerate(tokens)]
    path.write_text("\n".join(lines) + "\n")
    return Audience(path, tokens, set(invalid))


def _refused_by_emulator(emu: Emulator, audience: Audience, platform_of: dict[str, str]) -> set[str]:
    """The tokens the emulator's registry answers with an error (its own verdict, not pushctl's)."""
    refused = set()
    for token in audience.tokens:
        if platform_of[token] == "ios":
            verdict = emu.registry.apns_token_verdict(token)
        else:
            verdict = emu.registry.fcm_token_verdict(token)
        if verdict is not None:
            refused.add(token)
    return refused


def test_runs_show_reproduces_the_send_summary_and_prune_list_the_refused_tokens(tmp_path: Path) -> None:
    audience = _mixed_audience(tmp_path / "audience.csv")
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    platform_of = dict(line.split(",")[:2] for line in audience.path.read_text().splitlines()[1:])
    with emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        sent = run_pushctl(send_argv(cfg, template, audience.path, journal), tmp_path, "send")
        refused = _refused_by_emulator(emu, audience, platform_of)
        assert emu.inbox.tokens() == audience.valid

    assert refused == audience.invalid and len(refused) == 11
    assert sent.code == 1, sent.stderr
    summary = sent.summary()
    assert summary["outcomes"]["invalid_token"] == len(refused)
    assert summary["outcomes"]["delivered"] == len(audience.valid)

    show_argv = pushctl_argv(cfg, "runs", "show", CAMPAIGN, "--journal", str(journal))
    shown = run_pushctl(show_argv, tmp_path, "show")
    assert shown.code == 0 and shown.stderr == ""
    assert shown.summary() == summary
    # JSON mode lists every device (--show trims only tables), as the send reported it.
    results = [d for d in sent.json_lines() if d["type"] == "result"]
    listed = [d for d in shown.json_lines() if d["type"] == "result"]
    assert sorted(map(str, listed)) == sorted(map(str, results))

    pruned = run_pushctl(
        pushctl_argv(cfg, "runs", "prune-list", CAMPAIGN, "--journal", str(journal), output=None),
        tmp_path,
        "prune",
    )
    assert pruned.code == 0 and pruned.stderr == ""
    tokens = pruned.stdout.splitlines()
    assert len(tokens) == len(set(tokens))
    assert set(tokens) == refused
