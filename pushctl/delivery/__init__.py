"""The send engine: concurrent work items through a provider with an in-flight bound, rate
limit, retries (policy in :mod:`.retry`), provider-wide pauses and cancellation; the run's
:class:`Summary`; and the ``--results`` / ``--invalid-tokens`` files.

Every per-device answer comes back as a :class:`pushctl.outcome.Result` value, never an exception.
"""

from pushctl.delivery.result_files import (
    RESULT_FIELDS,
    InvalidTokenFile,
    ResultFile,
)
from pushctl.delivery.retry import (
    SendOptions,
    TokenBucket,
    backoff_delay,
    retry_delay,
)
from pushctl.delivery.sender import (
    Event,
    Sender,
    WorkItem,
    prepare_item,
)
from pushctl.delivery.summary import (
    AUTH_STOP,
    INTERRUPTED_STOP,
    Summary,
)

__all__ = [
    "AUTH_STOP",
    "INTERRUPTED_STOP",
    "RESULT_FIELDS",
    "Event",
    "InvalidTokenFile",
    "ResultFile",
    "SendOptions",
    "Sender",
    "Summary",
    "TokenBucket",
    "WorkItem",
    "backoff_delay",
    "prepare_item",
    "retry_delay",
]
