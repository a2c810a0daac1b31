"""The reactivation password lives at the backend only (issue 15, point 2).

Measured before the fix: ChangePin(REACTIVATION) changed only the card's copy;
the backend still accepted the old password and refused the new one.
"""

from __future__ import annotations

import grpc
from sessionrig import Rig, profile_secret, refusal_reason

from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.pin import PinRef
from pkcard.simcard.inprocess import PINPAD_READER
from pkcard.simcard.spec import SecretRef

PK_READER = PINPAD_READER.name
REGULAR = "PK0000100001"
NEW_PASSWORD = "Fresh#Pass-2026"


def _backend_accepts(rig: Rig, password: str) -> bool:
    """Whether the backend's admin reactivation accepts ``password`` for the regular card."""
    try:
        rig.backend.admin.ReactivateCard(
            bpb.ReactivateCardRequest(card_serial=REGULAR, reactivation_password=password),
            metadata=rig.backend._admin_metadata, timeout=10)
    except grpc.RpcError as error:
        reason = refusal_reason(error)
    else:
        return True
    assert reason == "REACTIVATION_PASSWORD_WRONG", reason
    return False


def test_changepin_reactivation_changes_the_backends_password(simulated_rig: Rig) -> None:
    rig = simulated_rig
    rig.daemon.insert(PK_READER, "pk-regular")
    old = profile_secret("pk-regular", SecretRef.REACTIVATION)
    pin = profile_secret("pk-regular", SecretRef.PIN)
    with rig.daemon.client() as client:
        client.verify_pin(PK_READER, PinRef.PIN, pin)  # the card's proof needs its PIN
        client.change_pin(PK_READER, PinRef.REACTIVATION, old, NEW_PASSWORD)
    assert _backend_accepts(rig, NEW_PASSWORD)
    assert not _backend_accepts(rig, old)
    log = rig.daemon.log() + rig.daemon.audit_path.read_text()
    for secret in (old, NEW_PASSWORD, pin):
        assert secret not in log
    # put it back for the module's other tests
    with rig.daemon.client() as client:
        client.verify_pin(PK_READER, PinRef.PIN, pin)
        client.change_pin(PK_READER, PinRef.REACTIVATION, NEW_PASSWORD, old)
    assert _backend_accepts(rig, old)
