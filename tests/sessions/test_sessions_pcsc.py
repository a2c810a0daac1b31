"""Sessions end to end over the real path: vpcd cards in a real pcscd, a real ``pkcardd
--pcsc`` process, a real backend gRPC server on a Unix socket.

The removal test prints the measured latency from pulling the card to the
SessionEnd event (for docs/api.md); it asserts only behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from sessionrig import (
    AUTHORIZATIONS,
    EventCollector,
    Rig,
    profile_secret,
    refusal_reason,
    rig,
)

from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.errors import EnvironmentMismatch, SessionEnded, SessionEndReason, WrongPin
from pkcard.sessions import RestrictedMode, RestrictedReason, SessionEnd
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason

pytestmark = pytest.mark.pcsc

PK_SLOT = 0  # "Gemalto PC Twin Reader": no PIN pad, the PIN comes from the client
KZZ_SLOT = 2  # "Virtual PCD"
PATIENT = "900000011"


@pytest.fixture(scope="module")
def pcsc_rig(_pcscd_session: PcscdHarness) -> Iterator[Rig]:
    yield from rig(simulated=False)


@pytest.fixture
def cards(pcscd_env: PcscdHarness, pcsc_rig: Rig) -> tuple[PcscdHarness, Rig, str, str]:
    """pk-regular and kzz inserted; the two reader names."""
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    pcscd_env.insert(KZZ_SLOT, load_card("kzz"))
    return pcscd_env, pcsc_rig, pcscd_env.reader_name(PK_SLOT), pcscd_env.reader_name(KZZ_SLOT)


def _pin(profile: str = "pk-regular") -> str:
    return profile_secret(profile, SecretRef.PIN)


@pytest.mark.parametrize(("pk_profile", "kzz_profile"),
                         [("pk-regular", "kzz-prod"), ("pk-regular-prod", "kzz")])
def test_test_and_production_cards_never_open_a_session_together(
    pcscd_env: PcscdHarness, pcsc_rig: Rig, pk_profile: str, kzz_profile: str,
) -> None:
    pcscd_env.insert(PK_SLOT, load_card(pk_profile))
    pcscd_env.insert(KZZ_SLOT, load_card(kzz_profile))
    with pcsc_rig.daemon.client() as client, pytest.raises(EnvironmentMismatch):
        client.open_session(pcscd_env.reader_name(PK_SLOT), pcsc_rig.backend.challenge(),
                            AUTHORIZATIONS, kzz_reader=pcscd_env.reader_name(KZZ_SLOT),
                            pin=_pin(pk_profile))


def test_full_and_restricted_sessions(cards: tuple[PcscdHarness, Rig, str, str]) -> None:
    _, env_rig, pk_reader, kzz_reader = cards
    with env_rig.daemon.client() as client:
        opened = client.open_session(pk_reader, env_rig.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=kzz_reader, pin=_pin())
        redeemed = env_rig.backend.redeem(opened.token.token)
        assert redeemed.scope == bpb.SCOPE_FULL
        assert list(redeemed.granted_authorizations) == sorted(AUTHORIZATIONS)
        assert redeemed.patient_id == PATIENT

        token = client.refresh_session(opened.session_id, env_rig.backend.challenge())
        assert env_rig.backend.redeem(token.token).scope == bpb.SCOPE_FULL
        with pytest.raises(grpc.RpcError) as replayed:
            env_rig.backend.redeem(token.token)
        assert refusal_reason(replayed.value) == "NONCE_REUSED"
        assert client.close_session(opened.session_id)

        restricted = client.open_session(
            pk_reader, env_rig.backend.challenge(), AUTHORIZATIONS,
            restricted=RestrictedMode(RestrictedReason.KZZ_UNUSABLE, PATIENT, "chip broken"))
        redeemed = env_rig.backend.redeem(restricted.token.token)
        assert redeemed.scope == bpb.SCOPE_RESTRICTED
        assert list(redeemed.granted_authorizations) == ["I002"]
        assert client.close_session(restricted.session_id)


@pytest.mark.parametrize(("slot", "reason"), [
    (KZZ_SLOT, SessionEndReason.KZZ_REMOVED),
    (PK_SLOT, SessionEndReason.PK_REMOVED),
])
def test_card_removal_ends_the_session(cards: tuple[PcscdHarness, Rig, str, str], slot: int,
                                       reason: SessionEndReason) -> None:
    env, env_rig, pk_reader, kzz_reader = cards
    events = EventCollector(env_rig.daemon.channel())
    try:
        with env_rig.daemon.client() as client:
            opened = client.open_session(pk_reader, env_rig.backend.challenge(),
                                         AUTHORIZATIONS, kzz_reader=kzz_reader, pin=_pin())
            pulled_at = time.monotonic()
            env.remove(slot, wait=False)
            end = events.next(SessionEnd)
            latency = time.monotonic() - pulled_at
            assert end == SessionEnd(opened.session_id, reason, env.reader_name(slot))
            with pytest.raises(SessionEnded) as refused:
                client.refresh_session(opened.session_id, env_rig.backend.challenge())
            assert refused.value.end_reason is reason
    finally:
        events.stop()
    print(f"\nsession ended {latency * 1000:.0f} ms after the {reason.name} pull")


def test_backup_first_use_and_reactivate(cards: tuple[PcscdHarness, Rig, str, str]) -> None:
    env, env_rig, pk_reader, kzz_reader = cards

    def redeem(profile: str) -> bpb.RedeemTokenResponse:
        env.remove(PK_SLOT)
        env.insert(PK_SLOT, load_card(profile))
        with env_rig.daemon.client() as client:
            switch = BackupSwitchReason.FAULT if profile == "pk-backup" else None
            opened = client.open_session(pk_reader, env_rig.backend.challenge(),
                                         AUTHORIZATIONS, kzz_reader=kzz_reader,
                                         pin=_pin(profile), backup_switch=switch)
            client.close_session(opened.session_id)
        return env_rig.backend.redeem(opened.token.token)

    assert redeem("pk-backup").backup_activated
    with pytest.raises(grpc.RpcError) as refused:
        redeem("pk-regular")
    assert refusal_reason(refused.value) == "REGULAR_CARD_DEACTIVATED"
    with env_rig.daemon.client() as client:
        with pytest.raises(WrongPin):
            client.reactivate_card(pk_reader, "Wrong!password-1", pin=_pin("pk-regular"))
        serial = client.reactivate_card(
            pk_reader, profile_secret("pk-regular", SecretRef.REACTIVATION),
            pin=_pin("pk-regular"))
    assert serial == "PK0000100001"
    assert not redeem("pk-regular").backup_activated
