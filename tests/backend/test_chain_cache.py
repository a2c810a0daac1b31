"""The verifier's chain cache (issue #14, G4) never turns a refusal into an acceptance.

A token's ``x5c`` (and a KZZ token's ``kzzCert``) is validated once and kept,
per verifier, with the window in which the validated path is valid. Every
test here first has the verifier accept (so the chain is cached), then shows
that each refusal still comes, with its own reason: an expired certificate,
a signature by another key under the cached header, a forged chain, a
revoked or deactivated card, a verifier with other trust anchors. Both token
kinds (KZZ and restricted) where the check applies to both.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest
from tokenrig import (
    HOLDER,
    NOW,
    PATIENT,
    REGULAR_SERIAL,
    Card,
    DictRegistry,
    FakeClock,
    Pki,
    forge,
    make_token,
    split,
)

from pkcard.backend.devpki import DevPki, KeyKind, issue_card_cert
from pkcard.errors import RefusalReason, TokenRefused
from pkcard.token import CardRole, Environment, ProofMethod
from pkcard.verify import CardStatus, InMemoryNonceStore, TokenVerifier, TrustAnchors

CLIENT = "ws-ljubljana-01"
KINDS = pytest.mark.parametrize(
    "restricted", [None, ProofMethod.RESTRICTED_EMERGENCY], ids=["kzz", "restricted"]
)


def refused(verifier: TokenVerifier, token: str) -> RefusalReason:
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token, CLIENT)
    return info.value.reason


def _verifier(pki: Pki, registry: DictRegistry, nonces: InMemoryNonceStore, clock: FakeClock,
              anchors: TrustAnchors | None = None, size: int = 4096) -> TokenVerifier:
    return TokenVerifier(anchors or pki.anchors(), registry, nonces, clock,
                         environment=Environment.TEST, restricted_authorizations={"I002"},
                         chain_cache_size=size)


def _short_lived(pki: Pki, hours: int = 1) -> Card:
    issued = issue_card_cert(pki.dev.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                             not_before=NOW - timedelta(days=1),
                             not_after=NOW + timedelta(hours=hours))
    return Card(REGULAR_SERIAL, CardRole.REGULAR, issued)


def _pinned(pki: Pki, card: Card) -> DictRegistry:
    registry = DictRegistry.for_pki(pki)
    record = registry.cards[REGULAR_SERIAL]
    registry.cards[REGULAR_SERIAL] = dataclasses.replace(
        record, auth_cert_sha256=hashlib.sha256(card.cert_der).digest())
    return registry


@KINDS
def test_an_expired_certificate_is_refused_after_a_cached_success(
    test_pki: Pki, nonces: InMemoryNonceStore, clock: FakeClock,
    restricted: ProofMethod | None,
) -> None:
    card = _short_lived(test_pki)
    verifier = _verifier(test_pki, _pinned(test_pki, card), nonces, clock)
    verifier.verify(make_token(test_pki, card, nonces.issue(CLIENT, NOW),
                               restricted=restricted), CLIENT)
    clock.advance(2 * 3600)  # the same x5c, its leaf now expired
    token = make_token(test_pki, card, nonces.issue(CLIENT, clock.now), now=clock.now,
                       restricted=restricted)
    assert refused(verifier, token) is RefusalReason.CHAIN_INVALID


def test_an_expired_kzz_certificate_is_refused_after_a_cached_success(
    test_pki: Pki, dict_registry: DictRegistry, nonces: InMemoryNonceStore, clock: FakeClock,
) -> None:
    issued = issue_card_cert(test_pki.dev.kzz_ca, "KZZ", PATIENT, KeyKind.EC_P256,
                             not_before=NOW - timedelta(days=1),
                             not_after=NOW + timedelta(hours=1))
    kzz = Card("KZ0000200001", CardRole.REGULAR, issued)
    verifier = _verifier(test_pki, dict_registry, nonces, clock)
    verifier.verify(make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW), kzz=kzz),
                    CLIENT)
    clock.advance(2 * 3600)
    token = make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, clock.now),
                       now=clock.now, kzz=kzz)
    assert refused(verifier, token) is RefusalReason.KZZ_CHAIN_INVALID


@KINDS
def test_another_key_under_a_cached_header_is_a_bad_signature(
    test_pki: Pki, verifier: TokenVerifier, nonces: InMemoryNonceStore,
    restricted: ProofMethod | None,
) -> None:
    verifier.verify(make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                               restricted=restricted), CLIENT)
    token = make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                       restricted=restricted)
    header_part, payload_part, _signature = token.split(".")
    impostor = Card(REGULAR_SERIAL, CardRole.REGULAR, test_pki.kzz.auth)  # another EC key
    forged = forge(split(token)[0], split(token)[1], impostor)
    assert forged.split(".")[:2] == [header_part, payload_part]  # the cached header, verbatim
    assert refused(verifier, forged) is RefusalReason.BAD_SIGNATURE


@KINDS
def test_a_forged_chain_is_refused_after_the_genuine_one_was_cached(
    test_pki: Pki, verifier: TokenVerifier, nonces: InMemoryNonceStore,
    restricted: ProofMethod | None,
) -> None:
    verifier.verify(make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                               restricted=restricted), CLIENT)
    # the same subject and holder id, issued by a CA outside the trust anchors
    rogue_ca = DevPki.create(Environment.TEST, NOW - timedelta(days=400))
    rogue = issue_card_cert(rogue_ca.pk_ca, "Dr Ana Test", HOLDER, KeyKind.EC_P256,
                            not_before=NOW - timedelta(days=300),
                            not_after=NOW + timedelta(days=1500))
    card = Card(REGULAR_SERIAL, CardRole.REGULAR, rogue)
    token = make_token(test_pki, card, nonces.issue(CLIENT, NOW), restricted=restricted)
    assert refused(verifier, token) is RefusalReason.CHAIN_INVALID
    # and with the genuine leaf after it in x5c, as a "candidate": still not trusted
    header, payload, _signature = split(token)
    header["x5c"] = [*header["x5c"], split(make_token(
        test_pki, test_pki.regular, nonces.issue(CLIENT, NOW)))[0]["x5c"][0]]
    assert refused(verifier, forge(header, payload, card)) is RefusalReason.CHAIN_INVALID


@pytest.mark.parametrize(("status", "reason"), [
    (CardStatus.REVOKED, RefusalReason.CARD_REVOKED),
    (CardStatus.INACTIVE, RefusalReason.REGULAR_CARD_DEACTIVATED),
])
@KINDS
def test_a_card_revoked_after_a_cached_success_is_refused(
    test_pki: Pki, dict_registry: DictRegistry, nonces: InMemoryNonceStore, clock: FakeClock,
    restricted: ProofMethod | None, status: CardStatus, reason: RefusalReason,
) -> None:
    verifier = _verifier(test_pki, dict_registry, nonces, clock)
    verifier.verify(make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                               restricted=restricted), CLIENT)
    record = dict_registry.cards[REGULAR_SERIAL]
    dict_registry.cards[REGULAR_SERIAL] = dataclasses.replace(record, status=status)
    token = make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                       restricted=restricted)
    assert refused(verifier, token) is reason


@KINDS
def test_the_cache_belongs_to_one_verifier(
    test_pki: Pki, dict_registry: DictRegistry, nonces: InMemoryNonceStore, clock: FakeClock,
    restricted: ProofMethod | None,
) -> None:
    trusting = _verifier(test_pki, dict_registry, nonces, clock)
    trusting.verify(make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                               restricted=restricted), CLIENT)
    other_ca = DevPki.create(Environment.TEST, NOW - timedelta(days=400))
    elsewhere = _verifier(test_pki, dict_registry, nonces, clock, TrustAnchors(
        Environment.TEST, (other_ca.pk_ca.cert,), (test_pki.dev.kzz_ca.cert,)))
    token = make_token(test_pki, test_pki.regular, nonces.issue(CLIENT, NOW),
                       restricted=restricted)
    assert refused(elsewhere, token) is RefusalReason.CHAIN_INVALID


def test_the_cache_is_bounded(
    test_pki: Pki, nonces: InMemoryNonceStore, clock: FakeClock,
) -> None:
    cards = [_short_lived(test_pki, hours=24 + n) for n in range(3)]
    registry = DictRegistry.for_pki(test_pki)
    registry.cards[REGULAR_SERIAL] = dataclasses.replace(
        registry.cards[REGULAR_SERIAL], auth_cert_sha256=None)
    verifier = _verifier(test_pki, registry, nonces, clock, size=2)
    for card in cards:
        verifier.verify(make_token(test_pki, card, nonces.issue(CLIENT, NOW),
                                   restricted=ProofMethod.RESTRICTED_EMERGENCY), CLIENT)
    assert len(verifier._pk_chains._entries) == 2
    # the evicted chain is validated again, and still accepted
    verifier.verify(make_token(test_pki, cards[0], nonces.issue(CLIENT, NOW),
                               restricted=ProofMethod.RESTRICTED_EMERGENCY), CLIENT)
