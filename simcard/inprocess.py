"""In-process readers and connections for simulated cards: no pcscd, no sockets.

:class:`InProcessConnection` is a :class:`~pkcard.transport.SmartCardConnection`
over one :class:`~simcard.card.SimulatedCard`. :class:`SimulatedReaderSystem`
is a :class:`~pkcard.readers.ReaderSystem` with named simulated readers into
which tests (or ``pkcardd --simulated``) insert and remove cards.

Threads: none. Events are delivered synchronously, on the thread that calls
:meth:`SimulatedReaderSystem.insert` / :meth:`~SimulatedReaderSystem.remove`
(and, for the cards already present, on the thread that calls
:meth:`~SimulatedReaderSystem.start_watching`), after the system's own lock
is released, so a sink may call back into the system.

Exclusive transactions are real: :meth:`InProcessConnection.begin_transaction`
takes the inserted card's re-entrant lock, and a transmit outside a
transaction waits for another connection's transaction to end, like PC/SC.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pkcard.errors import CardRemoved, CardReset, NotSupported, ReaderNotFound
from pkcard.readers import (
    EventSink,
    ReaderEvent,
    ReaderEventKind,
    ReaderInfo,
    ReaderModel,
    ReaderState,
    ReaderSystem,
    card_kind_from_atr,
)
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.pinpad import PAD_MODELS, SimulatedPinPad
from pkcard.transport import CardContinuity, ReaderCapabilities, SmartCardConnection

PINPAD_READER = ReaderInfo(
    name="Gemalto GemPC Pinpad (simulated)",
    model=ReaderModel.IDBRIDGE_CT700,
    capabilities=ReaderCapabilities(pin_pad=True, display=False),
    usb_id=(0x08E6, 0x3478),
)
TWIN_READER = ReaderInfo(
    name="Gemalto PC Twin Reader (simulated)",
    model=ReaderModel.IDBRIDGE_CT30,
    capabilities=ReaderCapabilities(pin_pad=False, display=False),
    usb_id=(0x08E6, 0x3437),
)
DEFAULT_READERS = (PINPAD_READER, TWIN_READER)


class Insertion:
    """One stay of a card in a reader: ends when the card is removed.

    Connections opened during the stay share its exclusive-access lock and
    fail with CardRemoved once it ended, even if the same card comes back.
    """

    def __init__(self, card: SimulatedCard) -> None:
        self.card = card
        self.access = threading.RLock()
        self._present = True

    @property
    def present(self) -> bool:
        return self._present

    def end(self) -> None:
        self._present = False


class InProcessConnection(SmartCardConnection):
    """A connection to a simulated card, in process.

    ``InProcessConnection(card)`` is a card in a private, always-present
    reader; pass ``insertion`` to share a reader with other connections.
    """

    def __init__(
        self,
        card: SimulatedCard,
        *,
        capabilities: ReaderCapabilities | None = None,
        insertion: Insertion | None = None,
        pin_pad: SimulatedPinPad | None = None,
    ) -> None:
        self._insertion = insertion if insertion is not None else Insertion(card)
        self._pin_pad = pin_pad
        if self._insertion.card is not card:
            raise ValueError("the insertion holds a different card")
        self._capabilities = capabilities if capabilities is not None else ReaderCapabilities()
        self._closed = False
        self._reset_pending = False
        self._depth = 0

    @property
    def card(self) -> SimulatedCard:
        return self._insertion.card

    @property
    def atr(self) -> bytes:
        self._check()
        return self._insertion.card.atr

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._capabilities

    def transmit(self, command: bytes) -> bytes:
        self._check()
        with self._insertion.access:
            self._check()
            return self._insertion.card.execute(command)

    def control(self, code: int, data: bytes) -> bytes:
        """Part 10 control requests go to the reader's simulated PIN pad, if it has one."""
        self._check()
        if self._pin_pad is None:
            raise NotSupported("this simulated reader takes no control commands")
        with self._insertion.access:
            self._check()
            return self._pin_pad.control(code, data, self._insertion.card.execute)

    def check(self) -> CardContinuity:
        """GONE once the card left (even if it is back), RESET once after a reset."""
        if self._closed or not self._insertion.present:
            return CardContinuity.GONE
        if self._reset_pending:
            self._reset_pending = False
            return CardContinuity.RESET
        return CardContinuity.SAME

    def begin_transaction(self) -> None:
        self._check()
        self._insertion.access.acquire()
        self._depth += 1

    def end_transaction(self) -> None:
        if self._depth:
            self._depth -= 1
            self._insertion.access.release()

    def close(self) -> None:
        while self._depth:
            self.end_transaction()
        self._closed = True

    def pull_card(self) -> None:
        """Simulate the card leaving this connection's reader (power off, CardRemoved after)."""
        self._insertion.end()
        self._insertion.card.power_off()

    def reset_by_other_party(self) -> None:
        """Simulate another application resetting the card: the next transmit raises CardReset."""
        self._insertion.card.reset()
        self._reset_pending = True

    def _check(self) -> None:
        if self._closed:
            raise CardRemoved("connection is closed")
        if not self._insertion.present:
            raise CardRemoved("the card was removed from the reader")
        if self._reset_pending:
            self._reset_pending = False
            raise CardReset("the card was reset by another party")


@dataclass
class _Slot:
    info: ReaderInfo
    insertion: Insertion | None = None
    pin_pad: SimulatedPinPad | None = None


def _slot_for(info: ReaderInfo) -> _Slot:
    """A slot; readers with a PIN pad and a known pad model get a simulated pad."""
    model = PAD_MODELS.get(info.usb_id) if info.usb_id is not None else None
    pad = SimulatedPinPad(model) if info.capabilities.pin_pad and model is not None else None
    return _Slot(info, pin_pad=pad)


class SimulatedReaderSystem(ReaderSystem):
    """Named in-process readers holding :class:`SimulatedCard` objects. Starts no thread."""

    def __init__(self, readers: Sequence[ReaderInfo] = DEFAULT_READERS) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        for info in readers:
            if info.name in self._slots:
                raise ValueError(f"duplicate reader name {info.name!r}")
            self._slots[info.name] = _slot_for(info)
        self._sink: EventSink | None = None

    @property
    def reader_names(self) -> list[str]:
        with self._lock:
            return list(self._slots)

    def list_readers(self) -> list[ReaderState]:
        with self._lock:
            return [_state(slot) for slot in self._slots.values()]

    def connect(self, reader: str) -> SmartCardConnection:
        with self._lock:
            slot = self._slot(reader)
            if slot.insertion is None:
                raise CardRemoved(f"no card in reader {reader!r}")
            return InProcessConnection(
                slot.insertion.card,
                capabilities=slot.info.capabilities,
                insertion=slot.insertion,
                pin_pad=slot.pin_pad,
            )

    def insert(self, reader: str, card: SimulatedCard) -> None:
        """Put ``card`` into ``reader`` (powered up fresh). Any card already there is removed."""
        events: list[ReaderEvent] = []
        with self._lock:
            slot = self._slot(reader)
            if slot.insertion is not None:
                events.append(self._take_out(slot))
            card.power_off()
            slot.insertion = Insertion(card)
            events.append(ReaderEvent(ReaderEventKind.CARD_INSERTED, reader, card.atr))
            sink = self._sink
        _deliver(sink, events)

    def remove(self, reader: str) -> SimulatedCard | None:
        """Pull the card out of ``reader``; returns it (None when the reader was empty)."""
        with self._lock:
            slot = self._slot(reader)
            if slot.insertion is None:
                return None
            card = slot.insertion.card
            event = self._take_out(slot)
            sink = self._sink
        _deliver(sink, [event])
        return card

    def card_in(self, reader: str) -> SimulatedCard | None:
        """The card now in ``reader`` (for tests)."""
        with self._lock:
            slot = self._slot(reader)
            return slot.insertion.card if slot.insertion is not None else None

    def pin_pad(self, reader: str) -> SimulatedPinPad | None:
        """The simulated PIN pad of ``reader`` (for tests: its keypad, what it received)."""
        with self._lock:
            return self._slot(reader).pin_pad

    def add_reader(self, info: ReaderInfo) -> None:
        """Plug in a reader (READER_ADDED)."""
        with self._lock:
            if info.name in self._slots:
                raise ValueError(f"duplicate reader name {info.name!r}")
            self._slots[info.name] = _slot_for(info)
            sink = self._sink
        _deliver(sink, [ReaderEvent(ReaderEventKind.READER_ADDED, info.name)])

    def remove_reader(self, reader: str) -> None:
        """Unplug a reader (CARD_REMOVED for its card, then READER_REMOVED)."""
        events: list[ReaderEvent] = []
        with self._lock:
            slot = self._slot(reader)
            if slot.insertion is not None:
                events.append(self._take_out(slot))
            del self._slots[reader]
            events.append(ReaderEvent(ReaderEventKind.READER_REMOVED, reader))
            sink = self._sink
        _deliver(sink, events)

    def start_watching(self, sink: EventSink) -> None:
        """Deliver later events to ``sink``; first, CARD_INSERTED for each card present now."""
        with self._lock:
            self._sink = sink
            present = [
                ReaderEvent(ReaderEventKind.CARD_INSERTED, name, slot.insertion.card.atr)
                for name, slot in self._slots.items()
                if slot.insertion is not None
            ]
        _deliver(sink, present)

    def stop_watching(self) -> None:
        with self._lock:
            self._sink = None

    def _slot(self, reader: str) -> _Slot:
        slot = self._slots.get(reader)
        if slot is None:
            raise ReaderNotFound(f"no reader named {reader!r}")
        return slot

    @staticmethod
    def _take_out(slot: _Slot) -> ReaderEvent:
        assert slot.insertion is not None
        slot.insertion.end()
        slot.insertion.card.power_off()
        slot.insertion = None
        return ReaderEvent(ReaderEventKind.CARD_REMOVED, slot.info.name)


def _state(slot: _Slot) -> ReaderState:
    if slot.insertion is None:
        return ReaderState(slot.info, card_present=False)
    atr = slot.insertion.card.atr
    return ReaderState(slot.info, card_present=True, atr=atr, card_kind=card_kind_from_atr(atr))


def _deliver(sink: EventSink | None, events: list[ReaderEvent]) -> None:
    if sink is None:
        return
    for event in events:
        sink(event)
