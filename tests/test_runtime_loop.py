"""The send loop runner: process-wide GC tuning only when pushctl owns the process."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pushctl import runtime as loop


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    loop._owns_process = False


async def _answer() -> int:
    return 42


def test_in_process_callers_keep_their_gc_settings(restore_gc: None) -> None:
    before = gc.get_threshold()
    assert loop.run(_answer()) == 42
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_cli_process_freezes_the_startup_heap_and_raises_the_threshold(restore_gc: None) -> None:
    loop.own_process()
    assert loop.run(_answer()) == 42
    assert gc.get_threshold()[0] == 50_000
    assert gc.get_freeze_count() > 0


def test_the_console_entry_point_owns_the_process() -> None:
    code = (
        "import sys\nimport pushctl.cli.app as app\nimport pushctl.runtime as loop\n"
        "sys.argv = ['pushctl', '--version']\n"
        "try:\n    app.main()\nexcept SystemExit:\n    print(loop._owns_process)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
