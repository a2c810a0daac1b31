"""Readers, reader models and reader/card events, independent of PC/SC.

``pcsc_bridge.PcscReaderSystem`` implements :class:`ReaderSystem` over a real
pcscd; ``simcard.SimulatedReaderSystem`` implements it in process (the
daemon's embedded default and the unit tests). The layers above (daemon,
tools) only see this module's types.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from pkcard.transport import ReaderCapabilities, SmartCardConnection


class ReaderModel(IntEnum):
    """Reader models pkcard knows by name. Unknown readers work as GENERIC."""

    GENERIC = 0
    IDBRIDGE_CT30 = 1  # 08E6:3437 "Gemalto PC Twin Reader", no PIN pad
    IDBRIDGE_CT700 = 2  # 08E6:3478 "GemPC Pinpad", PIN pad
    IDBRIDGE_CT710 = 3  # 08E6:34C2, PIN pad and display
    IDBRIDGE_GCR5500 = 4  # not in the CCID list: capabilities from its driver, else unknown


class CardKind(IntEnum):
    NONE = 0
    UNKNOWN = 1
    PK = 2
    KZZ = 3


@dataclass(frozen=True)
class ReaderInfo:
    """A reader as the layers above see it."""

    name: str
    model: ReaderModel
    capabilities: ReaderCapabilities
    usb_id: tuple[int, int] | None = None  # (vendor, product) when known


@dataclass(frozen=True)
class ReaderState:
    """A reader and what is in it right now."""

    reader: ReaderInfo
    card_present: bool
    atr: bytes = b""
    card_kind: CardKind = CardKind.NONE


class ReaderEventKind(IntEnum):
    READER_ADDED = 1
    READER_REMOVED = 2
    CARD_INSERTED = 3
    CARD_REMOVED = 4
    SERVICE_LOST = 5  # the PC/SC service went away; the watcher keeps trying
    SERVICE_RESTORED = 6
    PIN_ENTRY_STARTED = 7  # the reader's PIN pad asks the holder for the PIN now
    PIN_ENTRY_FINISHED = 8  # the PIN pad entry ended; the call's answer has the outcome


@dataclass(frozen=True)
class ReaderEvent:
    kind: ReaderEventKind
    reader: str  # empty for SERVICE_* events
    atr: bytes = b""  # set for CARD_INSERTED


EventSink = Callable[[ReaderEvent], None]


class ReaderSystem(abc.ABC):
    """Where readers come from. Owned explicitly; nothing runs until :meth:`start_watching`."""

    @abc.abstractmethod
    def list_readers(self) -> list[ReaderState]:
        """Every reader now attached, with its card state."""

    @abc.abstractmethod
    def connect(self, reader: str) -> SmartCardConnection:
        """Connect (shared) to the card in ``reader``.

        Raises :class:`pkcard.errors.ReaderNotFound`, :class:`pkcard.errors.CardRemoved`,
        :class:`pkcard.errors.NoService`.
        """

    @abc.abstractmethod
    def start_watching(self, sink: EventSink) -> None:
        """Start delivering :class:`ReaderEvent` to ``sink`` from one watcher thread."""

    @abc.abstractmethod
    def stop_watching(self) -> None:
        """Stop the watcher and join its thread. Idempotent."""

    def close(self) -> None:
        self.stop_watching()


def card_kind_from_atr(atr: bytes) -> CardKind:
    """Classify a card by the historical bytes of its ATR (see docs/card-profile.md)."""
    if not atr:
        return CardKind.NONE
    if b"PKCARDPK" in atr:
        return CardKind.PK
    if b"PKCARDKZ" in atr:
        return CardKind.KZZ
    return CardKind.UNKNOWN
