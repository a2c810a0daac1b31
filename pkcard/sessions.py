"""Dual-card sessions as the pkcardd clients see them, and their protobuf forms.

Used by :class:`pkcard.client.PkcardClient` and
:class:`pkcard.aio_client.AsyncPkcardClient` (``open_session``,
``refresh_session``, ``close_session``, ``get_session``) and by
``watch_events``, which yields a :class:`SessionEnd` when a session ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from google.protobuf.timestamp_pb2 import Timestamp

from pkcard.cardinfo import CardRole, Environment
from pkcard.errors import SessionEndReason
from pkcard.pk_driver import Profession
from pkcard.token import BackupSwitchReason
from pkcard.v1 import readers_pb2, sessions_pb2

__all__ = [
    "BackupSwitchReason",
    "OpenedSession",
    "RestrictedMode",
    "RestrictedReason",
    "SessionEnd",
    "SessionEndReason",
    "SessionStatus",
    "SessionSummary",
    "SessionToken",
    "open_request",
    "opened_session",
    "session_end",
    "session_status",
    "session_token",
]


class RestrictedReason(IntEnum):
    """Why a session has no KZZ proof (stable numbers: the protobuf enum)."""

    EMERGENCY = 1
    KZZ_UNUSABLE = 2
    PATIENT_ABSENT = 3
    OTHER = 4  # another exceptional case: ``note`` (required) says which


@dataclass(frozen=True)
class RestrictedMode:
    """A session without the patient's KZZ. ``note``: the token's restrictedReason text
    (1..200 printable characters; empty: a standard sentence, except for OTHER, which needs
    it)."""

    reason: RestrictedReason
    patient_zzzs_number: str
    note: str = ""


@dataclass(frozen=True)
class SessionToken:
    """A compact JWS session token (docs/token.md) and its validity."""

    token: str
    issued_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:  # a bearer credential: keep it out of logs
        return f"SessionToken(issued_at={self.issued_at!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class SessionSummary:
    """What a session's token claims (for display; the token is authoritative)."""

    actor_id: str
    profession: Profession
    pk_card_serial: str
    card_role: CardRole
    environment: Environment
    authorizations: tuple[str, ...]
    patient_id: str | None
    kzz_card_serial: str | None
    restricted_reason: RestrictedReason | None
    issuer: str


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    token: SessionToken
    claims: SessionSummary


@dataclass(frozen=True)
class SessionStatus:
    """GetSession's answer. ``end_reason`` is None while the session is open."""

    session_id: str
    end_reason: SessionEndReason | None
    pk_reader: str
    kzz_reader: str | None
    claims: SessionSummary
    opened_at: datetime
    token_expires_at: datetime

    @property
    def active(self) -> bool:
        return self.end_reason is None


@dataclass(frozen=True)
class SessionEnd:
    """A :meth:`~pkcard.client.PkcardClient.watch_events` item: a session ended."""

    session_id: str
    end_reason: SessionEndReason
    reader: str  # whose event ended it; empty for CLOSED, SERVICE_LOST, DAEMON_STOPPING


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _end_reason(value: int) -> SessionEndReason | None:
    return SessionEndReason(value) if value in SessionEndReason._value2member_map_ else None


def open_request(
    pk_reader: str,
    challenge: bytes,
    authorizations: Sequence[str],
    *,
    kzz_reader: str | None,
    restricted: RestrictedMode | None,
    pin: str,
    confirm_last_try: bool,
    backup_switch: BackupSwitchReason | None = None,
) -> sessions_pb2.OpenSessionRequest:
    """The OpenSession request; exactly one of ``kzz_reader`` and ``restricted``.

    ``backup_switch``: the holder confirms switching to a backup PK, and why.
    """
    if (kzz_reader is None) == (restricted is None):
        raise ValueError("pass exactly one of kzz_reader and restricted")
    request = sessions_pb2.OpenSessionRequest(
        pk_reader=pk_reader, challenge=challenge, authorizations=list(authorizations),
        pin=pin, confirm_last_try=confirm_last_try,
        confirm_backup_switch=sessions_pb2.BackupSwitchReason.ValueType(
            0 if backup_switch is None else int(backup_switch)),
    )
    if kzz_reader is not None:
        request.kzz_reader = kzz_reader
    elif restricted is not None:
        request.restricted.CopyFrom(sessions_pb2.RestrictedMode(
            reason=sessions_pb2.RestrictedReason.ValueType(int(restricted.reason)),
            patient_zzzs_number=restricted.patient_zzzs_number,
            note=restricted.note,
        ))
    return request


def session_token(message: sessions_pb2.SessionToken) -> SessionToken:
    return SessionToken(message.token, _time(message.issued_at), _time(message.expires_at))


def _summary(message: sessions_pb2.SessionClaimsSummary) -> SessionSummary:
    restricted = message.restricted_reason
    return SessionSummary(
        actor_id=message.actor_id,
        profession=Profession(message.profession),
        pk_card_serial=message.pk_card_serial,
        card_role=CardRole(message.card_role),
        environment=Environment(message.environment),
        authorizations=tuple(message.authorizations),
        patient_id=message.patient_id or None,
        kzz_card_serial=message.kzz_card_serial or None,
        restricted_reason=RestrictedReason(restricted) if restricted else None,
        issuer=message.issuer,
    )


def opened_session(message: sessions_pb2.OpenSessionResponse) -> OpenedSession:
    return OpenedSession(message.session_id, session_token(message.token),
                         _summary(message.claims))


def session_status(message: sessions_pb2.GetSessionResponse) -> SessionStatus:
    return SessionStatus(
        session_id=message.session_id,
        end_reason=_end_reason(message.end_reason),
        pk_reader=message.pk_reader,
        kzz_reader=message.kzz_reader or None,
        claims=_summary(message.claims),
        opened_at=_time(message.opened_at),
        token_expires_at=_time(message.token_expires_at),
    )


def session_end(message: readers_pb2.SessionEvent) -> SessionEnd:
    reason = _end_reason(message.end_reason) or SessionEndReason.CLOSED
    return SessionEnd(message.session_id, reason, message.reader)
