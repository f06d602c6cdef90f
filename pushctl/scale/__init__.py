"""Scale-out: the one cut of a campaign into shards (``blake2b(campaign id, token) mod N``, used by
``send --shard``, ``send --workers`` and ``runs merge``) and the worker processes that run one job
on every core and die with their parent.

Knows nothing of campaigns: :mod:`pushctl.campaign` and :mod:`pushctl.checks` give it their jobs.
"""

from pushctl.scale.pool import (
    Job,
    WorkerContext,
    WorkerDied,
    WorkerPool,
    usable_cores,
)
from pushctl.scale.shards import (
    INDEX_ENV_VARS,
    Shard,
    shard_key,
    shard_of,
)

__all__ = [
    "INDEX_ENV_VARS",
    "Job",
    "Shard",
    "WorkerContext",
    "WorkerDied",
    "WorkerPool",
    "shard_key",
    "shard_of",
    "usable_cores",
]
