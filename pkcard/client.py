"""The pkcardd client for clinic software (synchronous; see :mod:`pkcard.aio_client`).

Returns the same frozen dataclasses as the card library (:class:`ReaderState`,
:class:`~pkcard.pk.PkCardData`, :class:`~pkcard.kzz.KzzCardData`,
:class:`~pkcard.pin.PinStatus`, ...) and raises the same
:mod:`pkcard.errors` types, rebuilt from the status's ``google.rpc.ErrorInfo``
(for example :class:`~pkcard.errors.WrongPin` with ``tries_left``); it never
lets a raw ``grpc.RpcError`` out.

Example::

    with PkcardClient(clinic=ClinicContext(workplace_id="amb-3")) as client:
        for state in client.list_readers():
            print(state.reader.name, state.card_kind.name)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from pkcard import error_codes
from pkcard.cardinfo import CardRole, Environment
from pkcard.certs import CertificateInfo, certificate_cache, parse_certificate
from pkcard.clinic import ClinicContext
from pkcard.cms import SignatureInfo, SignedDocument
from pkcard.endpoint import DEFAULT_SOCKET as DEFAULT_SOCKET  # noqa: PLC0414 (re-export)
from pkcard.endpoint import client_socket, connect_socket
from pkcard.errors import (
    AccessDenied,
    CallTimeout,
    DaemonBusy,
    DaemonInternalError,
    DaemonUnavailable,
    PkcardError,
)
from pkcard.expiry import ExpiryKind, ExpiryWarning
from pkcard.holder import BackendCardStatus, LossReason, card_status
from pkcard.kzz import KzzCardData
from pkcard.kzz_driver import ZzzsNumber
from pkcard.pin import PinEntry, PinRef, PinState, PinStatus, field_of
from pkcard.pk import PkCardData
from pkcard.pk_driver import Profession
from pkcard.readers import (
    CardKind,
    ReaderEvent,
    ReaderEventKind,
    ReaderInfo,
    ReaderModel,
    ReaderState,
)
from pkcard.secret import Secret
from pkcard.sessions import (
    BackupSwitchReason,
    OpenedSession,
    RestrictedMode,
    SessionEnd,
    SessionStatus,
    SessionToken,
    open_request,
    opened_session,
    session_end,
    session_status,
    session_token,
)
from pkcard.socket_trust import checked_channel
from pkcard.transport import ReaderCapabilities
from pkcard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    holder_pb2,
    holder_pb2_grpc,
    readers_pb2,
    readers_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    signatures_pb2,
    signatures_pb2_grpc,
)

DEFAULT_TIMEOUT = 30.0
_STATUS_DETAILS_KEY = "grpc-status-details-bin"

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


# --- results ------------------------------------------------------------------


@dataclass(frozen=True)
class CardReading:
    """What GetCard returned: exactly one of ``pk`` and ``kzz`` is set."""

    reader: str
    kind: CardKind
    pk: PkCardData | None
    kzz: KzzCardData | None
    warnings: tuple[ExpiryWarning, ...]
    backend: str


@dataclass(frozen=True)
class ReaderSnapshot:
    """The first item of :meth:`PkcardClient.watch_events`: every reader's state."""

    readers: tuple[ReaderState, ...]


WatchItem = ReaderSnapshot | ReaderEvent | SessionEnd


@dataclass(frozen=True)
class PinReport:
    """What GetPinStatus returned: the secrets' statuses and the daemon's failed-PIN pause.

    ``retry_after_s`` is how many seconds pass before pkcardd accepts a secret
    for this card again (0: it accepts one now); a PIN call before then fails
    with :class:`~pkcard.errors.RateLimited` and reaches no card.
    """

    statuses: tuple[PinStatus, ...]
    retry_after_s: int


# --- conversions (shared with pkcard.aio_client) ------------------------------

_MODELS = {
    readers_pb2.READER_MODEL_IDBRIDGE_CT30: ReaderModel.IDBRIDGE_CT30,
    readers_pb2.READER_MODEL_IDBRIDGE_CT700: ReaderModel.IDBRIDGE_CT700,
    readers_pb2.READER_MODEL_IDBRIDGE_CT710: ReaderModel.IDBRIDGE_CT710,
    readers_pb2.READER_MODEL_IDBRIDGE_GCR5500: ReaderModel.IDBRIDGE_GCR5500,
}
_CARD_KINDS = {
    readers_pb2.CARD_KIND_NONE: CardKind.NONE,
    readers_pb2.CARD_KIND_UNKNOWN: CardKind.UNKNOWN,
    readers_pb2.CARD_KIND_PK: CardKind.PK,
    readers_pb2.CARD_KIND_KZZ: CardKind.KZZ,
}
_REFS = {
    PinRef.PIN: cards_pb2.PIN_REFERENCE_PIN,
    PinRef.PUK: cards_pb2.PIN_REFERENCE_PUK,
    PinRef.SPIN: cards_pb2.PIN_REFERENCE_SPIN,
    PinRef.TPIN: cards_pb2.PIN_REFERENCE_TPIN,
    PinRef.REACTIVATION: cards_pb2.PIN_REFERENCE_REACTIVATION,
}
_REFS_BACK = {value: ref for ref, value in _REFS.items()}
_STATES = {
    cards_pb2.PIN_STATE_VERIFIED: PinState.VERIFIED,
    cards_pb2.PIN_STATE_NOT_VERIFIED: PinState.VERIFIABLE,
    cards_pb2.PIN_STATE_TRANSPORT: PinState.TRANSPORT,
    cards_pb2.PIN_STATE_BLOCKED: PinState.BLOCKED,
    cards_pb2.PIN_STATE_DEAD: PinState.DEAD,
    cards_pb2.PIN_STATE_DISABLED: PinState.DISABLED,
}


def reader_state(message: readers_pb2.Reader) -> ReaderState:
    capabilities = ReaderCapabilities(
        pin_pad=message.pin_pad if message.HasField("pin_pad") else None,
        display=message.display if message.HasField("display") else None,
    )
    info = ReaderInfo(
        name=message.name,
        model=_MODELS.get(message.model, ReaderModel.GENERIC),
        capabilities=capabilities,
    )
    return ReaderState(
        reader=info,
        card_present=message.card_present,
        atr=message.atr,
        card_kind=_CARD_KINDS.get(message.card_kind, CardKind.UNKNOWN),
    )


def watch_item(message: readers_pb2.WatchEventsResponse) -> WatchItem:
    if message.HasField("snapshot"):
        return ReaderSnapshot(tuple(reader_state(r) for r in message.snapshot.readers))
    if message.HasField("session_event"):
        return session_end(message.session_event)
    event = message.reader_event
    return ReaderEvent(kind=ReaderEventKind(event.kind), reader=event.reader, atr=event.atr)


def _date(message: cards_pb2.Date) -> date:
    return date(message.year, message.month, message.day)


ParseCertificate = Callable[[bytes], CertificateInfo]
"""How a converter parses a certificate's DER: :func:`~pkcard.certs.parse_certificate`, or a
client's :class:`~pkcard.certs.DerCache` (``cache.get``), which parses each DER once."""


def card_reading(
    message: cards_pb2.GetCardResponse, parse: ParseCertificate = parse_certificate
) -> CardReading:
    pk = kzz = None
    if message.HasField("pk"):
        p = message.pk
        pk = PkCardData(
            holder_name=p.holder_name,
            holder_id=p.holder_id,
            profession=Profession(p.profession),
            card_serial=p.card_serial,
            issuer=p.issuer,
            valid_from=_date(p.valid_from),
            valid_until=_date(p.valid_until),
            role=CardRole(p.role),
            environment=Environment(p.environment),
            auth_certificate=parse(p.authentication_certificate.der),
            kpep_certificate=(
                parse(p.signing_certificate.der) if p.HasField("signing_certificate") else None
            ),
        )
    elif message.HasField("kzz"):
        k = message.kzz
        kzz = KzzCardData(
            zzzs_number=ZzzsNumber(k.zzzs_number),
            name=k.name,
            birth_date=_date(k.birth_date),
            card_serial=k.card_serial,
            issuer=k.issuer,
            valid_from=_date(k.valid_from),
            valid_until=_date(k.valid_until),
            environment=Environment(k.environment),
            certificate=parse(k.authentication_certificate.der),
        )
    warnings = tuple(
        ExpiryWarning(ExpiryKind(w.kind), _date(w.expires_on), w.days_left)
        for w in message.warnings
    )
    return CardReading(
        reader=message.reader,
        kind=_CARD_KINDS.get(message.kind, CardKind.UNKNOWN),
        pk=pk,
        kzz=kzz,
        warnings=warnings,
        backend=message.backend,
    )


def sign_request(
    reader: str, document: bytes | None, document_sha256: bytes | None, spin: str,
    confirm_last_try: bool,
) -> signatures_pb2.SignDocumentRequest:
    """The SignDocument request: exactly one of ``document`` and ``document_sha256``."""
    if (document is None) == (document_sha256 is None):
        raise ValueError("pass exactly one of document and document_sha256")
    request = signatures_pb2.SignDocumentRequest(
        reader=reader, spin=spin, confirm_last_try=confirm_last_try
    )
    if document is not None:
        request.document = document
    else:
        request.document_sha256 = document_sha256 or b""
    return request


def signed_document(
    message: signatures_pb2.SignDocumentResponse, parse: ParseCertificate = parse_certificate
) -> SignedDocument:
    return SignedDocument(
        cms=message.cms,
        signer=parse(message.signer.der),
        signing_time=message.signing_time.ToDatetime(tzinfo=UTC),
        document_sha256=message.document_sha256,
        card_serial=message.card_serial,
    )


def signature_info(
    message: signatures_pb2.VerifyDocumentResponse, parse: ParseCertificate = parse_certificate
) -> SignatureInfo:
    return SignatureInfo(
        signer=parse(message.signer.der),
        signing_time=(
            message.signing_time.ToDatetime(tzinfo=UTC)
            if message.HasField("signing_time") else None
        ),
        message_digest=message.document_sha256,
        trust_anchor=message.trust_anchor,
    )


def pin_report(message: cards_pb2.GetPinStatusResponse) -> PinReport:
    return PinReport(
        tuple(pin_status(s) for s in message.statuses), max(0, message.retry_after_s)
    )


def pin_status(message: cards_pb2.PinStatus) -> PinStatus:
    return PinStatus(
        ref=_REFS_BACK[message.reference],
        state=_STATES[message.state],
        tries_left=message.tries_left,
        max_tries=message.max_tries,
    )


def reference(ref: PinRef) -> cards_pb2.PinReference.ValueType:
    return _REFS[ref]


def reveal(secret: PinEntry | str) -> str:
    """The text for a request's secret field (empty for :class:`~pkcard.pin.PadEntry`).

    Prefer passing a :class:`Secret`, or a :class:`~pkcard.pin.PadEntry` to have
    the holder type it on the reader's PIN pad.
    """
    return field_of(secret)


def _which_card(
    request: holder_pb2.RevokeSignatureRequest | holder_pb2.ReportCardLostRequest,
    reader: str | None, card_serial: str | None,
) -> None:
    if (reader is None) == (card_serial is None):
        raise ValueError("pass exactly one of reader and card_serial")
    if reader is not None:
        request.reader = reader
    elif card_serial is not None:
        request.card_serial = card_serial


def backup_request(reader: str, reason: BackupSwitchReason, pin: str,
                   confirm_last_try: bool) -> holder_pb2.ActivateBackupCardRequest:
    """The ActivateBackupCard request (both clients; clear it after the call)."""
    return holder_pb2.ActivateBackupCardRequest(
        reader=reader, reason=sessions_pb2.BackupSwitchReason.ValueType(int(reason)),
        pin=pin, confirm_last_try=confirm_last_try)


def revoke_request(password: str, reader: str | None,
                   card_serial: str | None) -> holder_pb2.RevokeSignatureRequest:
    """The RevokeSignature request for exactly one of ``reader`` and ``card_serial``."""
    request = holder_pb2.RevokeSignatureRequest(password=password)
    _which_card(request, reader, card_serial)
    return request


def lost_request(reason: LossReason, password: str, reader: str | None,
                 card_serial: str | None) -> holder_pb2.ReportCardLostRequest:
    """The ReportCardLost request for exactly one of ``reader`` and ``card_serial``."""
    request = holder_pb2.ReportCardLostRequest(
        reason=holder_pb2.LossReason.ValueType(int(reason)), password=password)
    _which_card(request, reader, card_serial)
    return request


def error_from_rpc(error: grpc.RpcError) -> PkcardError:
    """The pkcard error for a failed call, from its ErrorInfo or else from its code."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    metadata: Iterable[Any] = error.trailing_metadata() or ()  # sync: tuples; aio: Metadata
    for key, value in metadata:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == error_codes.ERROR_DOMAIN:
                rebuilt = error_codes.rebuild(info.reason, dict(info.metadata), status.message)
                if rebuilt is not None:
                    return rebuilt
    return _error_for_code(code, message)


def _error_for_code(code: grpc.StatusCode, message: str) -> PkcardError:
    if code is grpc.StatusCode.UNAVAILABLE:
        return DaemonUnavailable(f"pkcardd is not reachable: {message}")
    if code is grpc.StatusCode.CANCELLED:  # the daemon dropped calls it had not started
        return DaemonUnavailable(f"pkcardd cancelled the call (shutting down?): {message}")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return DaemonBusy(message or "pkcardd is busy")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallTimeout("the call's deadline expired")
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return AccessDenied(message)
    return DaemonInternalError("", f"pkcardd call failed with {code.name}")


def socket_target(socket: str | Path) -> str:
    text = str(socket)
    return text if text.startswith(("unix:", "unix-abstract:")) else f"unix:{text}"


# --- the client ---------------------------------------------------------------


class PkcardClient:
    """A connection to pkcardd. Use as a context manager, or call :meth:`close`.

    ``socket`` is the daemon's Unix socket path (default: ``$PKCARD_SOCKET``, else
    ``/run/pkcardd/pkcardd.sock``); the daemon's socket for our own uid next to it
    is used when there (:func:`pkcard.endpoint.connect_socket`). ``channel``
    replaces it (e.g. a mutual-TLS TCP channel). ``timeout`` is each call's deadline
    in seconds; it covers time queued behind other calls on the same reader.
    """

    def __init__(
        self,
        socket: str | Path | None = None,
        *,
        clinic: ClinicContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
    ) -> None:
        # the socket is checked (owners, modes, SO_PEERCRED) before the first call
        self._channel = channel or checked_channel(
            socket_target(connect_socket(client_socket(socket))))
        self._metadata = (clinic or ClinicContext()).to_metadata()
        self._timeout = timeout
        self._readers = readers_pb2_grpc.ReaderServiceStub(self._channel)
        self._cards = cards_pb2_grpc.CardServiceStub(self._channel)
        self._sessions = sessions_pb2_grpc.SessionServiceStub(self._channel)
        self._signatures = signatures_pb2_grpc.SignatureServiceStub(self._channel)
        self._holder = holder_pb2_grpc.HolderServiceStub(self._channel)
        self._certificates = certificate_cache()  # each card certificate parsed once

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> PkcardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: grpc.UnaryUnaryMultiCallable[_Request, _Response], request: _Request
    ) -> _Response:
        try:
            response: _Response = method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        return response

    def list_readers(self) -> list[ReaderState]:
        response: readers_pb2.ListReadersResponse = self._call(
            self._readers.ListReaders, readers_pb2.ListReadersRequest()
        )
        return [reader_state(r) for r in response.readers]

    def watch_events(self) -> Generator[WatchItem, None, None]:
        """A :class:`ReaderSnapshot`, then each :class:`ReaderEvent` as it happens.

        Runs until the daemon ends the stream or the caller closes the
        iterator (which cancels the call). No deadline applies.
        """
        call = self._readers.WatchEvents(
            readers_pb2.WatchEventsRequest(), metadata=self._metadata
        )
        try:
            for message in call:
                yield watch_item(message)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def get_card(self, reader: str) -> CardReading:
        response: cards_pb2.GetCardResponse = self._call(
            self._cards.GetCard, cards_pb2.GetCardRequest(reader=reader)
        )
        return card_reading(response, self._certificates.get)

    def get_pin_status(self, reader: str, ref: PinRef | None = None) -> tuple[PinStatus, ...]:
        """Every reference's status, or only ``ref``'s. Spends no try."""
        return self.get_pin_report(reader, ref).statuses

    def get_pin_report(self, reader: str, ref: PinRef | None = None) -> PinReport:
        """As :meth:`get_pin_status`, with the daemon's failed-PIN pause for the card."""
        request = cards_pb2.GetPinStatusRequest(
            reader=reader,
            reference=cards_pb2.PIN_REFERENCE_UNSPECIFIED if ref is None else _REFS[ref],
        )
        response: cards_pb2.GetPinStatusResponse = self._call(self._cards.GetPinStatus, request)
        return pin_report(response)

    def _pin_call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, cards_pb2.PinOperationResponse],
        request: _Request,
    ) -> PinStatus:
        response = self._call(method, request)
        return pin_status(response.status)

    def verify_pin(
        self, reader: str, ref: PinRef, pin: PinEntry | str, *, confirm_last_try: bool = False
    ) -> PinStatus:
        return self._pin_call(self._cards.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=reader, reference=_REFS[ref], pin=reveal(pin),
            confirm_last_try=confirm_last_try,
        ))

    def change_pin(
        self, reader: str, ref: PinRef, old: PinEntry | str, new: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        return self._pin_call(self._cards.ChangePin, cards_pb2.ChangePinRequest(
            reader=reader, reference=_REFS[ref], old_pin=reveal(old), new_pin=reveal(new),
            confirm_last_try=confirm_last_try,
        ))

    def unblock_pin(
        self, reader: str, puk: PinEntry | str, new_pin: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        return self._pin_call(self._cards.UnblockPin, cards_pb2.UnblockPinRequest(
            reader=reader, puk=reveal(puk), new_pin=reveal(new_pin),
            confirm_last_try=confirm_last_try,
        ))

    def activate_signature_pin(
        self, reader: str, tpin: PinEntry | str, new_spin: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        return self._pin_call(self._cards.ActivateSignaturePin,
                              cards_pb2.ActivateSignaturePinRequest(
            reader=reader, tpin=reveal(tpin), new_spin=reveal(new_spin),
            confirm_last_try=confirm_last_try,
        ))

    # --- dual-card sessions ------------------------------------------------------

    def open_session(
        self, pk_reader: str, challenge: bytes, authorizations: Sequence[str], *,
        kzz_reader: str | None = None, restricted: RestrictedMode | None = None,
        pin: PinEntry | str = "", confirm_last_try: bool = False,
        backup_switch: BackupSwitchReason | None = None,
    ) -> OpenedSession:
        """Open a session over the backend's ``challenge``; returns its id and first token.

        Pass ``kzz_reader`` (the patient's KZZ proves presence) or ``restricted``.
        ``pin`` empty: the PK's PIN is already verified, or typed on the PIN pad.
        ``backup_switch``: the holder confirms switching to the backup PK in
        ``pk_reader`` (it deactivates the regular PK until it is reactivated) and
        says why; without it a backup PK that is not active is refused with
        :class:`~pkcard.errors.BackupSwitchNotConfirmed`.
        """
        request = open_request(
            pk_reader, challenge, authorizations, kzz_reader=kzz_reader, restricted=restricted,
            pin=reveal(pin), confirm_last_try=confirm_last_try, backup_switch=backup_switch,
        )
        try:
            response: sessions_pb2.OpenSessionResponse = self._call(
                self._sessions.OpenSession, request)
        finally:
            request.Clear()
        return opened_session(response)

    def refresh_session(self, session_id: str, challenge: bytes) -> SessionToken:
        """A new token over a new challenge; :class:`~pkcard.errors.SessionEnded` once a
        card left."""
        response: sessions_pb2.RefreshSessionResponse = self._call(
            self._sessions.RefreshSession,
            sessions_pb2.RefreshSessionRequest(session_id=session_id, challenge=challenge),
        )
        return session_token(response.token)

    def close_session(self, session_id: str) -> bool:
        """End the session; False if it had already ended."""
        response: sessions_pb2.CloseSessionResponse = self._call(
            self._sessions.CloseSession, sessions_pb2.CloseSessionRequest(session_id=session_id))
        return response.closed

    def get_session(self, session_id: str) -> SessionStatus:
        response: sessions_pb2.GetSessionResponse = self._call(
            self._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=session_id))
        return session_status(response)

    def reactivate_card(self, reader: str, password: Secret | str, *,
                        pin: PinEntry | str = "", confirm_last_try: bool = False) -> str:
        """Reactivate the regular PK in ``reader`` at the backend; returns its serial.

        The card proves to the backend that it is in the reader, which needs its
        ``pin`` verified; empty: already verified, or typed on the reader's PIN pad.
        """
        request = sessions_pb2.ReactivateCardRequest(reader=reader, password=reveal(password),
                                                     pin=reveal(pin),
                                                     confirm_last_try=confirm_last_try)
        try:
            response: sessions_pb2.ReactivateCardResponse = self._call(
                self._sessions.ReactivateCard, request)
        finally:
            request.Clear()
        return response.card_serial

    # --- the holder's backend calls (HolderService) -----------------------------------

    def get_card_status(self, reader: str) -> BackendCardStatus:
        """What the backend knows about the PK in ``reader`` (no PIN needed)."""
        response: holder_pb2.GetCardStatusResponse = self._call(
            self._holder.GetCardStatus, holder_pb2.GetCardStatusRequest(reader=reader))
        return card_status(response)

    def activate_backup(self, reader: str, reason: BackupSwitchReason, *,
                        pin: PinEntry | str = "", confirm_last_try: bool = False) -> bool:
        """Switch to the backup PK in ``reader`` now, with the holder's confirmed ``reason``:
        the regular PK is inactive until it is reactivated. False: it was already active.

        The card proves to the backend that it is in the reader, which needs its
        ``pin`` verified; empty: already verified, or typed on the reader's PIN pad.
        """
        request = backup_request(reader, reason, reveal(pin), confirm_last_try)
        try:
            response: holder_pb2.ActivateBackupCardResponse = self._call(
                self._holder.ActivateBackupCard, request)
        finally:
            request.Clear()
        return response.activated

    def revoke_signature(self, password: Secret | str, *, reader: str | None = None,
                         card_serial: str | None = None) -> str:
        """Revoke the KPEP of the PK in ``reader`` (or of ``card_serial``) with the holder's
        reactivation password, for good; returns the card's serial."""
        request = revoke_request(reveal(password), reader, card_serial)
        try:
            response: holder_pb2.RevokeSignatureResponse = self._call(
                self._holder.RevokeSignature, request)
        finally:
            request.Clear()
        return response.card_serial

    def report_card_lost(self, reason: LossReason, password: Secret | str, *,
                         card_serial: str | None = None, reader: str | None = None) -> str:
        """Report a PK lost, stolen or misused: it is revoked for good; returns its serial."""
        request = lost_request(reason, reveal(password), reader, card_serial)
        try:
            response: holder_pb2.ReportCardLostResponse = self._call(
                self._holder.ReportCardLost, request)
        finally:
            request.Clear()
        return response.card_serial

    # --- qualified signatures -------------------------------------------------------

    def sign_document(
        self, reader: str, document: bytes | None = None, *,
        document_sha256: bytes | None = None, spin: PinEntry | str = "",
        confirm_last_try: bool = False,
    ) -> SignedDocument:
        """A detached CAdES-BES signature by the KPEP of the PK in ``reader``.

        Pass the ``document`` (at most 768 KiB) or its ``document_sha256``.
        ``spin`` is needed for every signature; empty: typed on the reader's PIN pad.
        """
        request = sign_request(reader, document, document_sha256, reveal(spin), confirm_last_try)
        try:
            response: signatures_pb2.SignDocumentResponse = self._call(
                self._signatures.SignDocument, request)
        finally:
            request.Clear()
        return signed_document(response, self._certificates.get)

    def verify_document(self, document: bytes, cms: bytes) -> SignatureInfo:
        """Check a detached signature against the daemon's trust anchors.

        :class:`~pkcard.errors.SignatureRejected` when it does not verify.
        """
        response: signatures_pb2.VerifyDocumentResponse = self._call(
            self._signatures.VerifyDocument,
            signatures_pb2.VerifyDocumentRequest(document=document, cms=cms),
        )
        return signature_info(response, self._certificates.get)
