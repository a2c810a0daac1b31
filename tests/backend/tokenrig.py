"""Helpers for the token, verifier and backend tests: a PKI, cards, tokens, forgeries."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from pkcard.backend.devpki import DevPki, Issued, KeyKind, card_signer, issue_card_cert
from pkcard.token import (
    BackupSwitchReason,
    CardRole,
    Environment,
    Profession,
    ProofMethod,
    SessionClaims,
    b64url_encode,
    build_token,
    make_kzz_proof,
)
from pkcard.verify import CardRecord, CardStatus, TrustAnchors

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
HOLDER = "10001"
PATIENT = "123456789"
REGULAR_SERIAL = "PK0000100001"
BACKUP_SERIAL = "PK0000100002"
KZZ_SERIAL = "KZ0000200001"
PASSWORD = "Reakt-7391!x"  # the test reactivation password
# hypothesis examples per property: modest in CI, HYPOTHESIS_PROFILE=slow for long runs
FAST_SCRYPT_N = 2**10  # tests need not pay the production password-hash cost
EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 200


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Card:
    """A card's serial, role and authentication key + certificate."""

    serial: str
    role: CardRole
    auth: Issued

    @property
    def cert_der(self) -> bytes:
        return self.auth.cert.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class Pki:
    """One environment: CAs, a regular PK (EC), a backup PK (RSA) and a KZZ (EC)."""

    dev: DevPki
    regular: Card
    backup: Card
    kzz: Card

    @property
    def environment(self) -> Environment:
        return self.dev.environment

    def anchors(self) -> TrustAnchors:
        return TrustAnchors(self.environment, (self.dev.pk_ca.cert,), (self.dev.kzz_ca.cert,))

    @classmethod
    def create(cls, environment: Environment) -> Pki:
        dev = DevPki.create(environment, NOW - timedelta(days=400))
        valid = {"not_before": NOW - timedelta(days=300), "not_after": NOW + timedelta(days=1500)}
        regular = issue_card_cert(dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256, **valid)
        backup = issue_card_cert(dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.RSA_2048, **valid)
        kzz = issue_card_cert(dev.kzz_ca, "KZZ", PATIENT, KeyKind.EC_P256, **valid)
        return cls(
            dev,
            Card(REGULAR_SERIAL, CardRole.REGULAR, regular),
            Card(BACKUP_SERIAL, CardRole.BACKUP, backup),
            Card(KZZ_SERIAL, CardRole.REGULAR, kzz),
        )


def make_claims(
    pki: Pki,
    card: Card,
    nonce: bytes,
    *,
    now: datetime = NOW,
    restricted: ProofMethod | None = None,
    kzz: Card | None = None,
    proof_nonce: bytes | None = None,
    **overrides: Any,
) -> SessionClaims:
    """Valid claims for ``card`` over ``nonce``; a KZZ proof unless ``restricted``.

    A backup card's claims carry a confirmed switch (reason FAULT) unless
    ``backup_switch=None`` is passed: the backend activates a backup only with one.
    """
    iat = int(now.timestamp())
    common: dict[str, Any] = {
        "iss": "ws-ljubljana-01",
        "iat": iat,
        "exp": iat + 300,
        "nonce": nonce,
        "actor_id": HOLDER,
        "profession": Profession.DOCTOR,
        "card_serial": card.serial,
        "card_role": card.role,
        "environment": pki.environment,
        "authorizations": ("I002", "I003"),
    }
    if restricted is not None:
        common.update(proof_method=restricted, restricted_reason="unconscious patient, no KZZ")
    else:
        kzz_card = kzz or pki.kzz
        proof = make_kzz_proof(proof_nonce or nonce, card.serial, card_signer(kzz_card.auth.key))
        common.update(
            proof_method=ProofMethod.KZZ_CONTACT_PCSC,
            patient_id=PATIENT,
            patient_proof_time=iat,
            kzz_serial=KZZ_SERIAL,
            kzz_proof=proof,
            kzz_cert=kzz_card.cert_der,
        )
    if card.role is CardRole.BACKUP:
        common["backup_switch"] = BackupSwitchReason.FAULT
    claims = SessionClaims(**common)
    return dataclasses.replace(claims, **overrides) if overrides else claims


def make_token(pki: Pki, card: Card, nonce: bytes, **kwargs: Any) -> str:
    claims = make_claims(pki, card, nonce, **kwargs)
    return build_token(claims, [card.auth.cert], card_signer(card.auth.key))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
    )


def encode_part(obj: dict[str, Any] | str) -> str:
    raw = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return b64url_encode(raw.encode())


def forge(header: dict[str, Any] | str, payload: dict[str, Any] | str, card: Card | None,
          signature: bytes | None = None) -> str:
    """A token from raw parts, signed properly by ``card`` unless ``signature`` is given."""
    data = f"{encode_part(header)}.{encode_part(payload)}"
    if signature is None:
        assert card is not None
        signature = card_signer(card.auth.key)(hashlib.sha256(data.encode()).digest())
    return f"{data}.{b64url_encode(signature)}"


@dataclass
class DictRegistry:
    """An in-memory RegistryView."""

    cards: dict[str, CardRecord] = field(default_factory=dict)
    grants: dict[str, frozenset[str]] = field(default_factory=dict)

    def card(self, serial: str) -> CardRecord | None:
        return self.cards.get(serial)

    def granted_authorizations(self, holder_id: str) -> frozenset[str]:
        return self.grants.get(holder_id, frozenset())

    @classmethod
    def for_pki(cls, pki: Pki) -> DictRegistry:
            return cls(
            cards={
                REGULAR_SERIAL: CardRecord(REGULAR_SERIAL, HOLDER, CardRole.REGULAR,
                                           CardStatus.ACTIVE,
                                           hashlib.sha256(pki.regular.cert_der).digest()),
                BACKUP_SERIAL: CardRecord(BACKUP_SERIAL, HOLDER, CardRole.BACKUP,
                                          CardStatus.ACTIVE,
                                          hashlib.sha256(pki.backup.cert_der).digest()),
            },
            grants={HOLDER: frozenset({"I002", "I003", "I009"})},
        )
