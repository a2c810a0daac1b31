"""Issue 12, break 8: a holder's reactivation needs the card, over the real gRPC backend.

Measured on the old main: five wrong guesses for another card's serial, from
another client id, blocked the holder's reactivation password for good, and
NOT_FOUND versus REACTIVATION_PASSWORD_WRONG told which serials exist. Now a
try counts only with a proof of possession: the regular PK's signature over
a fresh challenge of the calling client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tokenrig import BACKUP_SERIAL, HOLDER, NOW, PASSWORD, REGULAR_SERIAL, Card, FakeClock, Pki

from pkcard.backend.core import SessionBackend
from pkcard.backend.devpki import KeyKind, card_signer, issue_card_cert
from pkcard.backend.registry import REACTIVATION_TRIES, AuditEvent, Registry
from pkcard.backend.service import CLIENT_METADATA_KEY, ERROR_DOMAIN, ClientIdentity, build_server
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.secret import Secret
from pkcard.token import CardRole, make_possession_proof

ADMIN = "registry-admin"
HOLDER_CLIENT = "ws-ljubljana-01"
ATTACKER_CLIENT = "ws-maribor-07"
ATTACKER_HOLDER = "20002"
ATTACKER_SERIAL = "PK0000200001"
UNKNOWN_SERIAL = "PK0000999999"
WRONG = "Wrong-pass-1"

Answer = tuple[grpc.StatusCode, str, str, tuple[tuple[str, str], ...]]


def md(client: str) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_METADATA_KEY, client),)


@dataclass
class Backend:
    session: pb_grpc.SessionServiceStub
    registry: Registry
    attacker_card: Card

    def proof(self, client: str, card: Card, serial: str) -> pb.PossessionProof:
        """``card`` signs a fresh challenge of ``client`` for ``serial``."""
        nonce = self.session.IssueChallenge(pb.IssueChallengeRequest(), metadata=md(client)).nonce
        made = make_possession_proof(nonce, serial, (card.cert_der,),
                                     card_signer(card.auth.key))
        return pb.PossessionProof(nonce=made.nonce, certificate_chain=list(made.chain),
                                  signature=made.signature)

    def reactivate(self, client: str, serial: str, password: str,
                   proof: pb.PossessionProof | None = None) -> pb.ReactivateCardResponse:
        request = pb.ReactivateCardRequest(card_serial=serial, reactivation_password=password)
        if proof is not None:
            request.proof.CopyFrom(proof)
        reply: pb.ReactivateCardResponse = self.session.ReactivateCard(request,
                                                                       metadata=md(client))
        return reply

    def refused(self, client: str, serial: str, password: str,
                proof: pb.PossessionProof | None = None) -> Answer:
        """Everything the caller sees of a refusal: code, reason, message, metadata."""
        with pytest.raises(grpc.RpcError) as info:
            self.reactivate(client, serial, password, proof)
        status = rpc_status.from_call(info.value)
        assert status is not None
        detail = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(detail)
        assert detail.domain == ERROR_DOMAIN
        return (info.value.code(), detail.reason, status.message,
                tuple(sorted(detail.metadata.items())))

    def tries_left(self) -> int:
        conn = self.registry._connection()
        row = conn.execute("SELECT tries_left FROM reactivation WHERE serial = ?",
                           (REGULAR_SERIAL,)).fetchone()
        return int(row[0])


@pytest.fixture
def backend_rpc(backend: SessionBackend, registry: Registry, clock: FakeClock,
                test_pki: Pki) -> Iterator[Backend]:
    server = build_server(backend, registry, clock, identity=ClientIdentity.METADATA,
                          admins=frozenset({ADMIN}), max_workers=4)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    admin = pb_grpc.RegistryAdminServiceStub(channel)
    attacker = issue_card_cert(test_pki.dev.pk_ca, "Dr Eve Test", ATTACKER_HOLDER,
                               KeyKind.EC_P256, not_before=NOW - timedelta(days=30),
                               not_after=NOW + timedelta(days=300))
    try:
        for holder, name in ((HOLDER, "Dr Ana Test"), (ATTACKER_HOLDER, "Dr Eve Test")):
            admin.AddHolder(pb.AddHolderRequest(holder_id=holder, name=name), metadata=md(ADMIN))
        for serial, holder, role, cert in (
            (REGULAR_SERIAL, HOLDER, pb.CARD_ROLE_REGULAR, test_pki.regular.cert_der),
            (BACKUP_SERIAL, HOLDER, pb.CARD_ROLE_BACKUP, test_pki.backup.cert_der),
            (ATTACKER_SERIAL, ATTACKER_HOLDER, pb.CARD_ROLE_REGULAR,
             Card(ATTACKER_SERIAL, CardRole.REGULAR, attacker).cert_der),
        ):
            admin.AddCard(pb.AddCardRequest(
                card_serial=serial, holder_id=holder, role=role, auth_cert_der=cert,
                reactivation_password=PASSWORD if role == pb.CARD_ROLE_REGULAR else ""),
                metadata=md(ADMIN))
        yield Backend(pb_grpc.SessionServiceStub(channel), registry,
                      Card(ATTACKER_SERIAL, CardRole.REGULAR, attacker))
    finally:
        channel.close()
        server.stop(grace=None).wait()


def test_break8_guesses_without_the_card_do_not_block_the_holder(backend_rpc: Backend,
                                                                test_pki: Pki) -> None:
    for _ in range(REACTIVATION_TRIES * 2):  # no proof at all
        code, reason, _, _ = backend_rpc.refused(ATTACKER_CLIENT, REGULAR_SERIAL, WRONG)
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                  "REACTIVATION_PROOF_MISSING")
    for _ in range(REACTIVATION_TRIES):  # the attacker's own card, signing for the victim's
        proof = backend_rpc.proof(ATTACKER_CLIENT, backend_rpc.attacker_card, REGULAR_SERIAL)
        code, reason, _, _ = backend_rpc.refused(ATTACKER_CLIENT, REGULAR_SERIAL, WRONG, proof)
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                  "REACTIVATION_PROOF_INVALID")
    assert backend_rpc.tries_left() == REACTIVATION_TRIES
    proof = backend_rpc.proof(HOLDER_CLIENT, test_pki.regular, REGULAR_SERIAL)
    reply = backend_rpc.reactivate(HOLDER_CLIENT, REGULAR_SERIAL, PASSWORD, proof)
    assert reply.tries_left == REACTIVATION_TRIES
    audit = [r for r in backend_rpc.registry.audit_records()
             if r.event in (AuditEvent.REACTIVATION_REFUSED, AuditEvent.REACTIVATED)]
    assert len(audit) == REACTIVATION_TRIES * 3 + 1  # every attempt, with its client id
    assert {r.client_id for r in audit[:-1]} == {ATTACKER_CLIENT}
    assert {r.reason for r in audit[:-1]} == {RefusalReason.REACTIVATION_PROOF_MISSING,
                                             RefusalReason.REACTIVATION_PROOF_INVALID}
    assert (audit[-1].event, audit[-1].client_id) == (AuditEvent.REACTIVATED, HOLDER_CLIENT)


def test_break8_wrong_passwords_with_the_proof_count(backend_rpc: Backend, test_pki: Pki) -> None:
    for left in range(REACTIVATION_TRIES - 1, 0, -1):
        proof = backend_rpc.proof(HOLDER_CLIENT, test_pki.regular, REGULAR_SERIAL)
        code, reason, _, meta = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, WRONG, proof)
        assert (code, reason, meta) == (grpc.StatusCode.PERMISSION_DENIED,
                                        "REACTIVATION_PASSWORD_WRONG", (("tries_left", str(left)),))
    for password in (WRONG, PASSWORD):
        proof = backend_rpc.proof(HOLDER_CLIENT, test_pki.regular, REGULAR_SERIAL)
        _, reason, _, meta = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, password, proof)
        assert (reason, meta) == ("REACTIVATION_PASSWORD_BLOCKED", (("tries_left", "0"),))
    assert backend_rpc.tries_left() == 0


def test_break8_unknown_serial_and_wrong_password_are_indistinguishable(
    backend_rpc: Backend,
) -> None:
    """Whatever a caller without the card tries, an existing serial looks like an unknown one."""
    eve = backend_rpc.attacker_card
    for serial_proof in (None, eve):
        answers = set()
        for serial, password in ((UNKNOWN_SERIAL, WRONG), (REGULAR_SERIAL, WRONG),
                                 (REGULAR_SERIAL, PASSWORD), (BACKUP_SERIAL, WRONG)):
            proof = None if serial_proof is None else backend_rpc.proof(ATTACKER_CLIENT,
                                                                         serial_proof, serial)
            answers.add(backend_rpc.refused(ATTACKER_CLIENT, serial, password, proof))
        assert len(answers) == 1, answers  # same code, same reason, same details
        ((code, _, message, meta),) = answers
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert "NOT_FOUND" not in message
        assert meta == ()
    assert backend_rpc.tries_left() == REACTIVATION_TRIES


def test_break8_backup_card_proof_does_not_reactivate_the_regular_card(
    backend_rpc: Backend, test_pki: Pki
) -> None:
    """The proof must be the regular PK's own key: the registered certificate decides."""
    proof = backend_rpc.proof(HOLDER_CLIENT, test_pki.backup, REGULAR_SERIAL)
    _, reason, _, _ = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, PASSWORD, proof)
    assert reason == "REACTIVATION_PROOF_INVALID"
    assert backend_rpc.tries_left() == REACTIVATION_TRIES


def test_break8_proof_challenge_is_single_use_and_bound_to_the_client(
    backend_rpc: Backend, test_pki: Pki
) -> None:
    proof = backend_rpc.proof(HOLDER_CLIENT, test_pki.regular, REGULAR_SERIAL)
    # the challenge of another client: refused, and the owner's challenge is not burnt
    _, reason, _, _ = backend_rpc.refused(ATTACKER_CLIENT, REGULAR_SERIAL, WRONG, proof)
    assert reason == "NONCE_FOREIGN_CLIENT"
    _, reason, _, meta = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, WRONG, proof)
    assert (reason, meta) == ("REACTIVATION_PASSWORD_WRONG",
                              (("tries_left", str(REACTIVATION_TRIES - 1)),))
    _, reason, _, _ = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, PASSWORD, proof)
    assert reason == "NONCE_REUSED"  # replaying a proof counts nothing
    forged = pb.PossessionProof(nonce=proof.nonce, certificate_chain=proof.certificate_chain,
                                signature=bytes(64))
    _, reason, _, _ = backend_rpc.refused(HOLDER_CLIENT, REGULAR_SERIAL, PASSWORD, forged)
    assert reason == "REACTIVATION_PROOF_INVALID"
    assert backend_rpc.tries_left() == REACTIVATION_TRIES - 1
    fresh = backend_rpc.proof(HOLDER_CLIENT, test_pki.regular, REGULAR_SERIAL)
    assert backend_rpc.reactivate(HOLDER_CLIENT, REGULAR_SERIAL, PASSWORD,
                                  fresh).tries_left == REACTIVATION_TRIES


def test_break8_without_a_registered_certificate_the_proof_binds_to_the_holder(
    registry: Registry, backend: SessionBackend, test_pki: Pki
) -> None:
    """No certificate registered for the regular card: a key of its holder proves possession,
    unless that key is registered to another card (the backup), and no other holder's does."""
    registry.add_holder(HOLDER, "Dr Ana Test", NOW)
    registry.add_holder(ATTACKER_HOLDER, "Dr Eve Test", NOW)
    registry.add_card(REGULAR_SERIAL, HOLDER, CardRole.REGULAR, NOW,
                      reactivation_password=Secret(PASSWORD))
    registry.add_card(BACKUP_SERIAL, HOLDER, CardRole.BACKUP, NOW,
                      auth_cert_sha256=hashlib.sha256(test_pki.backup.cert_der).digest())
    eve = issue_card_cert(test_pki.dev.pk_ca, "Dr Eve Test", ATTACKER_HOLDER, KeyKind.EC_P256,
                          not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=300))

    def attempt(card: Card) -> int:
        nonce = backend.issue_challenge(HOLDER_CLIENT).nonce
        proof = make_possession_proof(nonce, REGULAR_SERIAL, (card.cert_der,),
                                      card_signer(card.auth.key))
        with Secret(PASSWORD) as password:
            return backend.reactivate(REGULAR_SERIAL, password, HOLDER_CLIENT, proof)

    for foreign in (test_pki.backup, Card(ATTACKER_SERIAL, CardRole.REGULAR, eve)):
        with pytest.raises(TokenRefused) as refused:
            attempt(foreign)
        assert refused.value.reason is RefusalReason.REACTIVATION_PROOF_INVALID
    assert attempt(test_pki.regular) == REACTIVATION_TRIES
