"""The PC/SC reader system: readers, cards and events from a real pcscd."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from smartcard import scard

from pkcard.errors import CardRemoved
from pkcard.pcsc_bridge.connection import PROTOCOLS, PcscConnection
from pkcard.pcsc_bridge.context import (
    PcscContext,
    establish_context,
    is_service_loss,
    release_context,
)
from pkcard.pcsc_bridge.errors import PcscStatus, error_for_status
from pkcard.pcsc_bridge.features import (
    DriverReport,
    probe_driver_report,
    read_driver_report,
)
from pkcard.pcsc_bridge.models import has_unknowns, identify, model_from_name
from pkcard.pcsc_bridge.watcher import ReaderWatcher, list_reader_names, read_states
from pkcard.readers import (
    CardKind,
    EventSink,
    ReaderInfo,
    ReaderState,
    ReaderSystem,
    card_kind_from_atr,
)

_T = TypeVar("_T")


class PcscReaderSystem(ReaderSystem):
    """Readers as pcscd sees them.

    Owns one PC/SC context for listing and connecting. When pcscd restarts,
    the next call finds the old context dead, establishes a new one and
    retries once, so the owning process never needs a restart. Nothing runs
    in the background until :meth:`start_watching`.
    """

    def __init__(self) -> None:
        self._context = PcscContext()
        self._watcher: ReaderWatcher | None = None
        self._watch_lock = threading.Lock()
        self._reports: dict[str, DriverReport] = {}  # by reader name

    def list_readers(self) -> list[ReaderState]:
        def query(hcontext: int) -> tuple[int, list[ReaderState]]:
            status, names = list_reader_names(hcontext)
            if status != PcscStatus.SUCCESS:
                return status, []
            status, states = read_states(hcontext, names)
            result = []
            for name in names:
                state = states.get(name)
                present = state is not None and state.card_present
                atr = state.atr if state is not None and present else b""
                kind = card_kind_from_atr(atr) if present else CardKind.NONE
                in_use = state is not None and state.in_use
                probe = None if in_use else partial(probe_driver_report, hcontext, name)
                info = self._identify(name, probe)
                result.append(ReaderState(info, present, atr, kind))
            return status, result

        return self._with_context(query, "listing readers")

    def connect(self, reader: str) -> PcscConnection:
        """A connection on a PC/SC context of its own.

        libpcsclite runs the calls on one context one at a time: on a shared
        context, a card that never answers would stall every other reader.
        """

        def attempt(_shared: int) -> tuple[int, PcscConnection | None]:
            hcontext = establish_context()
            status, hcard, protocol = scard.SCardConnect(
                hcontext, reader, scard.SCARD_SHARE_SHARED, PROTOCOLS
            )
            if status != PcscStatus.SUCCESS:
                release_context(hcontext)
                return status, None
            status, _name, state, _protocol, atr = scard.SCardStatus(hcard)
            if status != PcscStatus.SUCCESS:
                scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
                release_context(hcontext)
                return status, None
            info = self._identify(reader, partial(read_driver_report, hcard))
            return status, PcscConnection(hcard, protocol, bytes(atr), info, hcontext,
                                          state=state)

        connection = self._with_context(attempt, f"connecting to {reader!r}")
        if connection is None:  # pragma: no cover - SUCCESS always carries a connection
            raise CardRemoved(f"connecting to {reader!r}: no card")
        return connection

    def start_watching(self, sink: EventSink) -> None:
        """Start the one watcher thread. Raises RuntimeError when already watching."""
        with self._watch_lock:
            if self._watcher is not None:
                raise RuntimeError("already watching")
            watcher = ReaderWatcher(sink)
            watcher.start()
            self._watcher = watcher

    def stop_watching(self) -> None:
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def close(self) -> None:
        self.stop_watching()
        self._context.close()

    def __enter__(self) -> PcscReaderSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _identify(
        self, name: str, read_report: Callable[[], DriverReport] | None
    ) -> ReaderInfo:
        """The reader's model: by name, else by the USB id its driver reports (cached).

        A reader known by name is asked nothing unless its table entry leaves a
        capability unknown (the GCR5500): then the driver's feature list fills it.
        ``read_report`` is None when asking now could block (the reader is in use:
        pcsc-lite makes a connect wait for another application's transaction).
        """
        entry = model_from_name(name)
        if entry is not None and not has_unknowns(entry.capabilities):
            return identify(name)
        if name not in self._reports:
            if read_report is None:
                return identify(name)
            self._reports[name] = read_report()
        report = self._reports[name]
        return identify(name, report.usb_id, report.capabilities)

    def _with_context(self, call: Callable[[int], tuple[int, _T]], action: str) -> _T:
        """Run ``call`` on the context; after a service loss, once more on a new one."""
        hcontext = self._context.get()
        status, result = call(hcontext)
        if is_service_loss(status):
            self._context.drop(hcontext)
            hcontext = self._context.get()
            status, result = call(hcontext)
        if status != PcscStatus.SUCCESS:
            if is_service_loss(status):
                self._context.drop(hcontext)
            raise error_for_status(status, action)
        return result
