"""The one way pushctl builds a TLS client context: verification always on, ALPN h2, TLS >= 1.2.

There is deliberately no parameter that disables certificate or host name checks; a private CA
(the emulator's) is trusted by adding it with ``ca_file``, never by turning verification off.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pushctl.errors import ConfigError, CredentialFileError


def make_ssl_context(
    *, ca_file: Path | None = None, client_cert: tuple[Path, Path] | None = None
) -> ssl.SSLContext:
    """A verifying client context: system CAs plus ``ca_file``; optional client (cert, key) PEMs.

    Raises :class:`~pushctl.errors.ConfigError` for an unreadable CA file and
    :class:`~pushctl.errors.CredentialFileError` for an unusable client certificate or key.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.set_alpn_protocols(["h2"])
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA certificates: {_why(exc)}", file=ca_file) from None
    if client_cert is not None:
        cert, key = client_cert
        try:
            ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
        except (OSError, ssl.SSLError) as exc:
            # Only the OS / OpenSSL reason: the key's contents never reach a message.
            raise CredentialFileError(f"cannot load client certificate/key: {_why(exc)}", file=cert) from None
    return ctx


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or "invalid PEM data")
    return exc.strerror or type(exc).__name__
