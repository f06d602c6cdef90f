"""`pushctl emulator run` as a separate process, the way a user starts it, for the real-client tests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def emulator_run(tmp_path: Path, *args: str, name: str = "emu") -> Iterator[dict[str, Any]]:
    """Start ``pushctl -o json emulator run`` and yield the endpoints it prints (one JSON line).

    Stops it with Ctrl-C (SIGINT) and checks that it exited cleanly.
    """
    state = tmp_path / name
    argv = [sys.executable, "-m", "pushctl", "-o", "json", "--config", str(tmp_path / f"{name}.toml")]
    argv += ["emulator", "run", "--state-dir", str(state), *args]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"emulator run printed nothing: {proc.communicate(timeout=10)[1]}")
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def ensure_curl() -> str:
    """The path of a curl that speaks HTTP/2, installing Debian's curl when there is none."""
    path = shutil.which("curl")
    if path is None and shutil.which("apt-get") is not None:
        with open(Path(tempfile.gettempdir()) / "pushctl-tests-apt.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers may all want it at once
            path = shutil.which("curl") or _apt_install("curl")
    if path is None:
        raise AssertionError("curl is missing and could not be installed with apt-get")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    if "HTTP2" not in version:
        raise AssertionError(f"this curl does not speak HTTP/2:\n{version}")
    return path


def _apt_install(package: str) -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", package], check=False, capture_output=True, env=env, timeout=600
    )
    return shutil.which(package)
