"""HTTP/2 transport: the only network I/O of the providers goes through :class:`H2Pool`.

The pool runs on the lean client (``h2lean``: own frames and HPACK, tuned for push traffic) or,
with ``PUSHCTL_HTTP2=h2``, on the reference client built on the ``h2`` library (``h2conn``);
tests send the same requests through both.

::

    H2Pool(url, ssl_context=make_ssl_context(...)).request(...) -> H2Response
    ConnectError(ProviderUnavailable)  could not connect / TLS failed (nothing was sent)
└── NoHttp2                        the server did not negotiate HTTP/2 (speak HTTP/1.1 to it instead)
    ConnectionLost                     request possibly processed; the caller may retry
    └── RequestTimeout                 no response in time (also a TimeoutError); stream reset
"""

from pushctl.transport.h2conn import ConnectError, ConnectionLost, H2Response, NoHttp2, RequestTimeout
from pushctl.transport.h2pool import H2Pool, PoolStats
from pushctl.transport.tls import make_ssl_context

__all__ = [
    "ConnectError",
    "ConnectionLost",
    "H2Pool",
    "H2Response",
    "NoHttp2",
    "PoolStats",
    "RequestTimeout",
    "make_ssl_context",
]
