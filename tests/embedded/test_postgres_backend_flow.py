"""The README's whole flow with ``pkcard-backend --db postgresql://...`` as the backend.

A real PostgreSQL (the session's private server), a real ``pkcard-backend``
process configured through its ``--config`` file (``db = "postgresql://..."``),
and ``pkcardd --simulated`` with ``backend = "127.0.0.1:PORT"``: a challenge,
a session over the simulated PK and KZZ, the redemption, the backup card's
first token switching the cards, and the holder's reactivation with pkpin.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from embeddedrig import ROOT, WORKSTATION, EmbeddedDaemon, pkpin_reactivate, profile_secret
from pgserver import BACKEND_EXE, BackendProcess, md
from pgserver import _wait_listening as wait_listening
from serving import wait_serving

from pkcard.backend.registry import AuditEvent, Registry
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.daemon.embedded_backend import (
    SEED_AUTHORIZATIONS,
    TEST_CA_DIR,
    seed_registry,
    simulated_pk_cards,
)
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason
from pkcard.tools.pkpin.messages import ExitCode
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

DEVELOPER = "dev-client"
PK_READER, KZZ_READER = PINPAD_READER.name, TWIN_READER.name


@pytest.fixture
def backend(pg_database: str, root: Path) -> Iterator[BackendProcess]:
    registry = Registry(pg_database)
    seed_registry(registry, simulated_pk_cards(), SEED_AUTHORIZATIONS, datetime.now(UTC))
    registry.close()
    config = root / "backend.toml"
    config.write_text(f'db = "{pg_database}"\nlisten = "127.0.0.1:0"\npool_size = 4\n')
    log_path = root / "backend.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(BACKEND_EXE), "--config", str(config), "--environment", "test",
             "--pk-anchor", str(TEST_CA_DIR / "test-pk" / "ca-cert.pem"),
             "--kzz-anchor", str(TEST_CA_DIR / "test-kzz" / "ca-cert.pem"),
             "--dev-metadata-identity"], stderr=log, stdout=subprocess.DEVNULL)
    port = wait_listening(process, log_path)
    running = BackendProcess(process, log_path, port, grpc.insecure_channel(f"127.0.0.1:{port}"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def daemon(root: Path, backend: BackendProcess) -> Iterator[EmbeddedDaemon]:
    config = root / "pkcardd.toml"
    config.write_text(f'workstation_id = "{WORKSTATION}"\nbackend = "127.0.0.1:{backend.port}"\n')
    log_path = root / "pkcardd.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pkcard.daemon.main", "--simulated", "--config", str(config),
             "--socket-dir", str(root / "run"), "--state-dir", str(root / "state")],
            stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    running = EmbeddedDaemon(root, process, log_path)
    wait_serving(process, running.socket_path, running.log, running.stop)
    try:
        yield running
    finally:
        running.stop()


def open_and_redeem(daemon: EmbeddedDaemon, backend: BackendProcess,
                    profile: str) -> bpb.RedeemTokenResponse:
    challenge = backend.session.IssueChallenge(bpb.IssueChallengeRequest(),
                                               metadata=md(DEVELOPER), timeout=30).nonce
    with daemon.client() as client:
        switch = BackupSwitchReason.FAULT if profile == "pk-backup" else None
        opened = client.open_session(PK_READER, challenge, ["I002"], kzz_reader=KZZ_READER,
                                     pin=profile_secret(profile, SecretRef.PIN),
                                     backup_switch=switch)
        client.close_session(opened.session_id)
    reply: bpb.RedeemTokenResponse = backend.session.RedeemToken(
        bpb.RedeemTokenRequest(token=opened.token.token), metadata=md(DEVELOPER), timeout=30)
    return reply


def insert(daemon: EmbeddedDaemon, profile: str) -> None:
    with grpc.insecure_channel(f"unix:{daemon.socket_path}") as channel:
        simulation_pb2_grpc.SimulationServiceStub(channel).InsertCard(
            simulation_pb2.InsertCardRequest(reader=PK_READER, profile=profile), timeout=10)


def test_the_readme_flow_on_postgresql(daemon: EmbeddedDaemon, backend: BackendProcess,
                                       pg_database: str) -> None:
    reply = open_and_redeem(daemon, backend, "pk-regular")
    assert (reply.card_serial, list(reply.granted_authorizations)) == ("PK0000100001", ["I002"])
    assert not reply.backup_activated

    insert(daemon, "pk-backup")  # the backup card's first token switches the cards
    assert open_and_redeem(daemon, backend, "pk-backup").backup_activated
    insert(daemon, "pk-regular")
    with pytest.raises(grpc.RpcError) as refused:
        open_and_redeem(daemon, backend, "pk-regular")
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    code, text = pkpin_reactivate(daemon, PK_READER,
                                  profile_secret("pk-regular", SecretRef.REACTIVATION))
    assert code == ExitCode.OK, text
    assert open_and_redeem(daemon, backend, "pk-regular").card_serial == "PK0000100001"

    registry = Registry(pg_database)
    try:
        events = [r.event for r in registry.audit_records()]
        assert registry.verify_audit() == len(events)
    finally:
        registry.close()
    assert events.count(AuditEvent.REDEEMED) == 3
    assert events.count(AuditEvent.BACKUP_ACTIVATED) == 1
    assert events.count(AuditEvent.REACTIVATED) == 1
    assert events.count(AuditEvent.REFUSED) == 1
