"""``trigger run --metrics-port``: an HTTP ``/metrics`` endpoint (prometheus_client's server) for
a long-running process. It binds ``127.0.0.1`` unless told otherwise (``--metrics-host``): the
numbers say how much a service sends, which is nobody else's business by default."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pushctl.errors import InputError
from pushctl.metrics.families import RunMetrics

__all__ = ["DEFAULT_METRICS_HOST", "serve_metrics"]

DEFAULT_METRICS_HOST = "127.0.0.1"


@contextlib.contextmanager
def serve_metrics(metrics: RunMetrics, port: int, host: str = DEFAULT_METRICS_HOST) -> Iterator[int]:
    """Serve ``metrics`` at ``http://host:port/metrics`` while the body runs; yield the port
    (the one the system chose when ``port`` is 0)."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry())
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            field="--metrics-port",
            hint="pick a free port (or 0 for any)",
        ) from None
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
