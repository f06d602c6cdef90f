"""Run pushctl in a child process and measure *that process's* peak RSS.

Neither ``RUSAGE_CHILDREN`` nor ``wait4``'s ``ru_maxrss`` will do: Linux carries the maximum
over from the forking parent (a pytest process that already grew), so a big test runner makes
any child look big. ``VmHWM`` in ``/proc/self/status`` belongs to the address space, which
``exec`` replaces, so the child reads its own at exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHILD = '''
import atexit, os, sys
def _dump():
    with open("/proc/self/status") as fh:
        hwm = next(line for line in fh if line.startswith("VmHWM:"))
    with open(os.environ["PUSHCTL_TEST_RSS_OUT"], "w") as out:
        out.write(hwm.split()[1])  # kB
atexit.register(_dump)
from pushctl.cli.app import main
sys.argv = ["pushctl", *sys.argv[1:]]
main()
'''


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float


def run_pushctl_measured(args: list[str]) -> Measured:
    """``pushctl ARGS`` in a child; its stdout, stderr, exit code and peak RSS in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rss"
        env = dict(os.environ, PUSHCTL_TEST_RSS_OUT=str(out))
        proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                              env=env, check=False)
        return Measured(proc.returncode, proc.stdout, proc.stderr, int(out.read_text()) / 1024)
