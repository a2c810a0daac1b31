"""Dual-card sessions: the registry of open sessions and the pkcard.v1 SessionService.

A session binds a PK in one reader to a KZZ in another (or, in restricted
mode, to a stated reason) and hands out session tokens (docs/token.md) over
backend challenges. :class:`SessionRegistry` listens to the reader watcher
(:meth:`pkcard.daemon.events.EventHub.add_listener`): a card leaving a session's
reader, the reader leaving, or the PC/SC service going away ends the session
on the watcher thread at once, publishes a :class:`SessionEndedEvent` and
writes an audit record. A removal that happens while a session is being
opened is caught by a per-reader removal counter, so no session outlives
its card.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from pkcard.cardinfo import CardRole
from pkcard.daemon import holder, session_cards
from pkcard.daemon.access import AccessControl, Caller
from pkcard.daemon.audit import AuditEntry
from pkcard.daemon.backend_link import BackendLink
from pkcard.daemon.card_backends import CardBackends, KzzJob, PkJob
from pkcard.daemon.cards import require_reader, require_session_id
from pkcard.daemon.events import SessionEndedEvent
from pkcard.daemon.pin_entry import PinEntryPolicy
from pkcard.daemon.services import Auditor, Intent
from pkcard.errors import (
    CardRemoved,
    CardReset,
    DaemonBusy,
    InvalidRequest,
    NotSupported,
    PinNotVerified,
    SessionEnded,
    SessionEndReason,
    SessionNotFound,
    WrongCardKind,
)
from pkcard.kzz import KzzCardData
from pkcard.pin import PinEntry, entry_from_field
from pkcard.pk import PkCardData
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.secret import Secret
from pkcard.token import (
    MAX_AUTHORIZATIONS,
    MAX_RESTRICTED_REASON,
    NONCE_LENGTH,
    ProofMethod,
    SessionClaims,
    session_claims,
)
from pkcard.transport import CardContinuity
from pkcard.v1 import cards_pb2, readers_pb2, sessions_pb2, sessions_pb2_grpc

_AUTH_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,15}")
_ZZZS_RE = re.compile(r"[0-9]{9}")
MAX_SESSIONS = 64
MAX_SESSIONS_PER_CALLER = 8
IDLE_TIMEOUT_S = 900.0
MAX_LIFETIME_S = 43200.0
ENDED_RETENTION = 256  # ended sessions remembered for SESSION_ENDED answers
_SERVICE = ""  # the removal counter key of PC/SC service losses (no reader has this name)
T = TypeVar("T")

_PROOF_METHODS = {
    sessions_pb2.RESTRICTED_REASON_EMERGENCY: ProofMethod.RESTRICTED_EMERGENCY,
    sessions_pb2.RESTRICTED_REASON_KZZ_UNUSABLE: ProofMethod.RESTRICTED_KZZ_UNUSABLE,
    sessions_pb2.RESTRICTED_REASON_PATIENT_ABSENT: ProofMethod.RESTRICTED_PATIENT_ABSENT,
    sessions_pb2.RESTRICTED_REASON_OTHER: ProofMethod.RESTRICTED_OTHER,
}
_REASONS_BACK = {method: value for value, method in _PROOF_METHODS.items()}
_STANDARD_NOTES = {
    ProofMethod.RESTRICTED_EMERGENCY: "emergency care",
    ProofMethod.RESTRICTED_KZZ_UNUSABLE: "the patient's KZZ does not work",
    ProofMethod.RESTRICTED_PATIENT_ABSENT: "service without the patient present",
}
# Reader events that end the sessions using that reader (SERVICE_LOST: every session).
_ENDING_EVENTS = frozenset({
    ReaderEventKind.CARD_REMOVED, ReaderEventKind.READER_REMOVED, ReaderEventKind.SERVICE_LOST,
})

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SessionInfo:
    """What a session was opened with. ``kzz`` and ``kzz_reader`` are None in restricted mode."""

    session_id: str
    pk_reader: str
    kzz_reader: str | None
    pk: PkCardData
    kzz: KzzCardData | None
    claims: SessionClaims  # of the first token; refreshes change only times and nonce
    opened_at: datetime
    owner: str = ""  # the caller that opened it (Caller.key); only it, or an admin, may use it


@dataclass(frozen=True)
class SessionView:
    """A session's state for GetSession."""

    info: SessionInfo
    end_reason: SessionEndReason | None
    token_expires_at: datetime


@dataclass
class _Entry:
    info: SessionInfo
    token_expires_at: datetime
    opened: float = 0.0  # monotonic
    last_used: float = 0.0  # monotonic: opened or last refreshed
    end_reason: SessionEndReason | None = None


def _new_session_id() -> str:
    """24 URL-safe characters from 18 random bytes: ``secrets.token_urlsafe(18)`` without
    loading ``random`` (issue #14, G6)."""
    return base64.urlsafe_b64encode(os.urandom(18)).rstrip(b"=").decode("ascii")


class SessionRegistry:
    """Open and recently ended sessions; thread-safe.

    ``on_end`` runs (outside the lock) for every session that ends, with
    the ended session's id, reason and reader. A session not refreshed for
    ``idle_timeout_s`` ends with IDLE_TIMEOUT, one open for ``max_lifetime_s``
    with LIFETIME_EXCEEDED; both are checked whenever the registry is used
    (no timer thread), so an expired session is never answered as open.
    One owner (:attr:`SessionInfo.owner`) may hold ``max_per_caller`` open sessions.
    """

    def __init__(
        self,
        on_end: Callable[[SessionEndedEvent], None],
        *,
        max_sessions: int = MAX_SESSIONS,
        ended_retention: int = ENDED_RETENTION,
        max_per_caller: int = MAX_SESSIONS_PER_CALLER,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_lifetime_s: float = MAX_LIFETIME_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_end = on_end
        self._max_sessions = max_sessions
        self._retention = ended_retention
        self._max_per_caller = max_per_caller
        self._idle_timeout = idle_timeout_s
        self._max_lifetime = max_lifetime_s
        self._mono = clock
        self._lock = threading.Lock()
        self._active: dict[str, _Entry] = {}
        self._ended: OrderedDict[str, _Entry] = OrderedDict()
        self._removals: dict[str, int] = {}  # reader -> count of card/reader removals seen

    # --- reader events (watcher thread) ---------------------------------------

    def on_reader_event(self, event: ReaderEvent) -> None:
        """End every session the event takes a card from. The hub's listener."""
        if event.kind not in _ENDING_EVENTS:
            return
        ended: list[SessionEndedEvent] = []
        with self._lock:
            if event.kind is ReaderEventKind.SERVICE_LOST:
                self._removals[_SERVICE] = self._removals.get(_SERVICE, 0) + 1
                targets = [(sid, SessionEndReason.SERVICE_LOST) for sid in self._active]
            else:
                self._removals[event.reader] = self._removals.get(event.reader, 0) + 1
                targets = []
                for sid, entry in self._active.items():
                    reason = self._reason_for(entry.info, event)
                    if reason is not None:
                        targets.append((sid, reason))
            for sid, reason in targets:
                ended.append(self._end_locked(sid, reason, event.reader))
        for item in ended:
            self._on_end(item)

    @staticmethod
    def _reason_for(info: SessionInfo, event: ReaderEvent) -> SessionEndReason | None:
        if event.reader not in (info.pk_reader, info.kzz_reader):
            return None
        if event.kind is ReaderEventKind.READER_REMOVED:
            return SessionEndReason.READER_REMOVED
        if event.reader == info.pk_reader:
            return SessionEndReason.PK_REMOVED
        return SessionEndReason.KZZ_REMOVED

    def on_card_lost(self, reader: str, continuity: CardContinuity) -> None:
        """The reader workers' listener: a reset card ends its sessions with CARD_RESET.

        (A card that left is the watcher's CARD_REMOVED; a job that finds another
        card ends the session itself.) Runs on the reader's worker thread.
        """
        if continuity is not CardContinuity.RESET:
            return
        with self._lock:
            targets = [sid for sid, entry in self._active.items()
                       if reader in (entry.info.pk_reader, entry.info.kzz_reader)]
            ended = [self._end_locked(sid, SessionEndReason.CARD_RESET, reader)
                     for sid in targets]
        for item in ended:
            self._on_end(item)

    # --- time limits ----------------------------------------------------------------

    def expire(self) -> None:
        """End the sessions past their idle time-out or maximum lifetime."""
        now = self._mono()
        with self._lock:
            targets = []
            for sid, entry in self._active.items():
                if now - entry.opened >= self._max_lifetime:
                    targets.append((sid, SessionEndReason.LIFETIME_EXCEEDED))
                elif now - entry.last_used >= self._idle_timeout:
                    targets.append((sid, SessionEndReason.IDLE_TIMEOUT))
            ended = [self._end_locked(sid, reason, "") for sid, reason in targets]
        for event in ended:
            self._on_end(event)

    # --- the session calls --------------------------------------------------------

    def removal_marks(self, readers: Iterable[str]) -> dict[str, int]:
        """Removal counters of ``readers`` now; pass them to :meth:`add`."""
        self.expire()
        with self._lock:
            marks = {r: self._removals.get(r, 0) for r in readers}
            marks[_SERVICE] = self._removals.get(_SERVICE, 0)
            return marks

    def add(self, info: SessionInfo, token_expires_at: datetime,
            marks: Mapping[str, int]) -> None:
        """Register an opened session, unless a card left since ``marks`` were taken."""
        with self._lock:
            for reader, mark in marks.items():
                if self._removals.get(reader, 0) != mark:
                    raise CardRemoved("a session card left while the session was being opened")
            if len(self._active) >= self._max_sessions:
                raise DaemonBusy(f"too many open sessions (limit {self._max_sessions})")
            held = sum(1 for e in self._active.values() if e.info.owner == info.owner)
            if info.owner and held >= self._max_per_caller:  # "": no owner (in-process use)
                raise DaemonBusy(f"this caller already has {held} open sessions "
                                 f"(limits.max_sessions_per_caller {self._max_per_caller}); "
                                 "close one first")
            now = self._mono()
            self._active[info.session_id] = _Entry(info, token_expires_at, now, now)

    def active(self, session_id: str) -> SessionInfo:
        """The open session; :class:`SessionEnded` or :class:`SessionNotFound` otherwise."""
        self.expire()
        with self._lock:
            entry = self._active.get(session_id)
            if entry is not None:
                return entry.info
            gone = self._ended.get(session_id)
        if gone is not None and gone.end_reason is not None:
            raise SessionEnded(gone.end_reason)
        raise SessionNotFound("no session with that id")

    def view(self, session_id: str) -> SessionView:
        self.expire()
        with self._lock:
            entry = self._active.get(session_id) or self._ended.get(session_id)
            if entry is None:
                raise SessionNotFound("no session with that id")
            return SessionView(entry.info, entry.end_reason, entry.token_expires_at)

    def refreshed(self, session_id: str, token_expires_at: datetime) -> None:
        """Record a refresh's token; :class:`SessionEnded` if a card left meanwhile."""
        with self._lock:
            entry = self._active.get(session_id)
            if entry is not None:
                entry.token_expires_at = token_expires_at
                entry.last_used = self._mono()
                return
            gone = self._ended.get(session_id)
        raise SessionEnded(gone.end_reason if gone is not None and gone.end_reason is not None
                           else SessionEndReason.CLOSED)

    def end(self, session_id: str, reason: SessionEndReason, reader: str = "") -> bool:
        """End an open session; False if it was not open."""
        with self._lock:
            if session_id not in self._active:
                return False
            event = self._end_locked(session_id, reason, reader)
        self._on_end(event)
        return True

    def end_all(self, reason: SessionEndReason) -> None:
        with self._lock:
            ended = [self._end_locked(sid, reason, "") for sid in list(self._active)]
        for event in ended:
            self._on_end(event)

    def _end_locked(self, session_id: str, reason: SessionEndReason,
                    reader: str) -> SessionEndedEvent:
        entry = self._active.pop(session_id)
        entry.end_reason = reason
        self._ended[session_id] = entry
        while len(self._ended) > self._retention:
            self._ended.popitem(last=False)
        shown = "" if reason in (SessionEndReason.CLOSED, SessionEndReason.SERVICE_LOST,
                                 SessionEndReason.DAEMON_STOPPING) else reader
        return SessionEndedEvent(session_id, reason, shown)


# --- requests ---------------------------------------------------------------------


def _challenge(value: bytes) -> bytes:
    if len(value) != NONCE_LENGTH:
        raise InvalidRequest(f"challenge must be the backend's {NONCE_LENGTH} bytes")
    return bytes(value)


def _authorizations(values: Iterable[str]) -> tuple[str, ...]:
    codes = tuple(values)
    if len(codes) > MAX_AUTHORIZATIONS or len(set(codes)) != len(codes):
        raise InvalidRequest(f"authorizations: at most {MAX_AUTHORIZATIONS}, no duplicates")
    if not all(_AUTH_CODE_RE.fullmatch(code) for code in codes):
        raise InvalidRequest("authorizations: each code is [A-Z][A-Z0-9]{1,15}")
    return codes


@dataclass(frozen=True)
class _Restricted:
    method: ProofMethod
    patient_id: str
    note: str


def _restricted_audit(request: sessions_pb2.OpenSessionRequest) -> tuple[str, str] | None:
    """A restricted request's reason name and note, as given, for the audit records."""
    if request.WhichOneof("patient") != "restricted":
        return None
    value = request.restricted.reason
    name = (sessions_pb2.RestrictedReason.Name(value)
            if value in sessions_pb2.RestrictedReason.values() else str(value))
    return name.removeprefix("RESTRICTED_REASON_"), request.restricted.note


def _restricted(message: sessions_pb2.RestrictedMode) -> _Restricted:
    method = _PROOF_METHODS.get(message.reason)
    if method is None:
        raise InvalidRequest("restricted.reason must be EMERGENCY, KZZ_UNUSABLE, PATIENT_ABSENT "
                             "or OTHER")
    if not _ZZZS_RE.fullmatch(message.patient_zzzs_number):
        raise InvalidRequest("restricted.patient_zzzs_number must be 9 digits")
    if method is ProofMethod.RESTRICTED_OTHER and not message.note.strip():
        raise InvalidRequest("restricted.note is required for reason OTHER: say why there is "
                             f"no KZZ (1-{MAX_RESTRICTED_REASON} printable characters)")
    note = message.note or _STANDARD_NOTES[method]
    if not note.strip() or len(note) > MAX_RESTRICTED_REASON or not note.isprintable():
        raise InvalidRequest(f"restricted.note: 1-{MAX_RESTRICTED_REASON} printable characters")
    return _Restricted(method, message.patient_zzzs_number, note)


def _remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _token_message(token: str, claims: SessionClaims) -> sessions_pb2.SessionToken:
    return sessions_pb2.SessionToken(
        token=token,
        issued_at=_timestamp(datetime.fromtimestamp(claims.iat, UTC)),
        expires_at=_timestamp(datetime.fromtimestamp(claims.exp, UTC)),
    )


def _summary(info: SessionInfo) -> sessions_pb2.SessionClaimsSummary:
    claims = info.claims
    return sessions_pb2.SessionClaimsSummary(
        actor_id=claims.actor_id,
        profession=cards_pb2.Profession.ValueType(int(claims.profession)),
        pk_card_serial=claims.card_serial,
        card_role=cards_pb2.CardRole.ValueType(int(claims.card_role)),
        environment=cards_pb2.Environment.ValueType(int(claims.environment)),
        authorizations=list(claims.authorizations),
        patient_id=claims.patient_id or "",
        kzz_card_serial=claims.kzz_serial or "",
        restricted_reason=_REASONS_BACK.get(
            claims.proof_method, sessions_pb2.RESTRICTED_REASON_UNSPECIFIED),
        issuer=claims.iss,
        backup_switch=sessions_pb2.BackupSwitchReason.ValueType(
            0 if claims.backup_switch is None else int(claims.backup_switch)),
    )


# --- the servicer -----------------------------------------------------------------


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    """OpenSession, RefreshSession, CloseSession, GetSession and ReactivateCard.

    Card work runs through ``backends`` (each reader's configured driver:
    APDUs or a PKCS#11 module); the PIN is presented under ``pin_entry``.
    Secrets are wrapped in :class:`Secret` at once and wiped when the call ends.
    """

    def __init__(
        self,
        backends: CardBackends,
        registry: SessionRegistry,
        auditor: Auditor,
        *,
        workstation_id: str,
        pin_entry: PinEntryPolicy,
        backend: BackendLink | None = None,
        clock: Clock = _utc_now,
        access: AccessControl | None = None,
    ) -> None:
        self._access = access  # None: sessions have no owner (in-process tests only)
        self._backends = backends
        self._pin_entry = pin_entry
        self._registry = registry
        self._auditor = auditor
        self._workstation_id = workstation_id
        self._backend = backend
        self._clock = clock

    def _pk(self, context: grpc.ServicerContext, reader: str, job: PkJob[T]) -> T:
        return self._backends.pk(reader, job, timeout=_remaining(context),
                                 is_active=context.is_active).value

    def _kzz(self, context: grpc.ServicerContext, reader: str, job: KzzJob[T]) -> T:
        return self._backends.kzz(reader, job, timeout=_remaining(context),
                                  is_active=context.is_active).value

    def _caller(self, context: grpc.ServicerContext) -> Caller | None:
        return None if self._access is None else self._access.identify(context)

    def _owned(self, session_id: str, context: grpc.ServicerContext) -> SessionView:
        """The session, if the caller opened it or is an admin; NOT_FOUND as for an unknown id."""
        view = self._registry.view(session_id)
        caller = self._caller(context)
        if caller is None or not view.info.owner or view.info.owner == caller.key:
            return view
        assert self._access is not None
        if self._access.is_admin(caller):
            return view
        raise SessionNotFound("no session with that id")

    def _pin_request(self, context: grpc.ServicerContext, reader: str, pin: PinEntry,
                     confirm_last_try: bool) -> session_cards.PinRequest:
        return session_cards.PinRequest(self._pin_entry.presenter(reader, context), pin,
                                        confirm_last_try)

    def OpenSession(
        self, request: sessions_pb2.OpenSessionRequest, context: grpc.ServicerContext
    ) -> sessions_pb2.OpenSessionResponse:
        with self._auditor.call(context, "OpenSession", reader=request.pk_reader,
                                intent=Intent.DURABLE, restricted=_restricted_audit(request),
                                ) as note, ExitStack() as wipe:
            pk_reader = require_reader(request.pk_reader)
            nonce = _challenge(request.challenge)
            authorizations = _authorizations(request.authorizations)
            patient = request.WhichOneof("patient")
            kzz_reader: str | None = None
            restricted: _Restricted | None = None
            if patient == "kzz_reader":
                kzz_reader = require_reader(request.kzz_reader)
                if kzz_reader == pk_reader:
                    raise InvalidRequest("kzz_reader must differ from pk_reader")
            elif patient == "restricted":
                restricted = _restricted(request.restricted)
                note.restricted_note = restricted.note  # the text the token carries
            else:
                raise InvalidRequest("set kzz_reader, or restricted for a session without KZZ")
            pin = entry_from_field(request.pin)
            wipe.push(pin)  # wiped when the call ends
            pin_request = self._pin_request(context, pk_reader, pin, request.confirm_last_try)
            caller = self._caller(context)
            readers = [pk_reader] if kzz_reader is None else [pk_reader, kzz_reader]
            marks = self._registry.removal_marks(readers)
            pk = self._pk(context, pk_reader, session_cards.prepare_pk(pin_request))
            note.card_serial = pk.card_serial
            switch = None
            if pk.role is CardRole.BACKUP:  # issue 15: the holder confirms the switch first
                switch = holder.switch_reason(request.confirm_backup_switch)
                holder.backup_gate(self._backend, pk.card_serial, switch)
                note.holder_reason = None if switch is None else switch.name
            kzz: KzzCardData | None = None
            if kzz_reader is not None:
                proof = self._kzz(context, kzz_reader,
                                  session_cards.prove_kzz(nonce, pk.card_serial, pk.environment))
                kzz = proof.kzz
                claims = session_claims(
                    pk=pk, nonce=nonce, workstation_id=self._workstation_id,
                    now=self._clock(), authorizations=authorizations, kzz=kzz,
                    kzz_proof=proof.proof, backup_switch=switch)
            else:
                assert restricted is not None
                claims = replace(session_claims(
                    pk=pk, nonce=nonce, workstation_id=self._workstation_id,
                    now=self._clock(), authorizations=authorizations,
                    restricted=restricted.method, restricted_reason=restricted.note,
                    backup_switch=switch,
                ), patient_id=restricted.patient_id)
            token = self._pk(context, pk_reader, session_cards.sign_token(claims, pk))
            info = SessionInfo(
                session_id=_new_session_id(), pk_reader=pk_reader,
                kzz_reader=kzz_reader, pk=pk, kzz=kzz, claims=claims,
                opened_at=datetime.fromtimestamp(claims.iat, UTC),
                owner="" if caller is None else caller.key,
            )
            self._registry.add(info, datetime.fromtimestamp(claims.exp, UTC), marks)
            note.session_id = info.session_id
            return sessions_pb2.OpenSessionResponse(
                session_id=info.session_id, token=_token_message(token, claims),
                claims=_summary(info),
            )

    def RefreshSession(
        self, request: sessions_pb2.RefreshSessionRequest, context: grpc.ServicerContext
    ) -> sessions_pb2.RefreshSessionResponse:
        with self._auditor.call(context, "RefreshSession", session_id=request.session_id,
                                intent=Intent.DURABLE) as note:
            self._owned(request.session_id, context)
            info = self._registry.active(request.session_id)
            nonce = _challenge(request.challenge)
            note.card_serial = info.pk.card_serial
            if info.claims.proof_method.restricted:  # the new token carries the same reason
                note.restricted_reason = sessions_pb2.RestrictedReason.Name(
                    _REASONS_BACK[info.claims.proof_method]).removeprefix("RESTRICTED_REASON_")
                note.restricted_note = info.claims.restricted_reason
            iat = int(self._clock().timestamp())
            claims = replace(info.claims, nonce=nonce, iat=iat,
                             exp=iat + info.claims.exp - info.claims.iat,
                             backup_switch=None)  # a refresh never switches cards
            if info.kzz_reader is not None:
                proof = self._session_job(
                    context, info, info.kzz_reader, SessionEndReason.KZZ_REMOVED,
                    lambda reader: self._kzz(context, reader, session_cards.prove_kzz(
                        nonce, info.pk.card_serial, info.pk.environment, info.kzz)))
                claims = replace(claims, kzz_proof=proof.proof, patient_proof_time=iat)
            token = self._session_job(
                context, info, info.pk_reader, SessionEndReason.PK_REMOVED,
                lambda reader: self._pk(context, reader, session_cards.sign_token(claims, info.pk)))
            self._registry.refreshed(request.session_id, datetime.fromtimestamp(claims.exp, UTC))
            return sessions_pb2.RefreshSessionResponse(token=_token_message(token, claims))

    def _session_job(
        self, context: grpc.ServicerContext, info: SessionInfo, reader: str,
        removed: SessionEndReason, run: Callable[[str], T],
    ) -> T:
        """``run(reader)``: a job of an open session; a card that left or changed ends it."""
        try:
            return run(reader)
        except (CardRemoved, CardReset, PinNotVerified, SessionEnded, WrongCardKind) as exc:
            if isinstance(exc, SessionEnded):
                reason = exc.end_reason
            elif isinstance(exc, CardRemoved | WrongCardKind):
                reason = removed
            else:
                reason = SessionEndReason.CARD_RESET
            self._registry.end(info.session_id, reason, reader)
            raise SessionEnded(self._registry.view(info.session_id).end_reason or reason,
                               f"the session has ended: {exc}") from None

    def CloseSession(
        self, request: sessions_pb2.CloseSessionRequest, context: grpc.ServicerContext
    ) -> sessions_pb2.CloseSessionResponse:
        with self._auditor.call(context, "CloseSession", session_id=request.session_id,
                                intent=Intent.DURABLE):
            try:
                self._owned(request.session_id, context)
            except SessionNotFound:  # unknown, or another caller's: nothing to close
                return sessions_pb2.CloseSessionResponse(closed=False)
            closed = self._registry.end(request.session_id, SessionEndReason.CLOSED)
            return sessions_pb2.CloseSessionResponse(closed=closed)

    def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> sessions_pb2.GetSessionResponse:
        view = self._owned(require_session_id(request.session_id), context)
        info = view.info
        return sessions_pb2.GetSessionResponse(
            session_id=info.session_id,
            state=sessions_pb2.SESSION_STATE_ACTIVE if view.end_reason is None
            else sessions_pb2.SESSION_STATE_ENDED,
            end_reason=readers_pb2.SessionEndReason.ValueType(
                0 if view.end_reason is None else int(view.end_reason)),
            pk_reader=info.pk_reader,
            kzz_reader=info.kzz_reader or "",
            claims=_summary(info),
            opened_at=_timestamp(info.opened_at),
            token_expires_at=_timestamp(view.token_expires_at),
        )

    def ReactivateCard(
        self, request: sessions_pb2.ReactivateCardRequest, context: grpc.ServicerContext
    ) -> sessions_pb2.ReactivateCardResponse:
        with self._auditor.call(context, "ReactivateCard", reader=request.reader,
                                intent=Intent.DURABLE) as note, \
                Secret(request.password) as password, ExitStack() as wipe:
            pin = entry_from_field(request.pin)
            wipe.push(pin)  # wiped when the call ends
            request.pin = ""
            reader = require_reader(request.reader)
            if self._backend is None:
                raise NotSupported("pkcardd has no backend configured (key `backend`)")
            if not len(password):
                raise InvalidRequest("password must be set")
            pin_request = self._pin_request(context, reader, pin, request.confirm_last_try)
            nonce = self._backend.challenge()  # the proof of possession signs a fresh one
            serial, proof = self._pk(context, reader,
                                     session_cards.prove_regular_pk(pin_request, nonce))
            note.card_serial = serial
            self._backend.reactivate(serial, password, proof)
            return sessions_pb2.ReactivateCardResponse(card_serial=serial)


def audit_session_end(auditor: Auditor) -> Callable[[SessionEndedEvent], None]:
    """An ``on_end`` hook writing one audit record per ended session (ids only)."""

    def record(event: SessionEndedEvent) -> None:
        auditor.event(AuditEntry(
            operation="SessionEnded", outcome=event.end_reason.name,
            reader=event.reader or None, session_id=event.session_id,
        ))

    return record
