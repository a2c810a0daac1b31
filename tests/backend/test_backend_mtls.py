"""The backend identifies clients by their mTLS certificate: challenges stay bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from test_backend_registry import enroll
from tokenrig import NOW, make_token

from pkcard.backend.core import SessionBackend
from pkcard.backend.devpki import Issued, make_ca
from pkcard.backend.registry import Registry
from pkcard.backend.service import ClientIdentity, build_server
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc

HOST = "backend.test"


def _pem(issued: Issued) -> tuple[bytes, bytes]:
    key = issued.key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return key, issued.cert.public_bytes(serialization.Encoding.PEM)


def _leaf(ca: Issued, common_name: str, server: bool) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]),
                                        critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


@pytest.fixture
def tls_port(backend: SessionBackend, registry: Registry, clock) -> Iterator[tuple[int, Issued]]:
    ca = make_ca("pkcard TEST backend TLS CA", NOW - timedelta(days=10))
    server = build_server(backend, registry, clock, identity=ClientIdentity.MTLS,
                          admins=frozenset(), max_workers=2)
    credentials = grpc.ssl_server_credentials(
        [_pem(_leaf(ca, HOST, server=True))],
        root_certificates=ca.cert.public_bytes(serialization.Encoding.PEM),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield port, ca
    server.stop(grace=None).wait()


def _channel(port: int, ca: Issued, client_name: str) -> grpc.Channel:
    key, cert = _pem(_leaf(ca, client_name, server=False))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert.public_bytes(serialization.Encoding.PEM),
        private_key=key, certificate_chain=cert)
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                               options=[("grpc.ssl_target_name_override", HOST)])


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    detail = error_details_pb2.ErrorInfo()
    assert status is not None
    assert status.details[0].Unpack(detail)
    return detail.reason


def test_challenge_is_bound_to_the_mtls_identity(tls_port, registry, test_pki):
    enroll(registry, test_pki)
    port, ca = tls_port
    with _channel(port, ca, "ws-ljubljana-01") as owner, \
            _channel(port, ca, "ws-maribor-07") as other:
        nonce = pb_grpc.SessionServiceStub(owner).IssueChallenge(
            pb.IssueChallengeRequest(),
            metadata=(("x-pkcard-backend-client", "ws-maribor-07"),),  # ignored under mTLS
        ).nonce
        token = make_token(test_pki, test_pki.regular, nonce)
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.SessionServiceStub(other).RedeemToken(pb.RedeemTokenRequest(token=token))
        assert _reason(info.value) == "NONCE_FOREIGN_CLIENT"
        response = pb_grpc.SessionServiceStub(owner).RedeemToken(
            pb.RedeemTokenRequest(token=token))
        assert response.card_serial == test_pki.regular.serial


def test_client_without_a_certificate_cannot_connect(tls_port):
    port, ca = tls_port
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert.public_bytes(serialization.Encoding.PEM))
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                             options=[("grpc.ssl_target_name_override", HOST)]) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.SessionServiceStub(channel).IssueChallenge(pb.IssueChallengeRequest(),
                                                               timeout=5)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
