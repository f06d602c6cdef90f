"""The one cut of a campaign into shards: ``blake2b(campaign id, token) mod N``.

A device belongs to shard ``shard_of(campaign_id, token, N)``: stable across runs, machines and
Python versions (not Python's salted ``hash``), independent of the audience's order and of the
other devices. ``send --shard I/N`` keeps shard I of N, ``send --workers M`` gives each worker one
part of its shard (:meth:`Shard.split`), and ``runs merge`` checks that every device of a shard's
journal is really that shard's, all with this one function.

The formula, for tools outside pushctl: the first 8 bytes of ``BLAKE2b(digest_size=8)`` over
``campaign_id + "\\0" + token`` (UTF-8), read as a big-endian unsigned integer, modulo N.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pushctl.errors import InputError

__all__ = ["INDEX_ENV_VARS", "Shard", "shard_key", "shard_of"]

INDEX_ENV_VARS = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")
"""Where ``--shard auto/N`` finds its index: a Kubernetes Indexed Job, then a Slurm array task."""

_SPEC = re.compile(r"\s*(\d+|auto)\s*/\s*(\d+)\s*")


def shard_key(campaign_id: str, token: str) -> int:
    """The 64-bit number a device's shard is taken from (see the module doc for the formula)."""
    digest = hashlib.blake2b(f"{campaign_id}\0{token}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(campaign_id: str, token: str, count: int) -> int:
    """The shard (0 .. count-1) the device ``token`` belongs to in ``campaign_id``."""
    return shard_key(campaign_id, token) % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``; ``Shard(0, 1)`` is the whole campaign."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(
                f"shard {self.index}/{self.count} does not exist",
                field="--shard",
                hint="I/N with 0 <= I < N, e.g. 0/4 ... 3/4",
            )

    @classmethod
    def parse(cls, text: str, env: Mapping[str, str] | None = None) -> Shard:
        """``"I/N"``, or ``"auto/N"`` with I from ``$JOB_COMPLETION_INDEX`` (Kubernetes Indexed Job)
        or ``$SLURM_ARRAY_TASK_ID`` minus ``$SLURM_ARRAY_TASK_MIN`` (a Slurm array)."""
        match = _SPEC.fullmatch(text)
        if match is None:
            raise InputError(f"not a shard: {text!r}", field="--shard", hint="I/N, e.g. 2/4, or auto/4")
        count = int(match.group(2))
        if match.group(1) != "auto":
            return cls(int(match.group(1)), count)
        env = os.environ if env is None else env
        for var in INDEX_ENV_VARS:
            value = env.get(var, "").strip()
            if not value:
                continue
            offset = env.get("SLURM_ARRAY_TASK_MIN", "0") if var == "SLURM_ARRAY_TASK_ID" else "0"
            if not value.isdigit() or not offset.strip().isdigit():
                raise InputError(f"${var} is {value!r}, not a shard index", field="--shard")
            return cls(int(value) - int(offset), count)
        raise InputError(
            f"--shard auto/{count}: no shard index in the environment",
            field="--shard",
            hint=f"set {' or '.join('$' + v for v in INDEX_ENV_VARS)}, or give --shard I/{count}",
        )

    @property
    def whole(self) -> bool:
        """True for ``0/1``: every device."""
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def contains(self, campaign_id: str, token: str) -> bool:
        """Whether the device ``token`` is in this shard of ``campaign_id``."""
        return self.whole or shard_key(campaign_id, token) % self.count == self.index

    def member(self, campaign_id: str) -> Callable[[str], bool]:
        """A fast ``token -> bool`` for one campaign (the campaign id's hash state is reused)."""
        if self.whole:
            return lambda _token: True
        base = hashlib.blake2b(f"{campaign_id}\0".encode(), digest_size=8)
        count, index = self.count, self.index
        from_bytes = int.from_bytes

        def keep(token: str) -> bool:
            h = base.copy()
            h.update(token.encode())
            return from_bytes(h.digest(), "big") % count == index

        return keep

    def split(self, parts: int) -> list[Shard]:
        """This shard cut in ``parts``: shard I of N split in M is shards ``I + N*j`` of ``N*M``
        (j = 0 .. M-1), because ``k mod N*M = I + N*j`` exactly when ``k mod N = I``."""
        return [Shard(self.index + self.count * j, self.count * parts) for j in range(parts)]
