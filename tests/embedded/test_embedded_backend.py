"""The embedded backend in process: seeding, the holder's ReactivateCard, the flags."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from embeddedrig import DEVELOPER, possession_proof, refusal_reason
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pkcard.backend.registry import REACTIVATION_TRIES, AuditEvent, Registry, WithdrawalReason
from pkcard.backend.service import CLIENT_METADATA_KEY
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.backend.v1 import backend_pb2_grpc as bpb_grpc
from pkcard.daemon.config import BackendConfig, ReaderBackend
from pkcard.daemon.embedded_backend import (
    SEED_AUTHORIZATIONS,
    EmbeddedBackend,
    seed_registry,
    simulated_pk_cards,
)
from pkcard.daemon.main import _parser, build_config
from pkcard.daemon.peers import InsecureSocketDir
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import CardRole
from pkcard.verify import CardStatus

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FAST_SCRYPT_N = 2**10
REGULAR = "PK0000100001"
BACKUP = "PK0000100002"
PASSWORD = load_profile("pk-regular").secret_value(SecretRef.REACTIVATION)
WRONG = "Wrong!password-1"


def test_seed_cards_come_from_the_test_profiles() -> None:
    cards = {card.serial: card for card in simulated_pk_cards()}
    assert cards[REGULAR].role is CardRole.REGULAR
    assert cards[BACKUP].role is CardRole.BACKUP
    assert cards[REGULAR].holder_id == cards[BACKUP].holder_id
    assert cards[BACKUP].reactivation_password is None
    assert "PK1000100001" not in cards  # the production profile is not a test card
    assert PASSWORD not in repr(cards[REGULAR])


def test_seeding_is_idempotent(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "db.sqlite", scrypt_n=FAST_SCRYPT_N)
    cards = simulated_pk_cards()
    try:
        assert seed_registry(registry, cards, SEED_AUTHORIZATIONS, NOW) == len(cards)
        holder = registry.card(REGULAR)
        assert holder is not None
        assert registry.granted_authorizations(holder.holder_id) == frozenset(SEED_AUTHORIZATIONS)
        registry.withdraw(holder.holder_id, "I003", WithdrawalReason.MISUSE, NOW)
        before = registry.audit_records()

        assert seed_registry(registry, cards, SEED_AUTHORIZATIONS, NOW) == 0
        assert registry.audit_records() == before
        assert registry.granted_authorizations(holder.holder_id) == frozenset({"I002"})
    finally:
        registry.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "state", tmp_path / "private.sock",
                              tmp_path / "backend.sock", clock=lambda: NOW,
                              scrypt_n=FAST_SCRYPT_N)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop(0)


def reactivate(backend: EmbeddedBackend, password: str) -> bpb.ReactivateCardResponse:
    """The holder's call, with the regular card's proof of possession (issue 12, break 8)."""
    with grpc.insecure_channel(f"unix:{backend.public_socket}") as channel:
        stub = bpb_grpc.SessionServiceStub(channel)
        reply: bpb.ReactivateCardResponse = stub.ReactivateCard(
            bpb.ReactivateCardRequest(card_serial=REGULAR, reactivation_password=password,
                                      proof=possession_proof(stub, DEVELOPER, REGULAR)),
            metadata=((CLIENT_METADATA_KEY, DEVELOPER),), timeout=10)
    return reply


def refused(backend: EmbeddedBackend, password: str) -> tuple[grpc.StatusCode, str, str]:
    """Code, reason and the tries_left metadata of a refused ReactivateCard."""
    with pytest.raises(grpc.RpcError) as caught:
        reactivate(backend, password)
    error = caught.value
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return error.code(), refusal_reason(error), info.metadata.get("tries_left", "")


def test_holder_reactivation_needs_no_admin(embedded: EmbeddedBackend) -> None:
    assert reactivate(embedded, PASSWORD).tries_left == REACTIVATION_TRIES
    with grpc.insecure_channel(f"unix:{embedded.public_socket}") as channel, \
            pytest.raises(grpc.RpcError) as denied:
        bpb_grpc.RegistryAdminServiceStub(channel).RevokeCard(
            bpb.RevokeCardRequest(card_serial=REGULAR),
            metadata=((CLIENT_METADATA_KEY, DEVELOPER),), timeout=10)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_wrong_passwords_count_down_then_block(embedded: EmbeddedBackend) -> None:
    for left in range(REACTIVATION_TRIES - 1, 0, -1):
        assert refused(embedded, WRONG) == (grpc.StatusCode.PERMISSION_DENIED,
                                             "REACTIVATION_PASSWORD_WRONG", str(left))
    blocked = (grpc.StatusCode.PERMISSION_DENIED, "REACTIVATION_PASSWORD_BLOCKED", "0")
    assert refused(embedded, WRONG) == blocked
    assert refused(embedded, PASSWORD) == blocked  # even the right one, once blocked

    registry = Registry(embedded.database)
    try:
        audit = [r for r in registry.audit_records()
                 if r.event is AuditEvent.REACTIVATION_REFUSED]
        card = registry.card(REGULAR)
    finally:
        registry.close()
    assert len(audit) == REACTIVATION_TRIES
    assert {r.client_id for r in audit} == {DEVELOPER}
    assert all(WRONG not in (r.detail or "") for r in audit)
    assert card is not None
    assert card.status is CardStatus.ACTIVE


def test_malformed_and_unknown(embedded: EmbeddedBackend) -> None:
    code, reason, _ = refused(embedded, "short")
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_PASSWORD")
    with grpc.insecure_channel(f"unix:{embedded.public_socket}") as channel:
        stub = bpb_grpc.SessionServiceStub(channel)
        request = bpb.ReactivateCardRequest(card_serial=BACKUP, reactivation_password=PASSWORD,
                                            proof=possession_proof(stub, DEVELOPER, BACKUP))
        with pytest.raises(grpc.RpcError) as unknown:
            stub.ReactivateCard(request, metadata=((CLIENT_METADATA_KEY, DEVELOPER),),
                                timeout=10)
    # A backup has no password; since issue 12 break 8 the answer no longer says NOT_FOUND,
    # it is the one answer for every serial this proof does not belong to.
    assert unknown.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert refusal_reason(unknown.value) == "REACTIVATION_PROOF_INVALID"


def test_a_second_instance_on_the_same_sockets_is_refused(
    embedded: EmbeddedBackend, tmp_path: Path
) -> None:
    other = EmbeddedBackend(tmp_path / "state2", embedded.private_socket,
                            embedded.public_socket, scrypt_n=FAST_SCRYPT_N)
    with pytest.raises(InsecureSocketDir, match="in use"):
        other.start()
    assert reactivate(embedded, PASSWORD).tries_left == REACTIVATION_TRIES


def test_backend_and_state_dir_flags(tmp_path: Path) -> None:
    args = _parser().parse_args(["--simulated", "--backend", "unix:/run/b.sock",
                                 "--state-dir", str(tmp_path)])
    config = build_config(args)
    assert config.reader_backend is ReaderBackend.SIMULATED
    assert config.backend == BackendConfig("unix:/run/b.sock")
    assert config.state_dir == tmp_path
    assert build_config(_parser().parse_args(["--simulated"])).backend is None
