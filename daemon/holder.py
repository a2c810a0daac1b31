"""The PK holder's own calls to the backend (issue 15): pkcard.v1.HolderService and the
checks other services make with the backend before they touch a card.

The backend (:class:`~pkcard.daemon.backend_link.BackendLink`) holds the card
registry and the holder's reactivation password, its only copy:

* :meth:`HolderCalls.change_password` serves ChangePin(REACTIVATION): the
  regular PK (PIN verified) signs a fresh backend challenge (the proof of
  possession, as for a reactivation) and the backend replaces its password;
  nothing is written to the card.
* :class:`HolderServicer` serves GetCardStatus (the registry's view of the PK
  in a reader, for ``pkpin status``), RevokeSignature (the KPEP, with the
  reactivation password) and ReportCardLost (the card, for good).
* :func:`backup_gate` refuses a backup PK that is not active unless the
  caller confirmed the switch (OpenSession ``confirm_backup_switch``).
* :meth:`HolderCalls.check_signature` refuses SignDocument with a card whose
  KPEP (or the card) the backend revoked.

Passwords are :class:`~pkcard.secret.Secret` from the request on, never
logged or audited; the audit records the card serial and the holder's stated
reason (``holder_reason``).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from pkcard.backend.v1 import backend_pb2
from pkcard.daemon import session_cards
from pkcard.daemon.backend_link import BackendLink
from pkcard.daemon.card_backends import CardBackends, PkJob
from pkcard.daemon.cards import require_reader
from pkcard.daemon.pin_entry import PinEntryPolicy
from pkcard.daemon.services import AuditNote, Auditor, Intent
from pkcard.errors import (
    BackendRefused,
    BackupSwitchNotConfirmed,
    InvalidRequest,
    NotSupported,
    SignatureRevoked,
)
from pkcard.pin import PadEntry, PinEntry, PinRef, entry_from_field
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.token import BackupSwitchReason, CardRole, PossessionProof, make_possession_proof
from pkcard.v1 import cards_pb2, holder_pb2, holder_pb2_grpc, sessions_pb2

T = TypeVar("T")
_SERIAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_SERIAL = 32
NO_BACKEND = "pkcardd has no backend configured (key `backend`)"
SWITCH_HINT = (
    "this backup PK is not active: using it deactivates your regular PK until you reactivate "
    "it with the reactivation password (pkpin reactivate). Confirm the switch and say why "
    "(OpenSession confirm_backup_switch: FAULT, LOSS or BLOCK; or pkpin use-backup)"
)


def switch_reason(value: sessions_pb2.BackupSwitchReason.ValueType) -> BackupSwitchReason | None:
    """The confirmed switch's reason of an OpenSession request; None: not confirmed."""
    if value == sessions_pb2.BACKUP_SWITCH_REASON_UNSPECIFIED:
        return None
    try:
        return BackupSwitchReason(int(value))
    except ValueError:
        raise InvalidRequest("confirm_backup_switch must be FAULT, LOSS or BLOCK") from None


def backup_gate(backend: BackendLink | None, serial: str,
                confirmed: BackupSwitchReason | None) -> None:
    """Refuse a backup PK that is not active unless the switch is confirmed.

    With a backend, its registry says whether the backup is already active
    (then no confirmation is needed); without one pkcardd cannot know, so
    every backup session needs the confirmation (the backend ignores it for an
    active backup). Raises :class:`BackupSwitchNotConfirmed`.
    """
    if confirmed is not None:
        return
    if backend is not None:
        try:
            status = backend.card_status(serial).status
        except BackendRefused as refused:
            if refused.backend_reason != "NOT_FOUND":
                raise
            status = backend_pb2.CARD_STATUS_UNSPECIFIED  # unknown there: not active
        if status == backend_pb2.CARD_STATUS_ACTIVE:
            return
    raise BackupSwitchNotConfirmed(SWITCH_HINT)


def _serial(value: str) -> str:
    if not 1 <= len(value) <= MAX_SERIAL or not set(value) <= _SERIAL_CHARS:
        raise InvalidRequest(f"card_serial: 1-{MAX_SERIAL} of A-Z, 0-9 and -")
    return value


def prove_backup_pk(
    request: session_cards.PinRequest, nonce: bytes
) -> PkJob[tuple[str, PossessionProof]]:
    """Job: the backup PK (PIN verified) signs the possession digest of ``nonce``.

    A regular PK is refused (:class:`NotSupported`) before any PIN is presented.
    """

    def job(card: ProfessionalCard, pin_pad: bool) -> tuple[str, PossessionProof]:
        if card.card_info().role is not CardRole.BACKUP:
            raise NotSupported("this is the regular PK; only a backup PK is switched to")
        data = session_cards.prepare_pk(request)(card, pin_pad)
        proof = make_possession_proof(nonce, data.card_serial, (data.auth_certificate.der,),
                                      card.authenticate)
        return data.card_serial, proof

    return job


class HolderCalls:
    """The backend calls made for the holder, shared by HolderService, CardService
    (ChangePin of the reactivation password) and SignatureService (the KPEP check)."""

    def __init__(
        self,
        backends: CardBackends,
        backend: BackendLink | None,
        *,
        pin_entry: PinEntryPolicy,
    ) -> None:
        self._backends = backends  # the one card entry (daemon/card_backends.py)
        self._backend = backend
        self._pin_entry = pin_entry  # the one PIN-entry policy (daemon/pin_entry.py)

    @property
    def backend(self) -> BackendLink | None:
        return self._backend

    def link(self) -> BackendLink:
        if self._backend is None:
            raise NotSupported(NO_BACKEND)
        return self._backend

    def run(self, context: grpc.ServicerContext, reader: str, job: PkJob[T]) -> T:
        remaining = context.time_remaining()
        return self._backends.pk(reader, job,
                                 timeout=None if remaining is None else max(0.0, remaining),
                                 is_active=context.is_active).value

    def read_serial(self, context: grpc.ServicerContext, reader: str) -> str:
        """The serial of the PK in ``reader`` (no PIN)."""
        return self.run(context, reader, lambda card, _pad: card.card_info().serial)

    def _pin_request(self, context: grpc.ServicerContext, reader: str, pin: PinEntry,
                     confirm_last_try: bool) -> session_cards.PinRequest:
        return session_cards.PinRequest(self._pin_entry.presenter(reader, context), pin,
                                        confirm_last_try)

    def change_password(self, context: grpc.ServicerContext, reader: str, old: Secret,  # noqa: PLR0917
                        new: Secret, confirm_last_try: bool, note: AuditNote) -> int:
        """ChangePin(REACTIVATION): the backend's password, proven by the regular PK in
        ``reader`` (its PIN verified before, or typed on the PIN pad)."""
        link = self.link()
        if not len(old) or not len(new):
            raise InvalidRequest("old_pin and new_pin must be set")
        nonce = link.challenge()
        serial, proof = self.run(context, reader, session_cards.prove_regular_pk(
            self._pin_request(context, reader, PadEntry(), confirm_last_try), nonce))
        note.set_serial(serial)
        note.before_card()
        return link.change_password(serial, old, new, proof)

    def activate_backup(self, context: grpc.ServicerContext, reader: str,
                        reason: BackupSwitchReason, pin: PinEntry, *,
                        confirm_last_try: bool, note: AuditNote) -> tuple[str, bool]:
        """Switch to the backup PK in ``reader`` at the backend (its proof of possession and
        the confirmed ``reason``); (serial, whether it changed anything)."""
        link = self.link()
        nonce = link.challenge()
        serial, proof = self.run(context, reader, prove_backup_pk(
            self._pin_request(context, reader, pin, confirm_last_try), nonce))
        note.set_serial(serial)
        return serial, link.activate_backup(serial, int(reason), proof)

    def check_signature(self, serial: str) -> None:
        """Refuse (:class:`SignatureRevoked`) when the backend revoked the KPEP of ``serial``
        or the card. Without a backend, or for a card its registry does not know, there is
        nothing revoked; an unreachable backend refuses (BackendUnavailable): fail closed."""
        if self._backend is None:
            return
        try:
            status = self._backend.card_status(serial)
        except BackendRefused as refused:
            if refused.backend_reason == "NOT_FOUND":  # not in this registry: none revoked it
                return
            raise
        if status.signature_revoked or status.status == backend_pb2.CARD_STATUS_REVOKED:
            raise SignatureRevoked(
                "the qualified signing certificate (KPEP) of this PK is revoked: it no "
                "longer signs")


def _timestamp(seconds: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(seconds)
    return stamp


def status_message(reply: backend_pb2.GetCardStatusResponse) -> holder_pb2.GetCardStatusResponse:
    """The daemon's GetCardStatus reply for the backend's (the enums share their numbers)."""
    return holder_pb2.GetCardStatusResponse(
        card_serial=reply.card_serial,
        role=cards_pb2.CardRole.ValueType(int(reply.role)),
        status=holder_pb2.RegistryStatus.ValueType(int(reply.status)),
        reactivation_tries_left=reply.reactivation_tries_left,
        signature_revoked=reply.signature_revoked,
        loss_reason=holder_pb2.LossReason.ValueType(int(reply.loss_reason)),
        switches=[holder_pb2.CardSwitch(
            time=_timestamp(item.time_unix),
            kind=holder_pb2.SwitchKind.ValueType(int(item.kind)),
            card_serial=item.card_serial,
            reason=sessions_pb2.BackupSwitchReason.ValueType(int(item.reason)),
        ) for item in reply.switches],
    )


class HolderServicer(holder_pb2_grpc.HolderServiceServicer):
    """GetCardStatus, RevokeSignature and ReportCardLost, forwarded to the backend."""

    def __init__(self, calls: HolderCalls, auditor: Auditor) -> None:
        self._calls = calls
        self._auditor = auditor

    def _card(self, context: grpc.ServicerContext, which: str | None, reader: str,
              serial: str) -> str:
        if which == "reader":
            return self._calls.read_serial(context, require_reader(reader))
        if which == "card_serial":
            return _serial(serial)
        raise InvalidRequest("set reader or card_serial")

    def GetCardStatus(
        self, request: holder_pb2.GetCardStatusRequest, context: grpc.ServicerContext
    ) -> holder_pb2.GetCardStatusResponse:
        with self._auditor.call(context, "GetCardStatus", reader=request.reader) as note:
            link = self._calls.link()
            serial = self._calls.read_serial(context, require_reader(request.reader))
            note.set_serial(serial)
            return status_message(link.card_status(serial))

    def RevokeSignature(
        self, request: holder_pb2.RevokeSignatureRequest, context: grpc.ServicerContext
    ) -> holder_pb2.RevokeSignatureResponse:
        which = request.WhichOneof("card")
        with self._auditor.call(context, "RevokeSignature",
                                reader=request.reader if which == "reader" else None,
                                reference=PinRef.REACTIVATION,
                                intent=Intent.DURABLE) as note, \
                Secret(request.password) as password:
            request.password = ""
            note.holder_reason = "KPEP_REVOKED"
            link = self._calls.link()
            if not len(password):
                raise InvalidRequest("password must be set")
            serial = self._card(context, which, request.reader, request.card_serial)
            note.set_serial(serial)
            link.revoke_signature(serial, password)
            return holder_pb2.RevokeSignatureResponse(card_serial=serial)

    def ReportCardLost(
        self, request: holder_pb2.ReportCardLostRequest, context: grpc.ServicerContext
    ) -> holder_pb2.ReportCardLostResponse:
        which = request.WhichOneof("card")
        with self._auditor.call(context, "ReportCardLost",
                                reader=request.reader if which == "reader" else None,
                                reference=PinRef.REACTIVATION,
                                intent=Intent.DURABLE) as note, ExitStack() as wipe:
            password = wipe.enter_context(Secret(request.password))
            request.password = ""
            if request.reason not in (holder_pb2.LOSS_REASON_LOST, holder_pb2.LOSS_REASON_STOLEN,
                                      holder_pb2.LOSS_REASON_MISUSED):
                raise InvalidRequest("reason must be LOST, STOLEN or MISUSED")
            note.holder_reason = holder_pb2.LossReason.Name(request.reason).removeprefix(
                "LOSS_REASON_")
            link = self._calls.link()
            if not len(password):
                raise InvalidRequest("password must be set")
            serial = self._card(context, which, request.reader, request.card_serial)
            note.set_serial(serial)
            link.report_lost(serial, int(request.reason), password)
            return holder_pb2.ReportCardLostResponse(card_serial=serial)

    def ActivateBackupCard(
        self, request: holder_pb2.ActivateBackupCardRequest, context: grpc.ServicerContext
    ) -> holder_pb2.ActivateBackupCardResponse:
        with self._auditor.call(context, "ActivateBackupCard", reader=request.reader,
                                intent=Intent.DURABLE) as note, ExitStack() as wipe:
            pin = entry_from_field(request.pin)
            wipe.push(pin)  # wiped when the call ends
            request.pin = ""
            reason = switch_reason(request.reason)
            if reason is None:
                raise InvalidRequest("reason must be FAULT, LOSS or BLOCK: it confirms the switch")
            note.holder_reason = reason.name
            reader = require_reader(request.reader)
            serial, activated = self._calls.activate_backup(
                context, reader, reason, pin, confirm_last_try=request.confirm_last_try,
                note=note)
            return holder_pb2.ActivateBackupCardResponse(card_serial=serial,
                                                         activated=activated)
