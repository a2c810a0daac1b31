"""The optional TCP listener: mutual TLS only, the client certificate names the caller."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from daemon_harness import start_daemon

from pkcard.client import PkcardClient
from pkcard.errors import DaemonUnavailable

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: Key, issuer: str, issuer_key: Key, *, ca: bool,
                 san: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_mutual_tls_client_is_served_and_audited_by_its_certificate(
    private_root: Path,
) -> None:
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("pkcard test CA", ca_key, "pkcard test CA", ca_key, ca=True)
    server = _certificate("localhost", server_key, "pkcard test CA", ca_key, ca=False,
                          san="localhost")
    client = _certificate("clinic-ehr-1", client_key, "pkcard test CA", ca_key, ca=False)
    files = {
        "ca.pem": _pem(ca), "server.pem": _pem(server), "server.key": _key_pem(server_key),
    }
    for name, data in files.items():
        (private_root / name).write_bytes(data)
    port = _free_port()
    daemon = start_daemon(
        private_root, "--tcp", f"localhost:{port}",
        "--tls-cert", str(private_root / "server.pem"),
        "--tls-key", str(private_root / "server.key"),
        "--tls-client-ca", str(private_root / "ca.pem"),
    )
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_pem(ca), private_key=_key_pem(client_key),
            certificate_chain=_pem(client),
        )
        channel = grpc.secure_channel(f"localhost:{port}", credentials)
        with PkcardClient(channel=channel, timeout=10.0) as tls_client:
            assert len(tls_client.list_readers()) == 2
            tls_client.get_card(tls_client.list_readers()[0].reader.name)
        anonymous = grpc.secure_channel(f"localhost:{port}",
                                        grpc.ssl_channel_credentials(root_certificates=_pem(ca)))
        with PkcardClient(channel=anonymous, timeout=5.0) as no_cert, \
                pytest.raises(DaemonUnavailable):
            no_cert.list_readers()
    finally:
        daemon.close()
    records = [json.loads(line) for line in daemon.audit_path.read_text().splitlines()]
    get_card = [r for r in records if r["operation"] == "GetCard"]
    assert get_card[0]["tls_identity"] == "clinic-ehr-1"
    assert "uid" not in get_card[0]
