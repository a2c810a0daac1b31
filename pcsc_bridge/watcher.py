"""The reader watcher: one thread turning SCardGetStatusChange into ReaderEvents."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from smartcard import scard

from pkcard.errors import NoService
from pkcard.pcsc_bridge.context import establish_context, is_service_loss, release_context
from pkcard.pcsc_bridge.errors import PcscStatus, describe_status
from pkcard.readers import EventSink, ReaderEvent, ReaderEventKind

_log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
WAIT_MS = 500  # bound of one wait, so stop() never waits long
_JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SlotState:
    """What the watcher last saw in one reader."""

    event_state: int  # as returned by pcscd, fed back as the next current state
    atr: bytes

    @property
    def card_present(self) -> bool:
        return bool(self.event_state & scard.SCARD_STATE_PRESENT)

    @property
    def in_use(self) -> bool:
        """Another connection holds the reader (shared or exclusive)."""
        return bool(self.event_state & (scard.SCARD_STATE_INUSE | scard.SCARD_STATE_EXCLUSIVE))

    @property
    def card_events(self) -> int:
        """pcsc-lite's count of insertions and removals, in the high word."""
        return (self.event_state >> 16) & 0xFFFF

    def same_card(self, other: SlotState) -> bool:
        """True when ``other`` shows the card of this state, not pulled in between."""
        return (
            self.card_present
            and other.card_present
            and self.atr == other.atr
            and self.card_events == other.card_events
        )


def list_reader_names(hcontext: int) -> tuple[int, list[str]]:
    """``(status, names)``; no readers is success with an empty list."""
    status, names = scard.SCardListReaders(hcontext, [])
    if status == PcscStatus.E_NO_READERS_AVAILABLE:
        return PcscStatus.SUCCESS, []
    return status, list(names) if status == PcscStatus.SUCCESS else []


def read_states(hcontext: int, names: list[str]) -> tuple[int, dict[str, SlotState]]:
    """The present state of each reader, without waiting."""
    if not names:
        return PcscStatus.SUCCESS, {}
    status, states = scard.SCardGetStatusChange(
        hcontext, 0, [(name, scard.SCARD_STATE_UNAWARE) for name in names]
    )
    if status != PcscStatus.SUCCESS:
        return status, {}
    return status, {
        name: SlotState(event & ~scard.SCARD_STATE_CHANGED, bytes(atr))
        for name, event, atr in states
    }


class ReaderWatcher:
    """Watches pcscd from one thread that :meth:`start` starts and :meth:`stop` joins.

    The baseline is taken in :meth:`start`, so every change after it returns is
    reported. ``SERVICE_LOST`` means every reader and card is gone as far as
    the sink should care; after ``SERVICE_RESTORED`` the watcher reports
    every reader (``READER_ADDED``) and card (``CARD_INSERTED``) anew. A
    pcscd restart power-cycles the cards, so verified PIN states are gone too.
    The thread uses its own context, never the reader system's.
    """

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._hcontext: int | None = None
        self._known: dict[str, SlotState] = {}
        self._pnp_state = scard.SCARD_STATE_UNAWARE
        self._service_up = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the watcher is already running")
        self._stop.clear()
        self._connect(announce=False)
        self._thread = threading.Thread(target=self._run, name="pcsc-reader-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and join it. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        with self._lock:
            if self._hcontext is not None:
                scard.SCardCancel(self._hcontext)
        thread.join(_JOIN_TIMEOUT_S)
        if thread.is_alive():
            _log.error("the reader watcher thread did not stop")
        self._thread = None
        self._release()

    def _emit(self, kind: ReaderEventKind, reader: str = "", atr: bytes = b"") -> None:
        try:
            self._sink(ReaderEvent(kind, reader, atr))
        except Exception:
            _log.exception("reader event sink failed on %s", kind.name)

    def _release(self) -> None:
        with self._lock:
            handle, self._hcontext = self._hcontext, None
        if handle is not None:
            release_context(handle)

    def _connect(self, announce: bool) -> bool:
        """Establish the context and take a baseline. False while pcscd is away."""
        try:
            handle = establish_context()
        except NoService:
            return False
        status, names = list_reader_names(handle)
        if status == PcscStatus.SUCCESS:
            status, states = read_states(handle, names)
        if status != PcscStatus.SUCCESS:
            release_context(handle)
            return False
        with self._lock:
            self._hcontext = handle
        self._pnp_state = scard.SCARD_STATE_UNAWARE
        self._service_up = True
        self._known = {}
        if announce:
            self._emit(ReaderEventKind.SERVICE_RESTORED)
        self._apply(states, announce_readers=announce)
        return True

    def _lose_service(self) -> None:
        self._release()
        if self._service_up:
            self._service_up = False
            self._known = {}
            self._emit(ReaderEventKind.SERVICE_LOST)

    def _run(self) -> None:
        if not self._service_up:
            self._emit(ReaderEventKind.SERVICE_LOST)
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                _log.exception("reader watcher step failed")
                self._stop.wait(WAIT_MS / 1000)

    def _step(self) -> None:
        handle = self._hcontext
        if handle is None:
            if not self._connect(announce=True):
                self._stop.wait(WAIT_MS / 1000)
            return
        query = [(PNP_NOTIFICATION, self._pnp_state)] + [
            (name, state.event_state) for name, state in self._known.items()
        ]
        status, states = scard.SCardGetStatusChange(handle, WAIT_MS, query)
        if status in (PcscStatus.E_TIMEOUT, PcscStatus.E_CANCELLED):
            return
        if is_service_loss(status):
            self._lose_service()
            return
        if status != PcscStatus.SUCCESS:
            _log.warning("SCardGetStatusChange: %s", describe_status(status))
            self._stop.wait(WAIT_MS / 1000)
            return
        readers_changed = False
        changed: dict[str, SlotState] = {}
        for name, event, atr in states:
            if name == PNP_NOTIFICATION:
                if event & scard.SCARD_STATE_CHANGED:
                    readers_changed = True
                self._pnp_state = event & ~scard.SCARD_STATE_CHANGED
            elif event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                readers_changed = True
            else:
                changed[name] = SlotState(event & ~scard.SCARD_STATE_CHANGED, bytes(atr))
        if readers_changed:
            status, names = list_reader_names(handle)
            if status == PcscStatus.SUCCESS:
                status, changed = read_states(handle, names)
            if is_service_loss(status):
                self._lose_service()
                return
            if status != PcscStatus.SUCCESS:
                _log.warning("listing readers: %s", describe_status(status))
                return
        self._apply(changed, announce_readers=True, complete=readers_changed)

    def _apply(
        self, states: dict[str, SlotState], announce_readers: bool, complete: bool = True
    ) -> None:
        """Report the differences between the known states and ``states``.

        ``complete`` means ``states`` lists every reader, so a missing one is gone.
        """
        if complete:
            for name in [n for n in self._known if n not in states]:
                old = self._known.pop(name)
                if old.card_present:
                    self._emit(ReaderEventKind.CARD_REMOVED, name)
                self._emit(ReaderEventKind.READER_REMOVED, name)
        for name, new in states.items():
            old_state = self._known.get(name)
            self._known[name] = new
            if old_state is None:
                if announce_readers:
                    self._emit(ReaderEventKind.READER_ADDED, name)
                    if new.card_present:
                        self._emit(ReaderEventKind.CARD_INSERTED, name, new.atr)
                continue
            if old_state.same_card(new):
                continue
            if old_state.card_present:
                self._emit(ReaderEventKind.CARD_REMOVED, name)
            if new.card_present:
                self._emit(ReaderEventKind.CARD_INSERTED, name, new.atr)
