"""Run a command and measure *its own* peak RSS (``os.wait4`` on that one child).

``RUSAGE_CHILDREN`` would report the largest of every child the test process ever waited
for, so another test's big subprocess could fail (or pass) a memory test.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float


def run_measured(argv: list[str]) -> Measured:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1024)  # KiB on Linux
