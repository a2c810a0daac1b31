"""The reference backend through a real gRPC server on a real TCP socket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tokenrig import BACKUP_SERIAL, HOLDER, PASSWORD, REGULAR_SERIAL, FakeClock, Pki, make_token

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from pkcard.backend.service import CLIENT_METADATA_KEY, ERROR_DOMAIN, ClientIdentity, build_server
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc
from pkcard.token import ProofMethod

ADMIN = "registry-admin"
CLIENT = "ws-ljubljana-01"


@dataclass
class Stubs:
    session: pb_grpc.SessionServiceStub
    admin: pb_grpc.RegistryAdminServiceStub


def md(client: str) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_METADATA_KEY, client),)


def error_reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == ERROR_DOMAIN
    return error.code(), info.reason, dict(info.metadata)


@pytest.fixture
def stubs(backend: SessionBackend, registry: Registry, clock: FakeClock,
          test_pki: Pki) -> Iterator[Stubs]:
    server = build_server(backend, registry, clock, identity=ClientIdentity.METADATA,
                          admins=frozenset({ADMIN}), max_workers=4)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stubs = Stubs(pb_grpc.SessionServiceStub(channel),
                      pb_grpc.RegistryAdminServiceStub(channel))
        admin = md(ADMIN)
        stubs.admin.AddHolder(pb.AddHolderRequest(holder_id=HOLDER, name="Dr Ana Test"),
                              metadata=admin)
        stubs.admin.AddCard(pb.AddCardRequest(card_serial=REGULAR_SERIAL, holder_id=HOLDER,
                                              role=pb.CARD_ROLE_REGULAR,
                                              auth_cert_der=test_pki.regular.cert_der,
                                              reactivation_password=PASSWORD), metadata=admin)
        stubs.admin.AddCard(pb.AddCardRequest(card_serial=BACKUP_SERIAL, holder_id=HOLDER,
                                              role=pb.CARD_ROLE_BACKUP,
                                              auth_cert_der=test_pki.backup.cert_der),
                            metadata=admin)
        for code in ("I002", "I003"):
            stubs.admin.GrantAuthorization(pb.GrantAuthorizationRequest(holder_id=HOLDER,
                                                                        code=code),
                                           metadata=admin)
        yield stubs
    finally:
        channel.close()
        server.stop(grace=None).wait()


def issue_and_sign(stubs: Stubs, pki: Pki, card_name: str = "regular", client: str = CLIENT,
                   **kwargs: object) -> str:
    challenge = stubs.session.IssueChallenge(pb.IssueChallengeRequest(), metadata=md(client))
    assert len(challenge.nonce) == 32
    return make_token(pki, getattr(pki, card_name), challenge.nonce, **kwargs)


def test_redeem_over_grpc(stubs, test_pki):
    token = issue_and_sign(stubs, test_pki)
    response = stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    assert response.actor_id == HOLDER
    assert response.scope == pb.SCOPE_FULL
    assert list(response.granted_authorizations) == ["I002", "I003"]
    assert not response.backup_activated
    with pytest.raises(grpc.RpcError) as again:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    assert error_reason(again.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "NONCE_REUSED")


def test_restricted_session_over_grpc(stubs, test_pki):
    token = issue_and_sign(stubs, test_pki, restricted=ProofMethod.RESTRICTED_EMERGENCY)
    response = stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    assert response.scope == pb.SCOPE_RESTRICTED
    assert list(response.granted_authorizations) == ["I002"]
    assert response.patient_id == ""


def test_token_of_another_client_over_grpc(stubs, test_pki):
    token = issue_and_sign(stubs, test_pki)
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md("ws-other"))
    assert error_reason(info.value)[1] == "NONCE_FOREIGN_CLIENT"


def test_backup_then_regular_then_reactivation_over_grpc(stubs, test_pki):
    backup = issue_and_sign(stubs, test_pki, "backup")
    response = stubs.session.RedeemToken(pb.RedeemTokenRequest(token=backup), metadata=md(CLIENT))
    assert response.backup_activated
    regular = issue_and_sign(stubs, test_pki)
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token=regular), metadata=md(CLIENT))
    code, reason, _ = error_reason(info.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REGULAR_CARD_DEACTIVATED")
    assert "pkpin reactivate" in (info.value.details() or "")

    with pytest.raises(grpc.RpcError) as wrong:
        stubs.admin.ReactivateCard(pb.ReactivateCardRequest(
            card_serial=REGULAR_SERIAL, reactivation_password="Wrong-pass-1"), metadata=md(ADMIN))
    code, reason, meta = error_reason(wrong.value)
    assert (reason, meta) == ("REACTIVATION_PASSWORD_WRONG", {"tries_left": "4"})
    assert "Wrong-pass-1" not in (wrong.value.details() or "")
    done = stubs.admin.ReactivateCard(pb.ReactivateCardRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD), metadata=md(ADMIN))
    assert done.tries_left == 5
    regular = issue_and_sign(stubs, test_pki)
    assert stubs.session.RedeemToken(pb.RedeemTokenRequest(token=regular),
                                     metadata=md(CLIENT)).granted_authorizations


def test_withdraw_and_revoke_over_grpc(stubs, test_pki):
    admin = md(ADMIN)
    stubs.admin.WithdrawAuthorization(pb.WithdrawAuthorizationRequest(
        holder_id=HOLDER, code="I003", reason=pb.WITHDRAWAL_REASON_COURT_ORDER), metadata=admin)
    token = issue_and_sign(stubs, test_pki)
    response = stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    assert list(response.granted_authorizations) == ["I002"]
    with pytest.raises(grpc.RpcError) as unspecified:
        stubs.admin.WithdrawAuthorization(pb.WithdrawAuthorizationRequest(
            holder_id=HOLDER, code="I002"), metadata=admin)
    assert unspecified.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    stubs.admin.RevokeCard(pb.RevokeCardRequest(card_serial=REGULAR_SERIAL), metadata=admin)
    token = issue_and_sign(stubs, test_pki)
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    assert error_reason(info.value)[1] == "CARD_REVOKED"


def test_calls_without_a_client_identity_are_refused(stubs):
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.IssueChallenge(pb.IssueChallengeRequest())
    assert error_reason(info.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "CLIENT_UNKNOWN")


def test_admin_calls_need_an_admin_client(stubs):
    with pytest.raises(grpc.RpcError) as info:
        stubs.admin.RevokeCard(pb.RevokeCardRequest(card_serial=REGULAR_SERIAL),
                               metadata=md(CLIENT))
    assert error_reason(info.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ADMIN")


def test_garbage_token_over_grpc(stubs):
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token="not.a.token"), metadata=md(CLIENT))
    assert error_reason(info.value)[1] == "MALFORMED"


def test_oversized_request_is_refused_by_the_transport(stubs):
    with pytest.raises(grpc.RpcError) as info:
        stubs.session.RedeemToken(pb.RedeemTokenRequest(token="A" * 70000), metadata=md(CLIENT))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
