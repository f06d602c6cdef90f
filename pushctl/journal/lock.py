"""The per-campaign lock: an exclusive ``flock`` on ``<journal dir>/locks/<campaign>.lock``."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path

from pushctl.errors import CampaignLocked
from pushctl.paths import open_private_fd


class CampaignLock:
    """An exclusive ``flock`` on the campaign's lock file.

    The kernel drops an flock when its holder dies, even by ``kill -9``, so a stale lock from a
    dead process frees itself: nothing to detect or clean up. The file is never deleted (a
    process blocked on the old inode would otherwise lock a file nobody else sees); its
    contents only describe the holder for the error message.
    """

    def __init__(self, path: Path, campaign_id: str) -> None:
        # os.open fds are not inherited by child processes, so a spawned emulator or helper
        # cannot keep the lock alive after we die.
        fd = open_private_fd(path, "r+")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CampaignLocked(holder_message(path, campaign_id), hint="wait for it to finish") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays for the next holder."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def holder_message(path: Path, campaign_id: str) -> str:
    """``campaign X is being sent by pid N on HOST since TIME``, from the lock file's contents."""
    try:
        holder = json.loads(path.read_text())
        since = datetime.fromtimestamp(float(holder["started_at"])).isoformat(sep=" ", timespec="seconds")
        who = f"pid {holder['pid']} on {holder['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        # The holder may be between taking the lock and writing its details.
        who = "another process"
    return f"campaign {campaign_id} is being sent by {who}"


def is_locked(path: Path) -> bool:
    """True when a live process holds the lock at ``path``.

    The probe holds a shared lock for microseconds; a sender starting in exactly that window
    would be told the campaign is locked, which is safe and, for ``runs list``, vanishingly rare.
    """
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock too
    return False
