"""Card operations of CardService, and the protobuf forms of cards and readers.

The jobs take a card application (:class:`~pkcard.pk.ProfessionalCard`,
:class:`~pkcard.kzz.HealthInsuranceCard`) that
:class:`~pkcard.daemon.card_backends.CardBackends` built over the reader's
driver, and return plain results; conversion to ``pkcard.v1`` messages is
kept apart in the ``*_message`` functions. The card applications raise
pkcard.errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from google.protobuf.timestamp_pb2 import Timestamp

from pkcard.certs import CertificateInfo, KeyAlgorithm
from pkcard.daemon.config import CardDriver
from pkcard.errors import InvalidRequest
from pkcard.expiry import ExpiryWarning, expiry_warnings
from pkcard.kzz import HealthInsuranceCard, KzzCardData
from pkcard.pin import PinRef, PinState, PinStatus
from pkcard.pk import PkCardData, ProfessionalCard
from pkcard.readers import CardKind, ReaderModel, ReaderState
from pkcard.secret import Secret
from pkcard.v1 import cards_pb2, readers_pb2

_PIN_REFS = {
    cards_pb2.PIN_REFERENCE_PIN: PinRef.PIN,
    cards_pb2.PIN_REFERENCE_PUK: PinRef.PUK,
    cards_pb2.PIN_REFERENCE_SPIN: PinRef.SPIN,
    cards_pb2.PIN_REFERENCE_TPIN: PinRef.TPIN,
    cards_pb2.PIN_REFERENCE_REACTIVATION: PinRef.REACTIVATION,
}
_PIN_REFS_BACK = {ref: value for value, ref in _PIN_REFS.items()}
_PIN_STATES = {
    PinState.VERIFIED: cards_pb2.PIN_STATE_VERIFIED,
    PinState.VERIFIABLE: cards_pb2.PIN_STATE_NOT_VERIFIED,
    PinState.TRANSPORT: cards_pb2.PIN_STATE_TRANSPORT,
    PinState.BLOCKED: cards_pb2.PIN_STATE_BLOCKED,
    PinState.DEAD: cards_pb2.PIN_STATE_DEAD,
    PinState.DISABLED: cards_pb2.PIN_STATE_DISABLED,
}
_CARD_KINDS = {
    CardKind.NONE: readers_pb2.CARD_KIND_NONE,
    CardKind.UNKNOWN: readers_pb2.CARD_KIND_UNKNOWN,
    CardKind.PK: readers_pb2.CARD_KIND_PK,
    CardKind.KZZ: readers_pb2.CARD_KIND_KZZ,
}
_MODELS = {
    ReaderModel.GENERIC: readers_pb2.READER_MODEL_GENERIC,
    ReaderModel.IDBRIDGE_CT30: readers_pb2.READER_MODEL_IDBRIDGE_CT30,
    ReaderModel.IDBRIDGE_CT700: readers_pb2.READER_MODEL_IDBRIDGE_CT700,
    ReaderModel.IDBRIDGE_CT710: readers_pb2.READER_MODEL_IDBRIDGE_CT710,
    ReaderModel.IDBRIDGE_GCR5500: readers_pb2.READER_MODEL_IDBRIDGE_GCR5500,
}


def pin_ref(value: cards_pb2.PinReference.ValueType) -> PinRef:
    """The card reference for a request's PinReference; INVALID_REQUEST for UNSPECIFIED."""
    ref = _PIN_REFS.get(value)
    if ref is None:
        raise InvalidRequest("reference must be one of PIN, PUK, SPIN, TPIN, REACTIVATION")
    return ref


MAX_READER_NAME = 128  # pcsc-lite's MAX_READERNAME; errors echo the name, so it must be bounded


def require_reader(name: str) -> str:
    """``name`` if it can be a reader name: set, at most 128 characters, no control characters."""
    if not name:
        raise InvalidRequest("reader must be set (a name from ListReaders)")
    if len(name) > MAX_READER_NAME or not name.isprintable():
        raise InvalidRequest(f"reader must be at most {MAX_READER_NAME} printable characters")
    return name


MAX_SESSION_ID = 64  # pkcardd's ids are 24 characters (secrets.token_urlsafe(18))
_SESSION_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def require_session_id(session_id: str) -> str:
    """``session_id`` if it can be a session id: 1 to 64 URL-safe base64 characters."""
    if not 0 < len(session_id) <= MAX_SESSION_ID or not set(session_id) <= _SESSION_ID_CHARS:
        raise InvalidRequest(f"session_id must be 1 to {MAX_SESSION_ID} URL-safe characters "
                             "(an id OpenSession returned)")
    return session_id


def card_kind_message(kind: CardKind) -> readers_pb2.CardKind.ValueType:
    return _CARD_KINDS[kind]


def reader_message(state: ReaderState) -> readers_pb2.Reader:
    message = readers_pb2.Reader(
        name=state.reader.name,
        model=_MODELS.get(state.reader.model, readers_pb2.READER_MODEL_GENERIC),
        card_present=state.card_present,
        card_kind=_CARD_KINDS[state.card_kind],
        atr=state.atr,
    )
    if state.reader.capabilities.pin_pad is not None:
        message.pin_pad = state.reader.capabilities.pin_pad
    if state.reader.capabilities.display is not None:
        message.display = state.reader.capabilities.display
    return message


# --- what a worker job returns ----------------------------------------------


@dataclass(frozen=True)
class CardRead:
    kind: CardKind
    pk: PkCardData | None = None
    kzz: KzzCardData | None = None

    @property
    def serial(self) -> str | None:
        data = self.pk or self.kzz
        return None if data is None else data.card_serial


@dataclass(frozen=True)
class PinResult:
    serial: str
    statuses: tuple[PinStatus, ...]


def read_pk(card: ProfessionalCard, _pin_pad: bool) -> CardRead:
    """GetCard's job on a PK (a :data:`~pkcard.daemon.card_backends.PkJob`)."""
    return CardRead(CardKind.PK, pk=card.read_card())


def read_kzz(card: HealthInsuranceCard) -> CardRead:
    """GetCard's job on a KZZ (a :data:`~pkcard.daemon.card_backends.KzzJob`)."""
    return CardRead(CardKind.KZZ, kzz=card.read_card())


PkOperation = Callable[[ProfessionalCard], tuple[PinStatus, ...]]


def on_pk(
    operation: PkOperation, on_serial: Callable[[str], None]
) -> Callable[[ProfessionalCard], PinResult]:
    """Report the PK's serial, then run ``operation`` on it: one card transaction, one SELECT.

    The serial and what ``operation`` reads come from the same card with
    nothing in between, and the job costs one SCardBeginTransaction /
    SCardEndTransaction pair (two pcscd round trips) instead of two, and one
    SELECT of the PK application instead of two (``ProfessionalCard.session``).
    ``on_serial`` runs inside the transaction: it must not wait.
    """

    def job(card: ProfessionalCard) -> PinResult:
        with card.session():
            serial = card.card_info().serial
            on_serial(serial)
            return PinResult(serial, operation(card))

    return job


def pin_statuses(ref: PinRef | None) -> PkOperation:
    if ref is None:
        return lambda card: card.pin_statuses()
    return lambda card: (card.pin_status(ref),)


def verify(ref: PinRef, pin: Secret, confirm: bool) -> PkOperation:
    return lambda card: (card.verify(ref, pin, confirm_last_try=confirm),)


def change(ref: PinRef, old: Secret, new: Secret, confirm: bool) -> PkOperation:
    return lambda card: (card.change(ref, old, new, confirm_last_try=confirm),)


def unblock(puk: Secret, new_pin: Secret, confirm: bool) -> PkOperation:
    return lambda card: (card.unblock(puk, new_pin, confirm_last_try=confirm),)


def activate_signature(tpin: Secret, new_spin: Secret, confirm: bool) -> PkOperation:
    return lambda card: (card.activate_signature(tpin, new_spin, confirm_last_try=confirm),)


# The same operations with every secret typed on the reader's PIN pad.


def verify_on_pad(ref: PinRef, confirm: bool) -> PkOperation:
    return lambda card: (card.verify_on_pad(ref, confirm_last_try=confirm),)


def change_on_pad(ref: PinRef, confirm: bool) -> PkOperation:
    return lambda card: (card.change_on_pad(ref, confirm_last_try=confirm),)


def unblock_on_pad(confirm: bool) -> PkOperation:
    return lambda card: (card.unblock_on_pad(confirm_last_try=confirm),)


def activate_signature_on_pad(confirm: bool) -> PkOperation:
    return lambda card: (card.activate_signature_on_pad(confirm_last_try=confirm),)


# --- protobuf forms -----------------------------------------------------------


def _date(value: date) -> cards_pb2.Date:
    return cards_pb2.Date(year=value.year, month=value.month, day=value.day)


def _key_algorithm(cert: CertificateInfo) -> str:
    if cert.key_algorithm is KeyAlgorithm.EC_P256:
        return "EC P-256"
    if cert.key_algorithm is KeyAlgorithm.RSA:
        return f"RSA-{cert.key_size}"
    return "other"


def certificate_message(cert: CertificateInfo) -> cards_pb2.Certificate:
    not_before, not_after = Timestamp(), Timestamp()
    not_before.FromDatetime(cert.not_before)
    not_after.FromDatetime(cert.not_after)
    return cards_pb2.Certificate(
        subject=cert.subject,
        issuer=cert.issuer,
        serial_number=format(cert.serial_number, "x"),
        not_before=not_before,
        not_after=not_after,
        key_algorithm=_key_algorithm(cert),
        sha256_fingerprint=cert.sha256_fingerprint,
        der=cert.der,
    )


def _warning_message(warning: ExpiryWarning) -> cards_pb2.CardWarning:
    return cards_pb2.CardWarning(
        kind=cards_pb2.WarningKind.ValueType(int(warning.kind)),
        days_left=warning.days_left,
        expires_on=_date(warning.expires_on),
    )


def card_message(
    reader: str, read: CardRead, today: date, *, driver: CardDriver = CardDriver.APDU
) -> cards_pb2.GetCardResponse:
    response = cards_pb2.GetCardResponse(
        reader=reader, kind=_CARD_KINDS[read.kind], backend=driver.name.lower()
    )
    if read.pk is not None:
        pk = read.pk
        response.pk.CopyFrom(cards_pb2.PkCard(
            holder_name=pk.holder_name,
            holder_id=pk.holder_id,
            profession=cards_pb2.Profession.ValueType(int(pk.profession)),
            card_serial=pk.card_serial,
            issuer=pk.issuer,
            valid_from=_date(pk.valid_from),
            valid_until=_date(pk.valid_until),
            role=cards_pb2.CardRole.ValueType(int(pk.role)),
            environment=cards_pb2.Environment.ValueType(int(pk.environment)),
            authentication_certificate=certificate_message(pk.auth_certificate),
        ))
        if pk.kpep_certificate is not None:
            response.pk.signing_certificate.CopyFrom(certificate_message(pk.kpep_certificate))
        warnings = pk.expiry_warnings(today)
    elif read.kzz is not None:
        kzz = read.kzz
        response.kzz.CopyFrom(cards_pb2.KzzCard(
            zzzs_number=kzz.zzzs_number.value,
            name=kzz.name,
            issuer=kzz.issuer,
            birth_date=_date(kzz.birth_date),
            card_serial=kzz.card_serial,
            valid_from=_date(kzz.valid_from),
            valid_until=_date(kzz.valid_until),
            environment=cards_pb2.Environment.ValueType(int(kzz.environment)),
            authentication_certificate=certificate_message(kzz.certificate),
        ))
        warnings = expiry_warnings(today=today, card_valid_until=kzz.valid_until)
    else:
        warnings = ()
    response.warnings.extend(_warning_message(w) for w in warnings)
    return response


def pin_status_message(status: PinStatus) -> cards_pb2.PinStatus:
    return cards_pb2.PinStatus(
        reference=_PIN_REFS_BACK[status.ref],
        state=_PIN_STATES[status.state],
        tries_left=status.tries_left,
        max_tries=status.max_tries,
    )
