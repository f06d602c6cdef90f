"""Huawei Push Kit on the emulator: 1,000 tokens a request, illegal tokens answered per device,
the OAuth token shared and refreshed, credentials proven online."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.config import resolve_profile
from pushctl.emulator import Emulator
from pushctl.errors import ExitCode
from pushctl.message import build_hms
from pushctl.providers import AttemptKind
from pushctl.providers.hms import create

ILLEGAL = {10: "illegal-0010", 1500: "illegal-1500", 2400: "illegal-2400"}


def _token(i: int) -> str:
    return (
        f"{ILLEGAL[i]}-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
        if i in ILLEGAL
        else f"IQAAAACy0kYtAAD{i:06d}-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    )


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_2500_identical_devices_go_in_3_requests_and_exactly_the_illegal_tokens_are_pruned(
    tmp_path: Path,
) -> None:
    audience = tmp_path / "huawei.csv"
    audience.write_text("token,platform\n" + "".join(f"{_token(i)},huawei\n" for i in range(2500)))
    template = tmp_path / "t.yaml"
    template.write_text("title: Flash sale\nbody: Everything half price until midnight\n")
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, stdout, stderr = _invoke(
            "--config",
            str(config),
            "--profile",
            "emulator",
            "--output",
            "json",
            "send",
            str(template),
            "--audience",
            str(audience),
            "--journal",
            str(journal),
            "--campaign",
            "sale",
            "--invalid-tokens",
            str(tmp_path / "prune.txt"),
        )
        sends = sum(n for code_, n in emu.hms.stats.items() if not code_.startswith("oauth"))
        delivered_in_inbox = emu.inbox.total()
    assert code == ExitCode.PARTIAL, stderr
    assert sends == 3  # 1,000 + 1,000 + 500 tokens
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["outcomes"]["delivered"] == 2497 and summary["outcomes"]["invalid_token"] == 3
    assert summary["platforms"] == {"hms": {"delivered": 2497, "invalid_token": 3}}
    illegal = {_token(i) for i in ILLEGAL}
    invalid = {
        o["token"] for o in map(json.loads, stdout.splitlines()[:-1]) if o["outcome"] == "invalid_token"
    }
    assert invalid == illegal
    assert set((tmp_path / "prune.txt").read_text().split()) >= illegal
    assert len([t for t in (tmp_path / "prune.txt").read_text().split() if t.startswith("illegal")]) == 3
    code, pruned, _ = _invoke("runs", "prune-list", "sale", "--journal", str(journal))
    assert code == 0 and set(pruned.split()) == illegal
    assert delivered_in_inbox == 2497


def test_personalised_messages_are_one_request_each(tmp_path: Path) -> None:
    audience = tmp_path / "a.csv"
    audience.write_text("token,platform,name\n" + "".join(f"{_token(i)},hms,n{i}\n" for i in range(5)))
    template = tmp_path / "t.yaml"
    template.write_text("title: 'Hi {{ name }}'\nbody: hello\n")
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, _out, err = _invoke(
            "--config",
            str(config),
            "--profile",
            "emulator",
            "send",
            str(template),
            "--audience",
            str(audience),
            "--journal",
            str(tmp_path / "j"),
        )
        assert code == 0, err
        assert emu.hms.stats["80000000"] == 5
        titles = sorted(d.payload["notification"]["title"] for d in emu.inbox.all())
    assert titles == [f"Hi n{i}" for i in range(5)]


async def _send_after_expiry(emu: Emulator, config: Path) -> tuple[Any, int]:
    provider = create(resolve_profile(config, "emulator"))
    await provider.start()
    try:
        emu.hms_tokens.expire_all()  # Huawei calls the token expired (80200003): refresh once, resend
        request = provider.merge([build_hms(_note(), _token(1))])
        return await provider.send(request), provider.tokens.fetched
    finally:
        await provider.close()


def _note() -> Any:
    from pushctl.checks.tokens_online import silent_notification

    note = silent_notification(probe=False)
    note.title, note.body, note.push_type = "t", "b", "alert"
    return note


def test_an_expired_access_token_is_refreshed_once(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        attempt, fetched = asyncio.run(_send_after_expiry(emu, config))
        assert emu.hms.stats["80200003"] == 1
    assert attempt.kind is AttemptKind.DELIVERED and fetched == 2


def test_credentials_check_online_proves_and_explains_hms(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, out, err = _invoke(
            "--config", str(config), "--profile", "emulator", "-o", "json", "credentials", "check", "--online"
        )
        assert code == 0, err
        rows = {(r["provider"], r["kind"]): r for r in map(json.loads, out.splitlines())}
        online = rows[("hms", "online: token + validate_only")]
        assert online["ok"] and "80300007" in online["detail"]  # validate_only to a probe token
        wrong = tmp_path / "secret.txt"
        wrong.write_text("not-the-secret\n")
        wrong.chmod(0o600)
        text = config.read_text().replace(
            str(resolve_profile(config, "emulator").hms.client_secret_file), str(wrong)
        )
        config.write_text(text)
        code, out, err = _invoke(
            "--config", str(config), "--profile", "emulator", "-o", "json", "credentials", "check", "--online"
        )
    assert code == ExitCode.AUTH
    bad = next(r for r in map(json.loads, out.splitlines()) if r["provider"] == "hms" and not r["ok"])
    assert "invalid client_secret" in bad["detail"]
    assert str(wrong) in bad["fix"] and "AppGallery Connect" in bad["fix"]
    assert "not-the-secret" not in out + err  # secrets never in output
