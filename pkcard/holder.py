"""The holder's backend calls as pkcardd clients see them (pkcard.v1.HolderService).

Used by :class:`pkcard.client.PkcardClient` (``get_card_status``,
``revoke_signature``, ``report_card_lost``) and by ``pkpin``. The backend
holds the card registry and the holder's reactivation password, its only copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import TypeVar

from pkcard.cardinfo import CardRole
from pkcard.token import BackupSwitchReason
from pkcard.v1 import holder_pb2

__all__ = [
    "BackendCardStatus",
    "BackupSwitchReason",
    "CardSwitchRecord",
    "LossReason",
    "RegistryStatus",
    "SwitchKind",
    "card_status",
]


class RegistryStatus(IntEnum):
    """A PK's state in the backend's registry (stable numbers: the protobuf enum)."""

    STANDBY = 1
    ACTIVE = 2
    INACTIVE = 3
    REVOKED = 4


class LossReason(IntEnum):
    """Why the holder reports a card (stable numbers: the protobuf enum)."""

    LOST = 1
    STOLEN = 2
    MISUSED = 3


class SwitchKind(IntEnum):
    """Which way a switch between the holder's cards went."""

    BACKUP_ACTIVATED = 1
    REGULAR_REACTIVATED = 2


@dataclass(frozen=True)
class CardSwitchRecord:
    """One switch: when, which way, the card that became active, and why (backup only)."""

    time: datetime
    kind: SwitchKind
    card_serial: str
    reason: BackupSwitchReason | None


@dataclass(frozen=True)
class BackendCardStatus:
    """What the backend knows about a PK (GetCardStatus)."""

    card_serial: str
    role: CardRole
    status: RegistryStatus
    reactivation_tries_left: int
    signature_revoked: bool
    loss_reason: LossReason | None
    switches: tuple[CardSwitchRecord, ...]  # newest first


_E = TypeVar("_E", RegistryStatus, CardRole, LossReason, SwitchKind, BackupSwitchReason)


def _member(enum: type[_E], value: int) -> _E | None:
    return enum(value) if value in enum._value2member_map_ else None


def card_status(message: holder_pb2.GetCardStatusResponse) -> BackendCardStatus:
    """The model of a GetCardStatus reply."""
    status = _member(RegistryStatus, message.status)
    role = _member(CardRole, message.role)
    if status is None or role is None:
        raise ValueError("GetCardStatus answered without a role or status")
    return BackendCardStatus(
        card_serial=message.card_serial,
        role=role,
        status=status,
        reactivation_tries_left=message.reactivation_tries_left,
        signature_revoked=message.signature_revoked,
        loss_reason=_member(LossReason, message.loss_reason),
        switches=tuple(
            CardSwitchRecord(item.time.ToDatetime(tzinfo=UTC),
                             _member(SwitchKind, item.kind) or SwitchKind.BACKUP_ACTIVATED,
                             item.card_serial, _member(BackupSwitchReason, item.reason))
            for item in message.switches),
    )
