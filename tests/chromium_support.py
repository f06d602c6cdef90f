"""A real browser for the tests: headless Chromium driven over the DevTools protocol (on a pipe).

``chromium_binary()`` finds Chromium, or installs Debian's ``chromium`` with apt-get (under a file
lock: pytest-xdist workers may all want it at once); None when it cannot (the test then skips and
says why). :class:`Browser` loads a page and reports what a person opening it would not see: console
messages, uncaught exceptions, log entries (a resource that failed to load) and failed requests;
then the DOM, the page's text and a screenshot.

The protocol runs on ``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-separated JSON):
no WebSocket library, no port.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _which() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def chromium_binary() -> tuple[str | None, str]:
    """(path, why not): Chromium, installed from Debian's packages when missing and possible."""
    found = _which()
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "Chromium is not installed and there is no apt-get to install it with"
    with open(Path(tempfile.gettempdir()) / "pushctl-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _which()
        if found:
            return found, ""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        tail = ""
        for command in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "chromium"]):  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
            tail = (done.stderr or done.stdout)[-300:]
            if command[1] == "install" and (found := _which()):
                return found, ""
    return None, f"apt-get install -y chromium failed: {tail.strip()}"


@dataclass
class PageLoad:
    """What loading a page showed."""

    console: list[tuple[str, str]] = field(default_factory=list)
    """``(type, text)`` of every console message (``error``, ``warning``, ``log``...)."""
    exceptions: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    """``(level, text)`` of the browser's log entries (failed resources, security messages...)."""
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for."""
    dom: str = ""
    text: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    screenshot: bytes = b""

    @property
    def errors(self) -> list[str]:
        """Everything that counts as an error (console errors and warnings included)."""
        return (
            [
                f"console.{kind}: {text}"
                for kind, text in self.console
                if kind in ("error", "warning", "assert")
            ]
            + [f"exception: {e}" for e in self.exceptions]
            + [f"log {level}: {text}" for level, text in self.log if level in ("error", "warning")]
            + [f"request failed: {r}" for r in self.failed_requests]
        )


class Browser:
    """One headless Chromium process (``with Browser(binary, tmp) as b: b.load(url)``)."""

    def __init__(self, binary: str, profile_dir: Path, width: int = 1100, height: int = 1400) -> None:
        self.binary = binary
        self.profile_dir = profile_dir
        self.size = (width, height)
        self._next = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def pipes_on_3_and_4() -> None:
            # Chromium reads commands on fd 3 and answers on fd 4. Duplicate first: a pipe may
            # already be 3 or 4 (and close-on-exec); dup2 makes inheritable copies.
            commands, answers = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        args = [self.binary, *FLAGS, f"--user-data-dir={self.profile_dir}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pipes_on_3_and_4, close_fds=False,  # Python's own fds are not inheritable
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # already gone: killed below
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:  # fmt: skip
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return dict(reply.get("result", {}))
                self._events.append(reply)

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        ready, _, _ = select.select([self._from_chrome], [], [], left)
        if not ready:
            raise TimeoutError("Chromium did not answer in time")
        chunk = os.read(self._from_chrome, 1 << 20)
        if not chunk:
            raise RuntimeError("Chromium closed the DevTools pipe")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def _wait_for(self, method: str, session: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self._events):
            self._events.extend(self._read(deadline))

    def load(self, url: str, *, settle: float = 0.5) -> PageLoad:
        """Open ``url`` in a new tab, wait for its load event, and collect what happened."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session=session)
        self._wait_for("Page.loadEventFired", session, 30)
        end = time.monotonic() + settle  # late console messages (none expected: the page has no script)
        while time.monotonic() < end:
            try:
                self._events.extend(self._read(end))
            except TimeoutError:
                break
        page = PageLoad()
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            p = event.get("params", {})
            match event.get("method"):
                case "Runtime.consoleAPICalled":
                    text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                    page.console.append((p.get("type", ""), text))
                case "Runtime.exceptionThrown":
                    details = p.get("exceptionDetails", {})
                    page.exceptions.append(
                        details.get("exception", {}).get("description") or details.get("text", "")
                    )
                case "Log.entryAdded":
                    entry = p.get("entry", {})
                    page.log.append(
                        (entry.get("level", ""), f"{entry.get('text', '')} {entry.get('url', '')}")
                    )
                case "Network.requestWillBeSent":
                    page.requests.append(p.get("request", {}).get("url", ""))
                case "Network.loadingFailed":
                    page.failed_requests.append(f"{p.get('errorText', '')} {p.get('type', '')}")
        page.dom = self._eval(session, "document.documentElement.outerHTML")
        page.text = self._eval(session, "document.body.innerText")
        count = "document.querySelectorAll('{}').length".format
        counts = self._eval(
            session,
            f"JSON.stringify({{svg: {count('svg')}, img: {count('img')}, scripts: {count('script')}, "
            f"paths: {count('svg path, svg rect, svg use')}}})",
        )
        page.counts = json.loads(counts)
        height = int(self._eval(session, "document.documentElement.scrollHeight"))
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": self.size[0], "height": height, "scale": 1}},
            session=session,
        )  # fmt: skip
        page.screenshot = base64.b64decode(shot["data"])
        self.send("Target.closeTarget", {"targetId": target})
        return page

    def _eval(self, session: str, expression: str) -> Any:
        answer = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        return answer.get("result", {}).get("value")
