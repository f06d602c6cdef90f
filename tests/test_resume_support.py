"""Shared helpers for the resume / cron tests (no tests here).

pushctl runs as a real subprocess (so it can be ``kill -9``-ed, interrupted, or started with no
terminal and no stdin); the emulator runs in the test process, so its inbox is inspected directly.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushctl.emulator import Emulator

CAMPAIGN = "kill-test"
TEMPLATE = """\
title: "Hello {{ name }}"
body: "Resume test for {{ name }}"
data:
  user: "{{ user_id }}"
defaults:
  name: there
  user_id: anonymous
"""


@dataclass
class Audience:
    """An audience CSV and what the emulator is expected to say about its tokens."""

    path: Path
    tokens: list[str]
    invalid: set[str] = field(default_factory=set)
    """Tokens the emulator answers 410 Unregistered (``dead…``) / 404 UNREGISTERED (``unregistered…``)."""

    @property
    def valid(self) -> set[str]:
        return set(self.tokens) - self.invalid


def ios_token(rng: random.Random, prefix: str = "") -> str:
    while True:
        token = prefix + rng.randbytes(32).hex()[len(prefix) :]
        # Random hex may start like one of the emulator's test tokens (dead…, 0bad…, 0000…).
        if prefix or not token.startswith(("dead", "0bad", "0000")):
            return token


def fcm_token(rng: random.Random, prefix: str = "") -> str:
    """``<22 chars>:APA91b<134 chars>``, like a real registration token (URL-safe base64)."""
    body = base64.urlsafe_b64encode(rng.randbytes(117)).decode()  # 156 characters
    head = prefix or body[:22]
    return head + ":APA91b" + body[22:]


def make_audience(path: Path, n: int, *, seed: int = 5, dead: int = 0) -> Audience:
    """``n`` devices, about half iOS (hex) and half Android (FCM-shaped), ``dead`` of each kind
    invalid (APNs ``dead…``, FCM ``unregistered…``), spread through the file."""
    rng = random.Random(seed)
    tokens: list[str] = []
    invalid: set[str] = set()
    dead_at = set(rng.sample(range(n), 2 * dead)) if dead else set()
    lines = ["token,platform,name,user_id"]
    for i in range(n):
        ios = i % 2 == 0
        bad = i in dead_at
        if ios:
            token = ios_token(rng, "dead" if bad else "")
        else:
            token = fcm_token(rng, "unregistered" + f"{i:010d}" if bad else "")
        if bad:
            invalid.add(token)
        tokens.append(token)
        lines.append(f"{token},{'ios' if ios else 'android'},User {i},u{i}")
    path.write_text("\n".join(lines) + "\n")
    return Audience(path, tokens, invalid)


def write_template(path: Path, text: str = TEMPLATE) -> Path:
    path.write_text(text)
    return path


def emulator(state_dir: Path, **options: Any) -> Emulator:
    """An emulator for tests that send more than once (APNs' 20-minute JWT rule stays on:
    pushctl reuses its provider token across processes, see test_resume_jwt.py)."""
    return Emulator(state_dir, **options)


def pushctl_argv(cfg: Path, *args: str, output: str | None = "json") -> list[str]:
    head = [sys.executable, "-m", "pushctl", "--config", str(cfg), "--profile", "emulator"]
    return [*head, *(("--output", output) if output else ()), *args]


def send_argv(
    cfg: Path,
    template: Path,
    audience: Path,
    journal: Path,
    *extra: str,
    campaign: str = CAMPAIGN,
    output: str | None = "json",
    globals_: Sequence[str] = (),
) -> list[str]:
    args = ["send", str(template), "--audience", str(audience), "--journal", str(journal)]
    return pushctl_argv(cfg, *globals_, *args, "--campaign", campaign, *extra, output=output)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PUSHCTL_JOURNAL", None)
    env["COLUMNS"] = "200"
    return env


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def summary(self) -> dict[str, Any]:
        """The campaign summary; the keys only a send knows (its own audience reading and this
        invocation's counts) are dropped, so a send's and `runs show`'s can be compared."""
        lines = [d for d in self.json_lines() if d.get("type") == "summary"]
        assert lines, f"no summary line (exit {self.code}); stderr:\n{self.stderr}"
        return {k: v for k, v in lines[-1].items() if k not in ("audience", "this_run")}


class Pushctl:
    """One pushctl subprocess with stdout/stderr in files (20,000 JSON lines must not block a pipe)."""

    def __init__(self, argv: list[str], workdir: Path, name: str) -> None:
        self.out_path = workdir / f"{name}.stdout"
        self.err_path = workdir / f"{name}.stderr"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=cli_env(), start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 120) -> Finished:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return Finished(code, self.out_path.read_text(), self.err_path.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_pushctl(argv: list[str], workdir: Path, name: str, timeout: float = 120) -> Finished:
    """Run pushctl to completion (no terminal, no stdin)."""
    return Pushctl(argv, workdir, name).wait(timeout)


def wait_until(cond: Callable[[], bool], proc: Pushctl, timeout: float = 60) -> None:
    """Poll ``cond`` until true; fail if pushctl exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.proc.poll() is not None:
            done = proc.wait()
            raise AssertionError(f"pushctl exited {done.code} too early; stderr:\n{done.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for pushctl")
        time.sleep(0.005)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll ``cond`` until true; fail naming ``what`` when time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def check_exactly_once_visible(emu: Emulator, audience: Audience, collapse_id: str) -> dict[str, int]:
    """Every valid device received the campaign, every copy with the campaign's collapse id,
    so each device shows exactly one notification; invalid tokens received nothing.
    Returns the tokens that got more than one copy on the wire, with their counts."""
    deliveries = emu.inbox.all()
    by_collapse = emu.inbox.by_collapse_id()
    assert set(by_collapse) == {collapse_id}, f"collapse ids seen: {sorted(by_collapse)[:5]}"
    assert all(d.collapse_id == collapse_id for d in deliveries), "a copy without the campaign collapse id"
    received = {d.token for d in deliveries}
    missing = audience.valid - received
    assert not missing, f"{len(missing)} devices never received the campaign"
    assert not received & audience.invalid
    assert received <= audience.valid
    return emu.inbox.duplicates()


def journal_tokens(journal: Path, campaign: str = CAMPAIGN, **where: str) -> set[str]:
    """Tokens of ``campaign`` whose columns equal ``where`` (e.g. ``state="inflight"``), read-only."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        clauses = "".join(f" AND {column} = ?" for column in where)
        rows = conn.execute(
            f"SELECT token FROM devices WHERE campaign_id = ?{clauses}", (campaign, *where.values())
        )
        return {token for (token,) in rows}
    finally:
        conn.close()
