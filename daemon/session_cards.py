"""The card steps of a dual-card session, as card jobs (:mod:`pkcard.daemon.card_backends`).

A session token takes three jobs: :func:`prepare_pk` on the PK (read the
card, make sure its PIN is verified), :func:`prove_kzz` on the KZZ (the KZZ
signs the proof digest bound to the challenge and the PK serial) and
:func:`sign_token` on the PK (the PK signs the token). The jobs take the card
applications, so they run over whichever driver serves the reader: APDUs or
a PKCS#11 module. Each card application call is one card transaction. The
jobs that follow the first check the card is still the one the session was
opened with. The PIN is presented under the daemon's one entry policy
(:class:`~pkcard.daemon.pin_entry.PinPresenter`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pkcard.cardinfo import CardRole, Environment
from pkcard.certs import load_certificate
from pkcard.daemon.pin_entry import PinPresenter
from pkcard.errors import (
    EnvironmentMismatch,
    NotSupported,
    PinNotVerified,
    SessionEnded,
    SessionEndReason,
)
from pkcard.kzz import HealthInsuranceCard, KzzCardData
from pkcard.pin import PinEntry, PinRef, PinState
from pkcard.pk import PkCardData, ProfessionalCard
from pkcard.token import (
    PossessionProof,
    SessionClaims,
    build_token,
    make_kzz_proof,
    make_possession_proof,
)


@dataclass(frozen=True)
class PinRequest:
    """How :func:`prepare_pk` gets the PK's PIN verified."""

    presenter: PinPresenter  # the call's presenter (pad or host, limit, credits)
    pin: PinEntry  # from the client; PadEntry: already verified, or the PIN pad
    confirm_last_try: bool


@dataclass(frozen=True)
class KzzProof:
    """The KZZ's data and its signature over the proof digest."""

    kzz: KzzCardData
    proof: bytes


def _verify_pin(card: ProfessionalCard, pin_pad: bool, serial: str, request: PinRequest) -> None:
    confirm = request.confirm_last_try
    request.presenter.ensure_verified(
        serial, request.pin, pin_pad,
        verified=card.pin_status(PinRef.PIN).state is PinState.VERIFIED,
        host=lambda pin: card.verify(PinRef.PIN, pin, confirm_last_try=confirm),
        pad=lambda: card.verify_on_pad(PinRef.PIN, confirm_last_try=confirm),
    )


def prepare_pk(request: PinRequest) -> Callable[[ProfessionalCard, bool], PkCardData]:
    """Job: read the PK and make sure its PIN is verified."""

    def job(card: ProfessionalCard, pin_pad: bool) -> PkCardData:
        data = card.read_card()
        _verify_pin(card, pin_pad, data.card_serial, request)
        return data

    return job


def prove_regular_pk(
    request: PinRequest, nonce: bytes
) -> Callable[[ProfessionalCard, bool], tuple[str, PossessionProof]]:
    """Job: the regular PK (PIN verified) signs the reactivation digest of ``nonce``.

    Refuses a backup card (:class:`NotSupported`) before any PIN is presented.
    Returns the card serial and its proof of possession.
    """

    def job(card: ProfessionalCard, pin_pad: bool) -> tuple[str, PossessionProof]:
        data = card.read_card()
        if data.role is not CardRole.REGULAR:
            raise NotSupported("only a regular PK is reactivated; this is a backup card")
        _verify_pin(card, pin_pad, data.card_serial, request)
        proof = make_possession_proof(nonce, data.card_serial, (data.auth_certificate.der,),
                                      card.authenticate)
        return data.card_serial, proof

    return job


def _same_environment(pk: Environment, kzz: Environment) -> None:
    if pk is not kzz:
        raise EnvironmentMismatch(
            f"a {pk.name.lower()} PK and a {kzz.name.lower()} KZZ cannot open a session together:"
            " test cards reach test data only")


def prove_kzz(
    nonce: bytes, pk_serial: str, pk_environment: Environment,
    expected_kzz: KzzCardData | None = None,
) -> Callable[[HealthInsuranceCard], KzzProof]:
    """Job: read the KZZ (or check it is ``expected_kzz``) and sign the proof digest.

    A KZZ of the other environment than the PK's (test vs production) is refused
    before the KZZ signs anything.
    """

    def job(card: HealthInsuranceCard) -> KzzProof:
        if expected_kzz is None:
            kzz = card.read_card()
        else:
            if card.card_info().serial != expected_kzz.card_serial:
                raise SessionEnded(SessionEndReason.CARD_RESET, "another KZZ is now in the reader")
            kzz = expected_kzz
        _same_environment(pk_environment, kzz.environment)
        return KzzProof(kzz, make_kzz_proof(nonce, pk_serial, card.authenticate))

    return job


def sign_token(
    claims: SessionClaims, pk: PkCardData
) -> Callable[[ProfessionalCard, bool], str]:
    """Job: check the PK is still ``pk`` and let it sign ``claims`` (compact JWS)."""
    chain = [load_certificate(pk.auth_certificate.der)]

    def job(card: ProfessionalCard, _pin_pad: bool) -> str:
        if card.card_info().serial != pk.card_serial:
            raise SessionEnded(SessionEndReason.CARD_RESET, "another PK is now in the reader")
        if card.pin_status(PinRef.PIN).state is not PinState.VERIFIED:
            raise PinNotVerified("the PK's PIN is no longer verified (card reset?)")
        return build_token(claims, chain, card.authenticate)

    return job
