"""TLS: verification is always on, failures are ConnectError with a clear, secret-free message."""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from pathlib import Path

import pytest
from h2_test_server import H2TestServer, Pki, make_test_pki

from pushctl.errors import ConfigError, CredentialFileError, ProviderUnavailable
from pushctl.transport import ConnectError, ConnectionLost, H2Pool, make_ssl_context


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pki]:
    root = tmp_path_factory.mktemp("pki")
    return {
        "good": make_test_pki(root, name="good"),
        "other": make_test_pki(root, name="other"),
        "wrong-host": make_test_pki(root, name="wronghost", hosts=("push.example.org",)),
    }


def connect(server_pki: Pki, ca: Path | None, *, host: str = "127.0.0.1") -> ConnectError | int:
    async def main() -> ConnectError | int:
        async with H2TestServer(server_pki) as server:
            pool = H2Pool(f"https://{host}:{server.port}", ssl_context=make_ssl_context(ca_file=ca))
            try:
                return (await pool.request("GET", "/", [])).status
            except ConnectError as exc:
                return exc
            finally:
                await pool.close()

    return asyncio.run(main())


def test_trusted_private_ca_connects(pkis: dict[str, Pki]) -> None:
    assert connect(pkis["good"], pkis["good"].ca) == 200
    assert connect(pkis["good"], pkis["good"].ca, host="localhost") == 200


def test_certificate_from_another_ca_is_rejected(pkis: dict[str, Pki]) -> None:
    err = connect(pkis["other"], pkis["good"].ca)
    assert isinstance(err, ConnectError)
    assert isinstance(err, ProviderUnavailable)  # maps to exit code 4
    assert "certificate verification failed" in str(err)
    assert "unable to get local issuer certificate" in str(err)


def test_system_cas_alone_do_not_trust_a_private_ca(pkis: dict[str, Pki]) -> None:
    err = connect(pkis["good"], None)
    assert isinstance(err, ConnectError)
    assert "certificate verification failed" in str(err)


def test_host_name_is_checked(pkis: dict[str, Pki]) -> None:
    err = connect(pkis["wrong-host"], pkis["wrong-host"].ca)
    assert isinstance(err, ConnectError)
    assert "IP address mismatch" in str(err) or "mismatch" in str(err)


def test_connection_refused_is_a_connect_error(pkis: dict[str, Pki]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before we connect: nobody listens

    async def main() -> None:
        pool = H2Pool(f"https://127.0.0.1:{port}", ssl_context=make_ssl_context(ca_file=pkis["good"].ca))
        with pytest.raises(ConnectError, match=f"could not connect to 127.0.0.1:{port}"):
            await pool.request("GET", "/", [])
        assert pool.stats.connect_failures == 1
        await pool.close()

    asyncio.run(main())


def test_verification_cannot_be_turned_off() -> None:
    assert set(inspect.signature(make_ssl_context).parameters) == {"ca_file", "client_cert"}
    ctx = make_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="cannot be turned off"):
        H2Pool("https://127.0.0.1:1", ssl_context=insecure)
    ctx.check_hostname = False
    with pytest.raises(ValueError, match="cannot be turned off"):
        H2Pool("https://127.0.0.1:1", ssl_context=ctx)


def test_bad_files_are_input_errors_without_contents(tmp_path: Path, pkis: dict[str, Pki]) -> None:
    with pytest.raises(ConfigError) as info:
        make_ssl_context(ca_file=tmp_path / "missing.pem")
    assert "missing.pem" in str(info.value)
    bogus_key = tmp_path / "key.pem"
    bogus_key.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n"
                         "-----END PRIVATE KEY-----\n")
    with pytest.raises(CredentialFileError) as info2:
        make_ssl_context(client_cert=(pkis["good"].cert, bogus_key))
    assert "c2VjcmV0" not in str(info2.value)
    ok = make_ssl_context(client_cert=(pkis["good"].cert, pkis["good"].key))
    assert ok.verify_mode == ssl.CERT_REQUIRED


def test_closing_the_pool_mid_connect_leaves_no_open_socket(pkis: dict[str, Pki]) -> None:
    """A server that completes TLS but never sends SETTINGS: the pool is closed while its
    connection is still being set up, and the half-made socket must be closed with it."""
    import gc
    import warnings

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pkis["good"].cert, pkis["good"].key)
    server_ctx.set_alpn_protocols(["h2"])
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; ends when the client goes away
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        pool = H2Pool(f"https://127.0.0.1:{port}", ssl_context=make_ssl_context(ca_file=pkis["good"].ca))
        request = asyncio.ensure_future(pool.request("GET", "/", []))
        await asyncio.wait_for(accepted.wait(), 10)
        await asyncio.sleep(0.1)  # TLS is up; the pool waits for the server's SETTINGS
        await pool.close()
        with pytest.raises(ConnectionLost):  # the waiting request fails with the pool
            await request
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
