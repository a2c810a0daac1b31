"""Issue 15 through a real ``pkcardd --simulated`` and a real backend over gRPC: the backup
switch needs the holder's confirmation and can repeat, every switch is visible, the KPEP
can be revoked (SignDocument then refuses), and a lost card is revoked for good."""

from __future__ import annotations

import json

import grpc
import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret, refusal_reason

from pkcard.backend.registry import AuditEvent
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.client import PkcardClient
from pkcard.errors import BackupSwitchNotConfirmed, NotSupported, SignatureRevoked, WrongPin
from pkcard.holder import LossReason, RegistryStatus, SwitchKind
from pkcard.pin import PinRef
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason, CardRole

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
REGULAR = "PK0000100001"
BACKUP = "PK0000100002"
PASSWORD = profile_secret("pk-regular", SecretRef.REACTIVATION)


def _open(rig: Rig, client: PkcardClient, profile: str,
          switch: BackupSwitchReason | None = None) -> bpb.RedeemTokenResponse:
    rig.daemon.insert(PK_READER, profile)
    opened = client.open_session(PK_READER, rig.backend.challenge(), AUTHORIZATIONS,
                                 kzz_reader=KZZ_READER,
                                 pin=profile_secret(profile, SecretRef.PIN), backup_switch=switch)
    client.close_session(opened.session_id)
    return rig.backend.redeem(opened.token.token)


def _audit(rig: Rig) -> list[dict[str, object]]:
    return [json.loads(line) for line in rig.daemon.audit_path.read_text().splitlines()]


def test_backup_switch_is_confirmed_repeatable_and_visible(simulated_rig: Rig) -> None:
    rig = simulated_rig
    rig.daemon.insert(KZZ_READER, "kzz")
    with rig.daemon.client() as client:
        with pytest.raises(BackupSwitchNotConfirmed) as refused:
            _open(rig, client, "pk-backup")
        assert "deactivates your regular PK" in str(refused.value)
        assert _open(rig, client, "pk-backup", BackupSwitchReason.LOSS).backup_activated
        assert not _open(rig, client, "pk-backup").backup_activated  # active: no question

        rig.daemon.insert(PK_READER, "pk-regular")
        client.reactivate_card(PK_READER, PASSWORD,
                               pin=profile_secret("pk-regular", SecretRef.PIN))
        with pytest.raises(BackupSwitchNotConfirmed):  # inactive again: confirm again
            _open(rig, client, "pk-backup")
        assert _open(rig, client, "pk-backup", BackupSwitchReason.BLOCK).backup_activated

        rig.daemon.insert(PK_READER, "pk-regular")
        status = client.get_card_status(PK_READER)
    assert (status.card_serial, status.role, status.status) == (
        REGULAR, CardRole.REGULAR, RegistryStatus.INACTIVE)
    assert status.reactivation_tries_left == 5
    assert [(s.kind, s.card_serial, s.reason) for s in status.switches] == [
        (SwitchKind.BACKUP_ACTIVATED, BACKUP, BackupSwitchReason.BLOCK),
        (SwitchKind.REGULAR_REACTIVATED, REGULAR, None),
        (SwitchKind.BACKUP_ACTIVATED, BACKUP, BackupSwitchReason.LOSS),
    ]
    backend_reasons = [r.detail for r in rig.backend.registry.audit_records()
                       if r.event is AuditEvent.BACKUP_ACTIVATED]
    assert backend_reasons == ["LOSS", "BLOCK"]
    opens = [r for r in _audit(rig) if r.get("operation") == "OpenSession"
             and r.get("outcome") != "STARTED" and r.get("card_serial") == BACKUP]
    assert [(r["outcome"], r.get("holder_reason")) for r in opens] == [
        ("BACKUP_SWITCH_NOT_CONFIRMED", None), ("OK", "LOSS"), ("OK", None),
        ("BACKUP_SWITCH_NOT_CONFIRMED", None), ("OK", "BLOCK")]
    # back to the regular card for the module's other tests
    with rig.daemon.client() as client:
        client.reactivate_card(PK_READER, PASSWORD,
                               pin=profile_secret("pk-regular", SecretRef.PIN))


def test_switch_to_the_backup_now(simulated_rig: Rig) -> None:
    """ActivateBackupCard (pkpin use-backup): the backup's proof of possession and the reason."""
    rig = simulated_rig
    rig.daemon.insert(KZZ_READER, "kzz")
    with rig.daemon.client() as client:
        rig.daemon.insert(PK_READER, "pk-regular")
        with pytest.raises(NotSupported):  # only a backup is switched to; no PIN was sent
            client.activate_backup(PK_READER, BackupSwitchReason.FAULT,
                                   pin=profile_secret("pk-regular", SecretRef.PIN))
        rig.daemon.insert(PK_READER, "pk-backup")
        backup_pin = profile_secret("pk-backup", SecretRef.PIN)
        assert client.activate_backup(PK_READER, BackupSwitchReason.FAULT, pin=backup_pin)
        assert not client.activate_backup(PK_READER, BackupSwitchReason.FAULT, pin=backup_pin)
        assert client.get_card_status(PK_READER).status is RegistryStatus.ACTIVE
        assert not _open(rig, client, "pk-backup").backup_activated  # active: no question
        with pytest.raises(grpc.RpcError) as refused:
            _open(rig, client, "pk-regular")
        assert refusal_reason(refused.value) == "REGULAR_CARD_DEACTIVATED"
        rig.daemon.insert(PK_READER, "pk-regular")
        client.reactivate_card(PK_READER, PASSWORD,
                               pin=profile_secret("pk-regular", SecretRef.PIN))
        assert client.get_card_status(PK_READER).switches[1].reason is BackupSwitchReason.FAULT
    switches = [r for r in _audit(rig) if r.get("operation") == "ActivateBackupCard"
                and r.get("outcome") != "STARTED"]
    assert [(r["outcome"], r.get("holder_reason")) for r in switches] == [
        ("NOT_SUPPORTED", "FAULT"), ("OK", "FAULT"), ("OK", "FAULT")]
    assert backup_pin not in rig.daemon.log() + rig.daemon.audit_path.read_text()


def test_revoked_kpep_no_longer_signs(simulated_rig: Rig) -> None:
    rig = simulated_rig
    rig.daemon.insert(PK_READER, "pk-regular")
    spin = profile_secret("pk-regular", SecretRef.SPIN)
    with rig.daemon.client() as client:
        assert client.sign_document(PK_READER, b"before", spin=spin).card_serial == REGULAR
        with pytest.raises(WrongPin) as wrong:
            client.revoke_signature("Wrong!password-1", reader=PK_READER)
        assert wrong.value.tries_left == 4
        assert client.get_card_status(PK_READER).reactivation_tries_left == 4
        assert client.revoke_signature(PASSWORD, reader=PK_READER) == REGULAR
        with pytest.raises(SignatureRevoked):
            client.sign_document(PK_READER, b"after", spin=spin)
        status = client.get_card_status(PK_READER)
    assert status.signature_revoked
    assert status.reactivation_tries_left == 5
    records = _audit(rig)
    revokes = [r for r in records if r.get("operation") == "RevokeSignature"
               and r.get("outcome") != "STARTED"]
    assert [(r["outcome"], r.get("card_serial"), r.get("holder_reason")) for r in revokes] == [
        ("WRONG_PIN", REGULAR, "KPEP_REVOKED"), ("OK", REGULAR, "KPEP_REVOKED")]
    signs = [r["outcome"] for r in records if r.get("operation") == "SignDocument"
             and r.get("outcome") != "STARTED"]
    assert signs[-2:] == ["OK", "SIGNATURE_REVOKED"]
    backend = [r for r in rig.backend.registry.audit_records()
               if r.event is AuditEvent.SIGNATURE_REVOKED]
    assert [(r.card_serial, r.client_id) for r in backend] == [(REGULAR, "ws-sessions-01")]
    text = rig.daemon.log() + rig.daemon.audit_path.read_text()
    assert PASSWORD not in text
    assert spin not in text


def test_lost_card_is_revoked_for_good(simulated_rig: Rig) -> None:
    rig = simulated_rig
    rig.daemon.insert(KZZ_READER, "kzz")
    with rig.daemon.client() as client:
        assert client.report_card_lost(LossReason.STOLEN, PASSWORD,
                                       card_serial=BACKUP) == BACKUP
        rig.daemon.insert(PK_READER, "pk-backup")
        status = client.get_card_status(PK_READER)
        assert (status.status, status.loss_reason, status.signature_revoked) == (
            RegistryStatus.REVOKED, LossReason.STOLEN, True)
        opened = client.open_session(PK_READER, rig.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=KZZ_READER,
                                     pin=profile_secret("pk-backup", SecretRef.PIN),
                                     backup_switch=BackupSwitchReason.FAULT)
        client.close_session(opened.session_id)
    with pytest.raises(grpc.RpcError) as refused:
        rig.backend.redeem(opened.token.token)
    assert refusal_reason(refused.value) == "CARD_REVOKED"
    lost = [r for r in _audit(rig) if r.get("operation") == "ReportCardLost"
            and r.get("outcome") != "STARTED"]
    assert [(r["outcome"], r.get("card_serial"), r.get("holder_reason")) for r in lost] == [
        ("OK", BACKUP, "STOLEN")]
    assert PinRef.REACTIVATION.name in {r.get("reference") for r in lost}
