"""Backup card first use and ``ReactivateCard`` through ``pkcardd --simulated`` to the backend."""

from __future__ import annotations

import grpc
import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret, refusal_reason

from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.client import PkcardClient
from pkcard.errors import BackupSwitchNotConfirmed, NotSupported, WrongPin
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name


def _redeem(rig: Rig, client: PkcardClient, profile: str,
            switch: BackupSwitchReason | None = None) -> bpb.RedeemTokenResponse:
    rig.daemon.insert(PK_READER, profile)
    opened = client.open_session(PK_READER, rig.backend.challenge(), AUTHORIZATIONS,
                                 kzz_reader=KZZ_READER,
                                 pin=profile_secret(profile, SecretRef.PIN),
                                 backup_switch=switch)
    client.close_session(opened.session_id)
    return rig.backend.redeem(opened.token.token)


def _refusal(rig: Rig, client: PkcardClient, profile: str) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        _redeem(rig, client, profile)
    return refusal_reason(refused.value)


def test_backup_first_use_then_reactivation(simulated_rig: Rig) -> None:
    rig = simulated_rig
    rig.daemon.insert(KZZ_READER, "kzz")
    with rig.daemon.client() as client:
        first = _redeem(rig, client, "pk-backup", BackupSwitchReason.FAULT)
        assert first.backup_activated is True
        assert _refusal(rig, client, "pk-regular") == "REGULAR_CARD_DEACTIVATED"

        # the backup card is not what gets reactivated
        rig.daemon.insert(PK_READER, "pk-backup")
        with pytest.raises(NotSupported):
            client.reactivate_card(PK_READER, "Wrong!password-1",
                                   pin=profile_secret("pk-backup", SecretRef.PIN))

        rig.daemon.insert(PK_READER, "pk-regular")
        pin = profile_secret("pk-regular", SecretRef.PIN)  # the card proves it is here
        with pytest.raises(WrongPin) as wrong:
            client.reactivate_card(PK_READER, "Wrong!password-1", pin=pin)
        assert wrong.value.tries_left == 4
        password = profile_secret("pk-regular", SecretRef.REACTIVATION)
        serial = client.reactivate_card(PK_READER, password, pin=pin)
        assert serial == "PK0000100001"

        again = _redeem(rig, client, "pk-regular")
        assert again.backup_activated is False
        # issue 15: the backup is inactive, not dead: unconfirmed it is refused before
        # anything is signed, confirmed it switches the cards again
        with pytest.raises(BackupSwitchNotConfirmed):
            _redeem(rig, client, "pk-backup")
        assert _redeem(rig, client, "pk-backup", BackupSwitchReason.BLOCK).backup_activated
    log = rig.daemon.log() + rig.daemon.audit_path.read_text()
    assert password not in log
    assert "Wrong!password-1" not in log
    assert pin not in log
