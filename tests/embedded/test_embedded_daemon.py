"""``pkcardd --simulated`` alone is complete: sessions and reactivation end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from embeddedrig import (
    WORKSTATION,
    EmbeddedDaemon,
    pkpin_reactivate,
    profile_secret,
    refusal_reason,
    start_daemon,
)

from pkcard.backend.registry import REACTIVATION_TRIES, AuditEvent
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.daemon.embedded_backend import simulated_pk_cards
from pkcard.daemon.simulation import DEFAULT_CARDS
from pkcard.errors import BackupSwitchNotConfirmed
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason
from pkcard.tools.pkpin.messages import ExitCode
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
REGULAR_SERIAL = "PK0000100001"
BACKUP_SERIAL = "PK0000100002"
WRONG = "Wrong!password-1"


def open_and_redeem(daemon: EmbeddedDaemon, profile: str,
                    switch: BackupSwitchReason | None = None) -> bpb.RedeemTokenResponse:
    """Challenge from the embedded backend, OpenSession (PK + KZZ), RedeemToken."""
    challenge = daemon.challenge()
    with daemon.client() as client:
        opened = client.open_session(PK_READER, challenge, ("I002", "I003"),
                                     kzz_reader=KZZ_READER,
                                     pin=profile_secret(profile, SecretRef.PIN),
                                     backup_switch=switch)
        client.close_session(opened.session_id)
    return daemon.redeem(opened.token.token)


def insert(daemon: EmbeddedDaemon, reader: str, profile: str) -> None:
    with grpc.insecure_channel(f"unix:{daemon.socket_path}") as channel:
        simulation_pb2_grpc.SimulationServiceStub(channel).InsertCard(
            simulation_pb2.InsertCardRequest(reader=reader, profile=profile), timeout=10)


def redeem_refusal(daemon: EmbeddedDaemon, profile: str) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        open_and_redeem(daemon, profile)
    return refusal_reason(refused.value)


def test_sockets_of_the_embedded_backend(daemon: EmbeddedDaemon) -> None:
    assert daemon.backend_socket.is_socket()
    assert daemon.backend_socket.stat().st_mode & 0o777 == 0o600
    assert (daemon.state_dir / "backend.sqlite").is_file()
    assert DEFAULT_CARDS[0] == (PK_READER, "pk-regular")


def test_challenge_session_redeem(daemon: EmbeddedDaemon) -> None:
    reply = open_and_redeem(daemon, "pk-regular")
    assert reply.card_serial == REGULAR_SERIAL
    assert reply.scope == bpb.SCOPE_FULL
    assert "I002" in reply.granted_authorizations
    assert reply.patient_id
    assert not reply.backup_activated


def test_a_token_is_redeemed_once(daemon: EmbeddedDaemon) -> None:
    challenge = daemon.challenge()
    with daemon.client() as client:
        opened = client.open_session(PK_READER, challenge, ("I002",), kzz_reader=KZZ_READER,
                                     pin=profile_secret("pk-regular", SecretRef.PIN))
    daemon.redeem(opened.token.token)
    with pytest.raises(grpc.RpcError) as again:
        daemon.redeem(opened.token.token)
    assert refusal_reason(again.value) == "NONCE_REUSED"


def use_backup(daemon: EmbeddedDaemon) -> None:
    insert(daemon, PK_READER, "pk-backup")
    assert open_and_redeem(daemon, "pk-backup", BackupSwitchReason.FAULT).backup_activated
    insert(daemon, PK_READER, "pk-regular")


def test_pkpin_reactivate_through_the_holder_call(daemon: EmbeddedDaemon) -> None:
    use_backup(daemon)
    assert redeem_refusal(daemon, "pk-regular") == "REGULAR_CARD_DEACTIVATED"

    code, text = pkpin_reactivate(daemon, PK_READER, WRONG)
    assert code == ExitCode.WRONG_PIN
    assert f"{REACTIVATION_TRIES - 1} tries left" in text
    code, text = pkpin_reactivate(daemon, PK_READER, WRONG)
    assert f"{REACTIVATION_TRIES - 2} tries left" in text

    password = profile_secret("pk-regular", SecretRef.REACTIVATION)
    code, text = pkpin_reactivate(daemon, PK_READER, password)
    assert code == ExitCode.OK, text
    assert REGULAR_SERIAL in text
    assert open_and_redeem(daemon, "pk-regular").card_serial == REGULAR_SERIAL
    insert(daemon, PK_READER, "pk-backup")
    with pytest.raises(BackupSwitchNotConfirmed):  # issue 15: inactive, switchable again
        open_and_redeem(daemon, "pk-backup")

    audit = [r for r in daemon.audit()
             if r.event in (AuditEvent.REACTIVATED, AuditEvent.REACTIVATION_REFUSED)]
    assert [r.event for r in audit] == [AuditEvent.REACTIVATION_REFUSED,
                                        AuditEvent.REACTIVATION_REFUSED,
                                        AuditEvent.REACTIVATED]
    assert {r.client_id for r in audit} == {WORKSTATION}
    assert {r.card_serial for r in audit} == {REGULAR_SERIAL}
    for secret in (password, WRONG):
        assert secret not in daemon.log()
        assert all(secret not in (r.detail or "") for r in daemon.audit())


def test_restart_keeps_the_registry(root: Path) -> None:
    first = start_daemon(root)
    try:
        use_backup(first)
        code, _ = pkpin_reactivate(first, PK_READER, WRONG)
        assert code == ExitCode.WRONG_PIN
    finally:
        assert first.stop() == 0
    seeded = first.audit()

    second = start_daemon(root)
    try:
        # the backup's activation survived: the regular card is still deactivated
        assert redeem_refusal(second, "pk-regular") == "REGULAR_CARD_DEACTIVATED"
        # and so did the spent try
        code, text = pkpin_reactivate(second, PK_READER, WRONG)
        assert code == ExitCode.WRONG_PIN
        assert f"{REACTIVATION_TRIES - 2} tries left" in text
    finally:
        assert second.stop() == 0

    records = second.audit()
    assert records[:len(seeded)] == seeded  # nothing rewritten, nothing seeded twice
    added = [r for r in records if r.event is AuditEvent.CARD_ADDED]
    assert sorted(r.card_serial or "" for r in added) == sorted(
        card.serial for card in simulated_pk_cards())
    holders = [r for r in records if r.event is AuditEvent.HOLDER_ADDED]
    assert len(holders) == len({card.holder_id for card in simulated_pk_cards()})


def test_a_corrupt_database_refuses_to_start(root: Path) -> None:
    state = root / "state"
    state.mkdir(mode=0o700)
    (state / "backend.sqlite").write_bytes(b"not a database" * 512)
    result = subprocess.run(
        [sys.executable, "-m", "pkcard.daemon.main", "--simulated",
         "--socket-dir", str(root / "run"), "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "cannot start the embedded backend" in result.stderr
    assert not (root / "run" / "backend.sock").exists()
    assert not (root / "run" / "pkcardd.sock").exists()
