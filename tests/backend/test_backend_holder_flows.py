"""Issue 15 over a real gRPC backend: the holder's status, the reactivation password's one
copy, KPEP revocation, lost cards, and backup switches that can repeat."""

from __future__ import annotations

import grpc
import pytest
from test_backend_grpc import (
    ADMIN,
    CLIENT,
    Stubs,
    error_reason,
    issue_and_sign,
    md,
    stubs,  # noqa: F401  (the fixture)
)
from tokenrig import BACKUP_SERIAL, PASSWORD, REGULAR_SERIAL, Pki

from pkcard.backend.devpki import card_signer
from pkcard.backend.registry import AuditEvent, Registry
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.token import BackupSwitchReason, make_possession_proof

NEW_PASSWORD = "Other#Pass-77"


@pytest.fixture
def rpc(stubs: Stubs) -> Stubs:  # noqa: F811  (the imported fixture)
    return stubs


def _redeem(rpc: Stubs, pki: Pki, card: str, **claims: object) -> pb.RedeemTokenResponse:
    token = issue_and_sign(rpc, pki, card, **claims)
    reply: pb.RedeemTokenResponse = rpc.session.RedeemToken(
        pb.RedeemTokenRequest(token=token), metadata=md(CLIENT))
    return reply


def _refused(call: object, *args: object) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, metadata=md(CLIENT))  # type: ignore[operator]
    return error_reason(info.value)


def _status(rpc: Stubs, serial: str) -> pb.GetCardStatusResponse:
    reply: pb.GetCardStatusResponse = rpc.session.GetCardStatus(
        pb.GetCardStatusRequest(card_serial=serial), metadata=md(CLIENT))
    return reply


def _proof(rpc: Stubs, pki: Pki, card: str = "regular") -> pb.PossessionProof:
    nonce = rpc.session.IssueChallenge(pb.IssueChallengeRequest(), metadata=md(CLIENT)).nonce
    signer = getattr(pki, card)
    made = make_possession_proof(nonce, signer.serial, (signer.cert_der,),
                                 card_signer(signer.auth.key))
    return pb.PossessionProof(nonce=made.nonce, certificate_chain=list(made.chain),
                              signature=made.signature)


def test_backup_switches_repeat_and_the_holder_sees_each(rpc: Stubs, test_pki: Pki,
                                                         registry: Registry) -> None:
    assert _redeem(rpc, test_pki, "backup").backup_activated  # confirmed: FAULT
    rpc.admin.ReactivateCard(pb.ReactivateCardRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD), metadata=md(ADMIN))
    # the regular card is back; the backup is inactive, not dead
    code, reason, _ = _refused(rpc.session.RedeemToken, pb.RedeemTokenRequest(
        token=issue_and_sign(rpc, test_pki, "backup", backup_switch=None)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BACKUP_SWITCH_NOT_CONFIRMED")
    second = _redeem(rpc, test_pki, "backup", backup_switch=BackupSwitchReason.LOSS)
    assert second.backup_activated
    assert not _redeem(rpc, test_pki, "backup", backup_switch=None).backup_activated  # active

    status = _status(rpc, REGULAR_SERIAL)
    assert status.status == pb.CARD_STATUS_INACTIVE
    assert status.role == pb.CARD_ROLE_REGULAR
    assert status.reactivation_tries_left == 5
    assert [(s.kind, s.card_serial, s.reason) for s in status.switches] == [
        (pb.SWITCH_KIND_BACKUP_ACTIVATED, BACKUP_SERIAL, pb.BACKUP_SWITCH_REASON_LOSS),
        (pb.SWITCH_KIND_REGULAR_REACTIVATED, REGULAR_SERIAL, pb.BACKUP_SWITCH_REASON_UNSPECIFIED),
        (pb.SWITCH_KIND_BACKUP_ACTIVATED, BACKUP_SERIAL, pb.BACKUP_SWITCH_REASON_FAULT),
    ]
    assert _status(rpc, BACKUP_SERIAL).status == pb.CARD_STATUS_ACTIVE
    activations = [r for r in registry.audit_records() if r.event is AuditEvent.BACKUP_ACTIVATED]
    assert [(r.detail, r.client_id) for r in activations] == [("FAULT", CLIENT),
                                                              ("LOSS", CLIENT)]
    code, reason, _ = _refused(rpc.session.GetCardStatus,
                               pb.GetCardStatusRequest(card_serial="PK9999999999"))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def test_revoke_signature_with_the_reactivation_password(rpc: Stubs,
                                                         registry: Registry) -> None:
    _code, reason, meta = _refused(rpc.session.RevokeSignature, pb.RevokeSignatureRequest(
        card_serial=REGULAR_SERIAL, reactivation_password="Wrong-pass-1"))
    assert (reason, meta) == ("REACTIVATION_PASSWORD_WRONG", {"tries_left": "4"})
    assert not _status(rpc, REGULAR_SERIAL).signature_revoked
    assert _status(rpc, BACKUP_SERIAL).reactivation_tries_left == 4  # the holder's one counter
    rpc.session.RevokeSignature(pb.RevokeSignatureRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD), metadata=md(CLIENT))
    status = _status(rpc, REGULAR_SERIAL)
    assert status.signature_revoked
    assert status.status == pb.CARD_STATUS_ACTIVE  # the card itself still works
    assert status.reactivation_tries_left == 5
    revoked = [r for r in registry.audit_records() if r.event is AuditEvent.SIGNATURE_REVOKED]
    assert [(r.card_serial, r.client_id) for r in revoked] == [(REGULAR_SERIAL, CLIENT)]
    assert all(PASSWORD not in (r.detail or "") for r in registry.audit_records())


def test_a_card_reported_stolen_is_revoked_for_good(rpc: Stubs, test_pki: Pki,
                                                    registry: Registry) -> None:
    code, reason, _ = _refused(rpc.session.ReportCardLost, pb.ReportCardLostRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    rpc.session.ReportCardLost(pb.ReportCardLostRequest(
        card_serial=REGULAR_SERIAL, reason=pb.LOSS_REASON_STOLEN,
        reactivation_password=PASSWORD), metadata=md(CLIENT))
    code, reason, _ = _refused(rpc.session.RedeemToken, pb.RedeemTokenRequest(
        token=issue_and_sign(rpc, test_pki)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CARD_REVOKED")
    status = _status(rpc, REGULAR_SERIAL)
    assert (status.status, status.loss_reason, status.signature_revoked) == (
        pb.CARD_STATUS_REVOKED, pb.LOSS_REASON_STOLEN, True)
    # for good: no reactivation, no second report
    code, reason, _ = _refused(rpc.session.ReportCardLost, pb.ReportCardLostRequest(
        card_serial=REGULAR_SERIAL, reason=pb.LOSS_REASON_LOST, reactivation_password=PASSWORD))
    assert reason == "CONFLICT"
    with pytest.raises(grpc.RpcError) as again:
        rpc.admin.ReactivateCard(pb.ReactivateCardRequest(
            card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD), metadata=md(ADMIN))
    assert error_reason(again.value)[1] == "CONFLICT"
    # the holder works on with the backup card (its password is still the holder's)
    assert _redeem(rpc, test_pki, "backup").backup_activated
    reported = [r for r in registry.audit_records() if r.event is AuditEvent.CARD_REPORTED_LOST]
    assert [(r.card_serial, r.detail) for r in reported] == [(REGULAR_SERIAL, "STOLEN")]


def test_the_reactivation_password_changes_at_the_backend(rpc: Stubs, test_pki: Pki,
                                                          registry: Registry) -> None:
    _code, reason, _ = _refused(
        rpc.session.ChangeReactivationPassword, pb.ChangeReactivationPasswordRequest(
            card_serial=REGULAR_SERIAL, old_password=PASSWORD, new_password=NEW_PASSWORD))
    assert reason == "REACTIVATION_PROOF_MISSING"
    _code, reason, meta = _refused(
        rpc.session.ChangeReactivationPassword, pb.ChangeReactivationPasswordRequest(
            card_serial=REGULAR_SERIAL, old_password="Wrong-pass-1", new_password=NEW_PASSWORD,
            proof=_proof(rpc, test_pki)))
    assert (reason, meta) == ("REACTIVATION_PASSWORD_WRONG", {"tries_left": "4"})
    _code, reason, _ = _refused(
        rpc.session.ChangeReactivationPassword, pb.ChangeReactivationPasswordRequest(
            card_serial=REGULAR_SERIAL, old_password=PASSWORD, new_password="short",
            proof=_proof(rpc, test_pki)))
    assert reason == "MALFORMED_PASSWORD"
    reply = rpc.session.ChangeReactivationPassword(pb.ChangeReactivationPasswordRequest(
        card_serial=REGULAR_SERIAL, old_password=PASSWORD, new_password=NEW_PASSWORD,
        proof=_proof(rpc, test_pki)), metadata=md(CLIENT))
    assert reply.tries_left == 5
    _redeem(rpc, test_pki, "backup")
    _code, reason, _ = _refused(rpc.session.RevokeSignature, pb.RevokeSignatureRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=PASSWORD))
    assert reason == "REACTIVATION_PASSWORD_WRONG"  # the old one is gone
    rpc.admin.ReactivateCard(pb.ReactivateCardRequest(
        card_serial=REGULAR_SERIAL, reactivation_password=NEW_PASSWORD), metadata=md(ADMIN))
    changed = [r for r in registry.audit_records()
               if r.event is AuditEvent.REACTIVATION_PASSWORD_CHANGED]
    assert [(r.card_serial, r.client_id) for r in changed] == [(REGULAR_SERIAL, CLIENT)]
    for record in registry.audit_records():
        assert PASSWORD not in (record.detail or "")
        assert NEW_PASSWORD not in (record.detail or "")


def test_switch_to_the_backup_with_its_proof(rpc: Stubs, test_pki: Pki,
                                             registry: Registry) -> None:
    request = pb.ActivateBackupCardRequest(card_serial=BACKUP_SERIAL,
                                           reason=pb.BACKUP_SWITCH_REASON_BLOCK)
    _code, reason, _ = _refused(rpc.session.ActivateBackupCard, request)
    assert reason == "REACTIVATION_PROOF_MISSING"
    # the regular card's proof does not switch to the backup
    request.proof.CopyFrom(_proof(rpc, test_pki, "regular"))
    assert _refused(rpc.session.ActivateBackupCard, request)[1] == "REACTIVATION_PROOF_INVALID"
    request.proof.CopyFrom(_proof(rpc, test_pki, "backup"))
    request.reason = pb.BACKUP_SWITCH_REASON_UNSPECIFIED
    assert _refused(rpc.session.ActivateBackupCard, request)[1] == "INVALID_ARGUMENT"
    request.reason = pb.BACKUP_SWITCH_REASON_BLOCK
    request.proof.CopyFrom(_proof(rpc, test_pki, "backup"))
    assert rpc.session.ActivateBackupCard(request, metadata=md(CLIENT)).activated
    request.proof.CopyFrom(_proof(rpc, test_pki, "backup"))
    assert not rpc.session.ActivateBackupCard(request, metadata=md(CLIENT)).activated
    assert _status(rpc, REGULAR_SERIAL).status == pb.CARD_STATUS_INACTIVE
    assert _status(rpc, BACKUP_SERIAL).switches[0].reason == pb.BACKUP_SWITCH_REASON_BLOCK
    activations = [r for r in registry.audit_records() if r.event is AuditEvent.BACKUP_ACTIVATED]
    assert [(r.card_serial, r.detail) for r in activations] == [(BACKUP_SERIAL, "BLOCK")]
