"""The emulator's local certificate authority, its server certificate and client certificates.

Everything is created on first start in the state directory and reused later, so a client
configured once with ``ca.pem`` keeps trusting the emulator. Nothing here ever turns
verification off: clients trust the CA, and the APNs port verifies client certificates against it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pushctl.paths import make_private_dir

# Apple marks APNs client certificates with these extensions (development / production).
APPLE_DEVELOPMENT_OID = ObjectIdentifier("1.2.840.113635.100.6.3.1")
APPLE_PRODUCTION_OID = ObjectIdentifier("1.2.840.113635.100.6.3.2")


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Files of the emulator's TLS identity inside its state directory."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_certificates(state_dir: Path) -> CertPaths:
    """Create the CA and server certificate in ``state_dir`` unless they already exist."""
    make_private_dir(state_dir)
    paths = CertPaths(
        state_dir / "ca.pem", state_dir / "ca-key.pem", state_dir / "server.pem", state_dir / "server-key.pem"
    )
    if all(p.exists() for p in (paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key)):
        return paths
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushctl emulator local CA")])
    now = _now()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _leaf_builder(
            ca_cert, ca_key, server_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(paths.ca_key, _key_pem(ca_key))
    _write_private(paths.server_key, _key_pem(server_key))
    paths.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _leaf_builder(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )


def issue_client_certificate(
    paths: CertPaths, topic: str | None, directory: Path, *, environment: str = "sandbox"
) -> tuple[Path, Path]:
    """Issue an APNs-style client certificate whose subject UID is ``topic``.

    ``environment`` (``sandbox``, ``production`` or ``both``) adds Apple's environment
    extensions, so the emulator can answer ``BadCertificateEnvironment``. ``topic=None``
    issues a certificate without a UID (the emulator answers ``BadCertificate``).
    Returns the paths of the certificate PEM and its unencrypted key PEM (mode 0600).
    """
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, f"Apple Push Services: {topic or 'none'}")]
    if topic:
        attrs.insert(0, x509.NameAttribute(NameOID.USER_ID, topic))
    builder = _leaf_builder(ca_cert, ca_key, key, x509.Name(attrs)).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    if environment in ("sandbox", "both"):
        builder = builder.add_extension(x509.UnrecognizedExtension(APPLE_DEVELOPMENT_OID, b"\x05\x00"), False)
    if environment in ("production", "both"):
        builder = builder.add_extension(x509.UnrecognizedExtension(APPLE_PRODUCTION_OID, b"\x05\x00"), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    make_private_dir(directory)
    stem = (topic or "no-topic").replace("/", "_")
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    return cert_path, key_path


def server_context(paths: CertPaths, *, request_client_cert: bool) -> ssl.SSLContext:
    """TLS context for a server port: ALPN ``h2``, optional client certificates from our CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.server_cert, paths.server_key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if request_client_cert:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(paths.ca_cert)
    return ctx


def client_context(ca_file: Path | str, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A verifying client context that trusts the emulator's CA (and presents ``cert`` if given)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["h2"])
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def describe_peer_certificate(der: bytes) -> tuple[str | None, set[str], int]:
    """(topic from the subject UID, environments from Apple's extensions, serial) of a client cert."""
    cert = x509.load_der_x509_certificate(der)
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    topic = str(uids[0].value) if uids else None
    envs: set[str] = set()
    for ext in cert.extensions:
        if ext.oid == APPLE_DEVELOPMENT_OID:
            envs.add("sandbox")
        elif ext.oid == APPLE_PRODUCTION_OID:
            envs.add("production")
    return topic, envs, cert.serial_number
