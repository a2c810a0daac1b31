"""The card steps of a dual-card session, as jobs for the per-reader workers.

A session token takes three jobs: :func:`prepare_pk` on the PK reader (read
the card, make sure its PIN is verified), :func:`prove_kzz` on the KZZ reader
(the KZZ signs the proof digest bound to the challenge and the PK serial) and
:func:`sign_token` on the PK reader (the PK signs the token). Each card
application call is one card transaction. The jobs that follow the first
check the card is still the one the session was opened with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pkcard.cardinfo import CardRole, Environment
from pkcard.certs import load_certificate
from pkcard.daemon.ratelimit import FailedPinLimiter
from pkcard.errors import (
    EnvironmentMismatch,
    HostPinEntryRefused,
    NotSupported,
    PinBlocked,
    PinNotVerified,
    SessionEnded,
    SessionEndReason,
    WrongCardKind,
    WrongPin,
)
from pkcard.kzz import HealthInsuranceCard, KzzCardData
from pkcard.pin import PinEntry, PinRef, PinState
from pkcard.pk import PkCardData, ProfessionalCard
from pkcard.readers import CardKind, ReaderEventKind, card_kind_from_atr
from pkcard.secret import Secret
from pkcard.token import (
    PossessionProof,
    SessionClaims,
    build_token,
    make_kzz_proof,
    make_possession_proof,
)
from pkcard.transport import SmartCardConnection

Announce = Callable[[ReaderEventKind], None]
"""Tells WatchEvents clients that the PIN pad asks for the PIN (and when it is done)."""


@dataclass(frozen=True)
class PinPolicy:
    """How :func:`prepare_pk` gets the PK's PIN verified."""

    pin: PinEntry  # from the client; PadEntry: already verified, or the PIN pad
    confirm_last_try: bool
    allow_host_pin_entry: bool
    limiter: FailedPinLimiter | None = None  # the daemon's failed-PIN limit (shared)
    # May the caller rely on the card's verified PIN (card serial -> bool)? None: always.
    may_reuse: Callable[[str], bool] | None = None
    on_verified: Callable[[str], None] | None = None  # the PIN was verified now (serial)


@dataclass(frozen=True)
class KzzProof:
    """The KZZ's data and its signature over the proof digest."""

    kzz: KzzCardData
    proof: bytes


def _require(connection: SmartCardConnection, kind: CardKind) -> None:
    if card_kind_from_atr(connection.atr) is not kind:
        raise WrongCardKind(f"the reader does not hold a {kind.name} card")


def _ensure_pin(card: ProfessionalCard, connection: SmartCardConnection, policy: PinPolicy,
                announce: Announce, reuse: bool) -> bool:
    """Get the PIN verified; True if it was verified now, False if an earlier one is relied on."""
    pad = connection.capabilities.pin_pad is True
    if isinstance(policy.pin, Secret):
        if pad and not policy.allow_host_pin_entry:
            raise HostPinEntryRefused("the PK reader has a PIN pad: type the PIN on the reader")
        card.verify(PinRef.PIN, policy.pin, confirm_last_try=policy.confirm_last_try)
        return True
    verified = card.pin_status(PinRef.PIN).state is PinState.VERIFIED
    if verified and reuse:
        return False
    if not pad:
        raise PinNotVerified(
            "the PK's PIN is not verified: send the PIN" if not verified else
            "send the PIN: this caller has not verified this card's PIN within "
            "limits.pin_reuse_s (an earlier verification by another caller does not count)"
        )
    announce(ReaderEventKind.PIN_ENTRY_STARTED)
    try:
        card.verify(PinRef.PIN, policy.pin, confirm_last_try=policy.confirm_last_try)
    finally:
        announce(ReaderEventKind.PIN_ENTRY_FINISHED)
    return True


def _limited_pin(card: ProfessionalCard, connection: SmartCardConnection, serial: str,
                 policy: PinPolicy, announce: Announce) -> None:
    """:func:`_ensure_pin` under the daemon's failed-PIN limit for ``serial``.

    The caller's earlier verification of this card counts only where
    ``policy.may_reuse`` allows it; ``policy.on_verified`` hears of a PIN verified now.
    """
    reuse = policy.may_reuse is None or policy.may_reuse(serial)
    limiter = policy.limiter
    if limiter is None:
        verified_now = _ensure_pin(card, connection, policy, announce, reuse)
    else:
        limiter.check(serial)  # before any secret reaches the card
        try:
            verified_now = _ensure_pin(card, connection, policy, announce, reuse)
        except (WrongPin, PinBlocked):
            limiter.record_failure(serial)
            raise
        limiter.record_success(serial)
    if verified_now and policy.on_verified is not None:
        policy.on_verified(serial)


def prepare_pk(
    policy: PinPolicy, announce: Announce
) -> Callable[[SmartCardConnection], PkCardData]:
    """Job: read the PK and make sure its PIN is verified."""

    def job(connection: SmartCardConnection) -> PkCardData:
        _require(connection, CardKind.PK)
        card = ProfessionalCard.over(connection)
        data = card.read_card()
        _limited_pin(card, connection, data.card_serial, policy, announce)
        return data

    return job


def prove_regular_pk(
    policy: PinPolicy, announce: Announce, nonce: bytes
) -> Callable[[SmartCardConnection], tuple[str, PossessionProof]]:
    """Job: the regular PK (PIN verified) signs the reactivation digest of ``nonce``.

    Refuses a backup card (:class:`NotSupported`) before any PIN is presented.
    Returns the card serial and its proof of possession.
    """

    def job(connection: SmartCardConnection) -> tuple[str, PossessionProof]:
        if card_kind_from_atr(connection.atr) is not CardKind.PK:
            raise WrongCardKind("pkpin reactivate needs the regular professional card (PK)")
        card = ProfessionalCard.over(connection)
        data = card.read_card()
        if data.role is not CardRole.REGULAR:
            raise NotSupported("only a regular PK is reactivated; this is a backup card")
        _limited_pin(card, connection, data.card_serial, policy, announce)
        proof = make_possession_proof(nonce, data.card_serial, (data.auth_certificate.der,),
                                      card.authenticate)
        return data.card_serial, proof

    return job


def _same_pk(connection: SmartCardConnection, serial: str) -> None:
    _require(connection, CardKind.PK)
    found = ProfessionalCard.over(connection).card_info().serial
    if found != serial:
        raise SessionEnded(SessionEndReason.CARD_RESET, "another PK is now in the reader")


def _same_environment(pk: Environment, kzz: Environment) -> None:
    if pk is not kzz:
        raise EnvironmentMismatch(
            f"a {pk.name.lower()} PK and a {kzz.name.lower()} KZZ cannot open a session together:"
            " test cards reach test data only")


def prove_kzz(
    nonce: bytes, pk_serial: str, pk_environment: Environment,
    expected_kzz: KzzCardData | None = None,
) -> Callable[[SmartCardConnection], KzzProof]:
    """Job: read the KZZ (or check it is ``expected_kzz``) and sign the proof digest.

    A KZZ of the other environment than the PK's (test vs production) is refused
    before the KZZ signs anything.
    """

    def job(connection: SmartCardConnection) -> KzzProof:
        _require(connection, CardKind.KZZ)
        if expected_kzz is None:
            kzz = HealthInsuranceCard.over(connection).read_card()
        else:
            serial = HealthInsuranceCard.over(connection).card_info().serial
            if serial != expected_kzz.card_serial:
                raise SessionEnded(SessionEndReason.CARD_RESET, "another KZZ is now in the reader")
            kzz = expected_kzz
        _same_environment(pk_environment, kzz.environment)
        card = HealthInsuranceCard.over(connection)
        return KzzProof(kzz, make_kzz_proof(nonce, pk_serial, card.authenticate))

    return job


def sign_token(
    claims: SessionClaims, pk: PkCardData
) -> Callable[[SmartCardConnection], str]:
    """Job: check the PK is still ``pk`` and let it sign ``claims`` (compact JWS)."""
    chain = [load_certificate(pk.auth_certificate.der)]

    def job(connection: SmartCardConnection) -> str:
        _same_pk(connection, pk.card_serial)
        card = ProfessionalCard.over(connection)
        if card.pin_status(PinRef.PIN).state is not PinState.VERIFIED:
            raise PinNotVerified("the PK's PIN is no longer verified (card reset?)")
        return build_token(claims, chain, card.authenticate)

    return job
