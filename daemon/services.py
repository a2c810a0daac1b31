"""The pkcard.v1 servicers: thin glue between requests, workers, cards and the audit log.

Servicers never abort a call themselves: they raise pkcard.errors and the
:class:`pkcard.daemon.errors.ErrorMappingInterceptor` turns that into the status.
Secrets from requests are wrapped in :class:`pkcard.secret.Secret` at once
and wiped after the card operation; they never reach a log or the audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from enum import IntEnum
from functools import partial
from typing import Any, TypeVar

import grpc

from pkcard.daemon import cards
from pkcard.daemon.access import AccessControl, Caller
from pkcard.daemon.activation import ActivationPrerequisites
from pkcard.daemon.audit import STARTED, AuditEntry, AuditLog
from pkcard.daemon.card_backends import CardBackends, PkJob, Served
from pkcard.daemon.errors import internal_error
from pkcard.daemon.events import EventHub, SessionEndedEvent
from pkcard.daemon.pin_entry import PinEntryPolicy
from pkcard.error_codes import Reason, describe
from pkcard.errors import (
    AuditUnavailable,
    InvalidRequest,
    NotSupported,
    PkcardError,
)
from pkcard.pin import PinRef, PinState, PinStatus, entry_from_field, host_secret
from pkcard.pk import ProfessionalCard
from pkcard.readers import ReaderEvent, ReaderEventKind, ReaderSystem, card_kind_from_atr
from pkcard.secret import Secret
from pkcard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    readers_pb2,
    readers_pb2_grpc,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")


class Intent(IntEnum):
    """What an audited call writes before it runs (see :meth:`Auditor.call`)."""

    NONE = 0  # no card and no state change: one record, after the call
    WRITTEN = 1  # a card read: an intent record written before the card is touched
    DURABLE = 2  # a state change: the intent record is durable before the call body runs
    DURABLE_AT_CARD = 3  # the same, made durable by ``AuditNote.before_card()`` in the card job


def _no_commit() -> None:
    return None


@dataclass
class AuditNote:
    """What a call learns while it runs, for its audit record."""

    card_serial: str | None = None
    tries_left: int | None = None
    session_id: str | None = None
    document_sha256: str | None = None
    certificate_sha256: str | None = None
    certificate_serial: str | None = None
    holder_reason: str | None = None  # a backup switch's or a lost card's stated reason
    intent_seq: int | None = None
    commit: Callable[[], None] = field(default=_no_commit, repr=False)
    restricted_reason: str | None = None  # restricted-mode sessions: the reason's name
    restricted_note: str | None = None  # and the token's restrictedReason text

    def set_serial(self, serial: str) -> None:
        self.card_serial = serial

    def before_card(self) -> None:
        """Call before the first APDU: the intent record is durable when this returns.

        Shared with concurrent callers (group commit); raises
        :class:`AuditUnavailable` (nothing was sent to the card).
        """
        self.commit()


class Auditor:
    """Writes the audit records of each audited call; unexpected errors get an incident id."""

    def __init__(self, log: AuditLog | None, access: AccessControl) -> None:
        self._log = log
        self._access = access

    def _append(self, caller: Caller, entry: AuditEntry) -> int:
        """Write ``entry`` with the caller's identity; its seq (0 without a log)."""
        if self._log is None:
            return 0
        return self._write(replace(entry, **_identity(caller)))

    def _write(self, entry: AuditEntry) -> int:
        """Write ``entry`` as it is (its identity already in it); its seq (0 without a log)."""
        if self._log is None:
            return 0
        return self._log.append(entry).seq

    def record(self, caller: Caller, entry: AuditEntry) -> None:
        """Write one record for ``caller``. Raises :class:`AuditUnavailable`."""
        self._append(caller, entry)

    def event(self, entry: AuditEntry) -> None:
        """Audit something the daemon itself did (no caller), such as a session ending."""
        if self._log is None:
            return
        try:
            self._log.append(entry)
        except AuditUnavailable as exc:
            _log.error("audit record of %s lost: %s", entry.operation, exc)

    def refused(self, context: grpc.ServicerContext, method: str, reason: str) -> None:
        """Audit a call refused before it ran (allow-list, invalid metadata)."""
        try:
            self.record(self._access.identify(context),
                        AuditEntry(operation=method, outcome=reason))
        except AuditUnavailable as exc:
            _log.error("audit record of a refused %s lost: %s", method, exc)

    @contextmanager
    def call(
        self,
        context: grpc.ServicerContext,
        operation: str,
        *,
        reader: str | None = None,
        reference: PinRef | None = None,
        session_id: str | None = None,
        intent: Intent = Intent.NONE,
        restricted: tuple[str, str] | None = None,
    ) -> Iterator[AuditNote]:
        """Audit one call: an intent record before it (per ``intent``), its outcome after.

        ``reader`` and ``session_id`` are request fields: they are validated
        first, and an invalid one is refused (:class:`InvalidRequest`, audited
        in bounded form) before anything else is written. The intent record
        cannot be written: :class:`AuditUnavailable`, and the call body never
        runs. The outcome cannot be written: the daemon log says so and the
        caller still gets the call's result (the card already acted).

        ``restricted`` (a restricted-mode session: the reason's name and the
        request's note) goes into every record of the call, the intent record
        included; the call may replace the note with the text it puts into the
        token (``note.restricted_note``).
        """
        caller = self._access.identify(context)
        who = _identity(caller)  # in every record of the call, made once
        note = AuditNote()
        if restricted is not None:
            note.restricted_reason, note.restricted_note = restricted[0], restricted[1] or None
        ref_name = None if reference is None else reference.name

        def entry(outcome: str, incident: str | None = None) -> AuditEntry:
            return AuditEntry(
                operation=operation, outcome=outcome, reader=reader,
                card_serial=note.card_serial, reference=ref_name,
                tries_left=note.tries_left, incident_id=incident,
                session_id=note.session_id, document_sha256=note.document_sha256,
                certificate_sha256=note.certificate_sha256,
                certificate_serial=note.certificate_serial, intent_seq=note.intent_seq,
                restricted_reason=note.restricted_reason, restricted_note=note.restricted_note,
                holder_reason=note.holder_reason, **who,
            )

        try:
            if reader is not None:
                cards.require_reader(reader)
            if session_id is not None:
                note.session_id = cards.require_session_id(session_id)
        except InvalidRequest:
            note.session_id = session_id
            self._write(entry(Reason.INVALID_REQUEST.value))
            raise
        if intent is not Intent.NONE and self._log is not None:
            seq = self._write(entry(STARTED))
            note.intent_seq = seq
            if intent in (Intent.DURABLE, Intent.DURABLE_AT_CARD):
                note.commit = partial(self._log.commit, seq)
            if intent is Intent.DURABLE:
                note.before_card()
        outcome = self._write if intent is Intent.NONE else self._outcome
        try:
            yield note
        except Exception as exc:
            detail = describe(exc) if isinstance(exc, PkcardError) else None
            if detail is None:
                internal = internal_error(exc, operation)
                outcome(entry("INTERNAL", internal.incident_id))
                raise internal from None
            if "tries_left" in detail.metadata:
                note.tries_left = int(detail.metadata["tries_left"])
            outcome(entry(detail.reason.value))
            raise
        outcome(entry("OK"))

    def _outcome(self, entry: AuditEntry) -> None:
        """The outcome record of a call whose intent is recorded: never masks the result."""
        try:
            self._write(entry)
        except AuditUnavailable as exc:
            _log.error("audit: the outcome of %s (intent seq %s, %s) is not recorded: %s",
                       entry.operation, entry.intent_seq, entry.outcome, exc)


def _identity(caller: Caller) -> dict[str, Any]:
    """The caller's fields of an audit record."""
    creds, clinic = caller.credentials, caller.clinic
    return {
        "uid": creds.uid if creds else None,
        "gid": creds.gid if creds else None,
        "pid": creds.pid if creds else None,
        "tls_identity": caller.tls_identity,
        "workplace_id": clinic.workplace_id,
        "client_system_id": clinic.client_system_id,
        "user_id": clinic.user_id,
    }


def _remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining)


class ReaderServicer(readers_pb2_grpc.ReaderServiceServicer):
    def __init__(self, readers: ReaderSystem, hub: EventHub) -> None:
        self._readers = readers
        self._hub = hub

    def ListReaders(
        self, request: readers_pb2.ListReadersRequest, context: grpc.ServicerContext
    ) -> readers_pb2.ListReadersResponse:
        return readers_pb2.ListReadersResponse(
            readers=[cards.reader_message(state) for state in self._readers.list_readers()]
        )

    def WatchEvents(
        self, request: readers_pb2.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[readers_pb2.WatchEventsResponse]:
        with self._hub.subscribe() as subscription:
            yield readers_pb2.WatchEventsResponse(
                snapshot=readers_pb2.ReaderSnapshot(
                    readers=[cards.reader_message(s) for s in subscription.snapshot]
                )
            )
            while (event := subscription.next_event(context.is_active)) is not None:
                if isinstance(event, SessionEndedEvent):
                    yield readers_pb2.WatchEventsResponse(session_event=_session_message(event))
                else:
                    yield readers_pb2.WatchEventsResponse(reader_event=_event_message(event))


def _session_message(event: SessionEndedEvent) -> readers_pb2.SessionEvent:
    return readers_pb2.SessionEvent(
        session_id=event.session_id,
        end_reason=readers_pb2.SessionEndReason.ValueType(int(event.end_reason)),
        reader=event.reader,
    )


def _event_message(event: ReaderEvent) -> readers_pb2.ReaderEvent:
    message = readers_pb2.ReaderEvent(
        kind=readers_pb2.ReaderEventKind.ValueType(int(event.kind)),
        reader=event.reader,
        atr=event.atr,
    )
    if event.kind is ReaderEventKind.CARD_INSERTED:
        message.card_kind = cards.card_kind_message(card_kind_from_atr(event.atr))
    return message


ChangeReactivation = Callable[
    [grpc.ServicerContext, str, Secret, Secret, bool, AuditNote], int]
"""ChangePin(REACTIVATION) at the backend: (context, reader, old, new, confirm_last_try,
audit note) -> the password's tries left (``HolderCalls.change_password``)."""


class CardServicer(cards_pb2_grpc.CardServiceServicer):
    """The card calls.

    Every card job runs through ``backends`` (the reader's configured driver,
    :mod:`pkcard.daemon.card_backends`); every secret is presented under
    ``pin_entry`` (:mod:`pkcard.daemon.pin_entry`: PIN pad or host, the
    refusal of host secrets on a pad reader, the PIN_ENTRY events, the
    failed-PIN limit and the per-caller PIN credits).
    """

    def __init__(
        self,
        backends: CardBackends,
        auditor: Auditor,
        today: Callable[[], date] = date.today,
        *,
        pin_entry: PinEntryPolicy | None = None,
        activation: ActivationPrerequisites | None = None,
        change_reactivation: ChangeReactivation | None = None,
    ) -> None:
        self._activation = activation  # KPEP activation prerequisites (daemon/activation.py)
        # ChangePin(REACTIVATION) goes to the backend, which holds the password's one copy
        self._change_reactivation = change_reactivation
        self._backends = backends
        self._auditor = auditor
        self._today = today
        self._pin_entry = pin_entry or PinEntryPolicy()

    def _pk(
        self, context: grpc.ServicerContext, reader: str, job: PkJob[T],
    ) -> Served[T]:
        return self._backends.pk(
            reader, job, timeout=_remaining(context), is_active=context.is_active
        )

    def GetCard(
        self, request: cards_pb2.GetCardRequest, context: grpc.ServicerContext
    ) -> cards_pb2.GetCardResponse:
        with self._auditor.call(context, "GetCard", reader=request.reader,
                                intent=Intent.WRITTEN) as note:
            reader = cards.require_reader(request.reader)
            read = self._backends.either(reader, cards.read_pk, cards.read_kzz,
                                         timeout=_remaining(context),
                                         is_active=context.is_active)
            note.card_serial = read.value.serial
            return cards.card_message(reader, read.value, self._today(), driver=read.driver)

    def GetPinStatus(
        self, request: cards_pb2.GetPinStatusRequest, context: grpc.ServicerContext
    ) -> cards_pb2.GetPinStatusResponse:
        ref = None
        if request.reference != cards_pb2.PIN_REFERENCE_UNSPECIFIED:
            ref = cards.pin_ref(request.reference)
        with self._auditor.call(context, "GetPinStatus", reader=request.reader,
                                reference=ref, intent=Intent.WRITTEN) as note:
            reader = cards.require_reader(request.reader)
            job = cards.on_pk(cards.pin_statuses(ref), note.set_serial)
            result = self._pk(context, reader, lambda card, _pad: job(card)).value
            limiter = self._pin_entry.limiter
            retry_after = 0
            if limiter is not None and note.card_serial:
                retry_after = limiter.retry_after(note.card_serial)
            return cards_pb2.GetPinStatusResponse(
                statuses=[cards.pin_status_message(s) for s in result.statuses],
                retry_after_s=retry_after,
            )

    def _pin_operation(
        self, context: grpc.ServicerContext, operation: str, *, reader: str, ref: PinRef,
        secrets: tuple[str, ...], build: Callable[..., cards.PkOperation],
        on_pad: cards.PkOperation, precheck: Callable[[str], None] | None = None,
    ) -> cards_pb2.PinOperationResponse:
        with self._auditor.call(context, operation, reader=reader, reference=ref,
                                intent=Intent.DURABLE_AT_CARD) as note, ExitStack() as wipe:
            reader = cards.require_reader(reader)
            if precheck is not None:
                precheck(reader)  # before any secret is wrapped or any APDU is sent
            presenter = self._pin_entry.presenter(reader, context)
            entries = [entry_from_field(value) for value in secrets]
            for entry in entries:
                wipe.push(entry)  # wiped when the call ends
            wrapped = [host_secret(entry) for entry in entries]  # the host job's secrets

            def job(card: ProfessionalCard, pin_pad: bool) -> cards.PinResult:
                note.before_card()  # the intent record is durable before any command
                presenter.on_pad(entries, pin_pad)  # a refused host secret never reads the card
                serial = card.card_info().serial
                note.set_serial(serial)
                statuses = presenter.present(serial, entries, pin_pad,
                                             host=lambda: build(*wrapped)(card),
                                             pad=lambda: on_pad(card))
                return cards.PinResult(serial, statuses)

            result = self._pk(context, reader, job).value
            if ref is PinRef.PIN:
                presenter.credit(result.serial)
            status = result.statuses[0]
            note.tries_left = status.tries_left
            return cards_pb2.PinOperationResponse(status=cards.pin_status_message(status))

    def VerifyPin(
        self, request: cards_pb2.VerifyPinRequest, context: grpc.ServicerContext
    ) -> cards_pb2.PinOperationResponse:
        ref = cards.pin_ref(request.reference)
        confirm = request.confirm_last_try
        return self._pin_operation(
            context, "VerifyPin", reader=request.reader, ref=ref, secrets=(request.pin,),
            build=lambda pin: cards.verify(ref, pin, confirm),
            on_pad=cards.verify_on_pad(ref, confirm),
        )

    def ChangePin(
        self, request: cards_pb2.ChangePinRequest, context: grpc.ServicerContext
    ) -> cards_pb2.PinOperationResponse:
        ref = cards.pin_ref(request.reference)
        confirm = request.confirm_last_try
        if ref is PinRef.REACTIVATION:
            return self._change_reactivation_password(request, context)
        return self._pin_operation(
            context, "ChangePin", reader=request.reader, ref=ref,
            secrets=(request.old_pin, request.new_pin),
            build=lambda old, new: cards.change(ref, old, new, confirm),
            on_pad=cards.change_on_pad(ref, confirm),
        )

    def _change_reactivation_password(
        self, request: cards_pb2.ChangePinRequest, context: grpc.ServicerContext
    ) -> cards_pb2.PinOperationResponse:
        """The reactivation password lives at the backend only (issue 15): the regular PK in
        the reader proves it is there and the backend replaces its copy; the card's own
        reference is left alone."""
        with self._auditor.call(context, "ChangePin", reader=request.reader,
                                reference=PinRef.REACTIVATION,
                                intent=Intent.DURABLE_AT_CARD) as note, \
                Secret(request.old_pin) as old, Secret(request.new_pin) as new:
            request.old_pin = request.new_pin = ""
            reader = cards.require_reader(request.reader)
            if self._change_reactivation is None:
                raise NotSupported("the reactivation password is held by the backend, and "
                                   "pkcardd has no backend configured (key `backend`)")
            tries = self._change_reactivation(context, reader, old, new,
                                              request.confirm_last_try, note)
            note.tries_left = tries
            return cards_pb2.PinOperationResponse(status=cards.pin_status_message(
                PinStatus(PinRef.REACTIVATION, PinState.VERIFIABLE, tries, tries)))

    def UnblockPin(
        self, request: cards_pb2.UnblockPinRequest, context: grpc.ServicerContext
    ) -> cards_pb2.PinOperationResponse:
        confirm = request.confirm_last_try
        return self._pin_operation(
            context, "UnblockPin", reader=request.reader, ref=PinRef.PIN,
            secrets=(request.puk, request.new_pin),
            build=lambda puk, new: cards.unblock(puk, new, confirm),
            on_pad=cards.unblock_on_pad(confirm),
        )

    def ActivateSignaturePin(
        self, request: cards_pb2.ActivateSignaturePinRequest, context: grpc.ServicerContext
    ) -> cards_pb2.PinOperationResponse:
        confirm = request.confirm_last_try
        return self._pin_operation(
            context, "ActivateSignaturePin", reader=request.reader, ref=PinRef.SPIN,
            secrets=(request.tpin, request.new_spin),
            build=lambda tpin, new: cards.activate_signature(tpin, new, confirm),
            on_pad=cards.activate_signature_on_pad(confirm),
            precheck=None if self._activation is None else self._activation.check,
        )
