"""Tokens signed by the simulated PK and KZZ (pkcard apps over simcard) with the committed
test PKI in fixtures/pki/, verified by pkcard.verify and redeemed by the SQLite backend."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from tokenrig import FAST_SCRYPT_N

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.kzz import HealthInsuranceCard
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import (
    BackupSwitchReason,
    CardRole,
    Environment,
    JwsAlgorithm,
    ProofMethod,
    build_token,
    make_kzz_proof,
    session_claims,
)
from pkcard.verify import SessionScope, TrustAnchors

PKI = Path(__file__).resolve().parents[2] / "fixtures" / "pki"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CLIENT = "ws-ljubljana-01"


def anchors(environment: Environment) -> TrustAnchors:
    prefix = "test" if environment is Environment.TEST else "prod"

    def load(kind: str) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_pem_x509_certificates(
            (PKI / "ca" / f"{prefix}-{kind}" / "ca-cert.pem").read_bytes()))

    return TrustAnchors(environment, load("pk"), load("kzz"))


class Workstation:
    """A PK and a KZZ in simulated readers, driven through the pkcard applications."""

    def __init__(self, pk_profile: str, kzz_profile: str) -> None:
        profile = load_profile(pk_profile)
        self.pk_card = SimulatedCard.from_profile(profile)
        self.pk = ProfessionalCard.over(InProcessConnection(self.pk_card))
        self.kzz = HealthInsuranceCard.over(
            InProcessConnection(SimulatedCard.from_profile(load_profile(kzz_profile))))
        self.pk_data = self.pk.read_card()
        self.kzz_data = self.kzz.read_card()
        self.pk.verify(PinRef.PIN, Secret(profile.secret_value(SecretRef.PIN)))
        self.reactivation = profile.secret_value(SecretRef.REACTIVATION)

    def token(self, nonce: bytes, *, restricted: bool = False) -> str:
        chain = [x509.load_der_x509_certificate(self.pk_data.auth_certificate.der)]
        # a backup card's token carries the holder's confirmed switch (issue 15)
        switch = BackupSwitchReason.LOSS if self.pk_data.role is CardRole.BACKUP else None
        if restricted:
            claims = session_claims(pk=self.pk_data, nonce=nonce, workstation_id=CLIENT,
                                    now=NOW, authorizations=("I002",),
                                    restricted=ProofMethod.RESTRICTED_KZZ_UNUSABLE,
                                    restricted_reason="KZZ chip unreadable",
                                    backup_switch=switch)
        else:
            proof = make_kzz_proof(nonce, self.pk_data.card_serial, self.kzz.authenticate)
            claims = session_claims(pk=self.pk_data, nonce=nonce, workstation_id=CLIENT,
                                    now=NOW, authorizations=("I002", "I003"), kzz=self.kzz_data,
                                    kzz_proof=proof, backup_switch=switch)
        return build_token(claims, chain, self.pk.authenticate)


@pytest.fixture
def sim_backend(tmp_path: Path) -> Iterator[tuple[SessionBackend, Registry]]:
    registry = Registry(tmp_path / "sim.sqlite", scrypt_n=FAST_SCRYPT_N)
    backend = SessionBackend(registry, anchors(Environment.TEST), lambda: NOW,
                             environment=Environment.TEST, restricted_authorizations={"I002"})
    yield backend, registry
    registry.close()


def enroll(registry: Registry, regular: Workstation, backup: Workstation) -> None:
    registry.add_holder(regular.pk_data.holder_id, regular.pk_data.holder_name, NOW)
    for ws in (regular, backup):
        registry.add_card(
            ws.pk_data.card_serial, ws.pk_data.holder_id, ws.pk_data.role, NOW,
            auth_cert_sha256=hashlib.sha256(ws.pk_data.auth_certificate.der).digest(),
            reactivation_password=Secret(ws.reactivation)
            if ws.pk_data.role is CardRole.REGULAR else None,
        )
    registry.grant(regular.pk_data.holder_id, "I002", NOW)
    registry.grant(regular.pk_data.holder_id, "I003", NOW)


def test_simulated_cards_sign_tokens_the_backend_accepts(sim_backend):
    backend, registry = sim_backend
    regular = Workstation("pk-regular", "kzz")
    backup = Workstation("pk-backup", "kzz")
    assert regular.pk_data.holder_id == backup.pk_data.holder_id
    enroll(registry, regular, backup)

    token = regular.token(backend.issue_challenge(CLIENT).nonce)
    redemption = backend.redeem(token, CLIENT)
    assert redemption.session.algorithm is JwsAlgorithm.ES256
    assert redemption.session.scope is SessionScope.FULL
    assert redemption.session.claims.patient_id == str(regular.kzz_data.zzzs_number)
    assert redemption.session.granted == {"I002", "I003"}

    restricted = regular.token(backend.issue_challenge(CLIENT).nonce, restricted=True)
    assert backend.redeem(restricted, CLIENT).session.granted == {"I002"}

    first_backup = backend.redeem(backup.token(backend.issue_challenge(CLIENT).nonce), CLIENT)
    assert first_backup.session.algorithm is JwsAlgorithm.PS256
    assert first_backup.backup_activated
    with pytest.raises(TokenRefused) as info:
        backend.redeem(regular.token(backend.issue_challenge(CLIENT).nonce), CLIENT)
    assert info.value.reason is RefusalReason.REGULAR_CARD_DEACTIVATED


def test_test_card_token_is_refused_by_a_production_backend(tmp_path):
    registry = Registry(tmp_path / "prod.sqlite", scrypt_n=FAST_SCRYPT_N)
    production = SessionBackend(registry, anchors(Environment.PRODUCTION), lambda: NOW,
                                environment=Environment.PRODUCTION)
    test_ws = Workstation("pk-regular", "kzz")
    prod_ws = Workstation("pk-regular-prod", "kzz-prod")
    registry.add_holder(prod_ws.pk_data.holder_id, prod_ws.pk_data.holder_name, NOW)
    registry.add_card(prod_ws.pk_data.card_serial, prod_ws.pk_data.holder_id, CardRole.REGULAR,
                      NOW, reactivation_password=Secret(prod_ws.reactivation))
    registry.grant(prod_ws.pk_data.holder_id, "I002", NOW)
    with pytest.raises(TokenRefused) as info:
        production.redeem(test_ws.token(production.issue_challenge(CLIENT).nonce), CLIENT)
    assert info.value.reason is RefusalReason.ENVIRONMENT_MISMATCH
    accepted = production.redeem(prod_ws.token(production.issue_challenge(CLIENT).nonce), CLIENT)
    assert accepted.session.granted == {"I002"}
    registry.close()


def test_kzz_proof_from_a_production_kzz_is_refused_in_test(sim_backend):
    backend, registry = sim_backend
    mixed = Workstation("pk-regular", "kzz-prod")
    enroll(registry, mixed, Workstation("pk-backup", "kzz"))
    with pytest.raises(TokenRefused) as info:
        backend.redeem(mixed.token(backend.issue_challenge(CLIENT).nonce), CLIENT)
    assert info.value.reason is RefusalReason.KZZ_CHAIN_INVALID
