"""A connection to one card through pcscd."""

from __future__ import annotations

import logging
import threading

from smartcard import scard

from pkcard.errors import CardRemoved, NotSupported, TransportError
from pkcard.pcsc_bridge.context import release_context
from pkcard.pcsc_bridge.errors import PcscStatus, error_for_status
from pkcard.readers import ReaderInfo
from pkcard.transport import CardContinuity, ReaderCapabilities, SmartCardConnection

_log = logging.getLogger(__name__)

PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
# SCardStatus state bits (pcsc-lite's pcsclite.h; pyscard does not export them). pcsc-lite
# also puts the reader's card event counter (insertions and removals) in the upper 16 bits.
SCARD_POWERED = 0x0010
_EVENT_SHIFT = 16
_SUCCESS = int(PcscStatus.SUCCESS)  # a plain int: compared on every APDU


def _pci_for(protocol: int) -> int:
    return int(scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0)


class PcscConnection(SmartCardConnection):
    """A shared (T=0 or T=1) PC/SC connection to the card in one reader.

    Made by :meth:`pkcard.pcsc_bridge.PcscReaderSystem.connect`.

    - :meth:`close` disconnects with ``SCARD_LEAVE_CARD``: the card stays
      powered and keeps its verified PIN states for the next connection.
    - When another application resets the card (``SCARD_W_RESET_CARD``) the
      connection acknowledges it with ``SCardReconnect(SCARD_LEAVE_CARD)``
      and raises :class:`pkcard.errors.CardReset`. The connection works again
      right away, but every verified PIN state on the card is gone: the layers
      above must forget them and ask again.
    - After pcscd restarts, calls raise :class:`pkcard.errors.NoService`; the
      reader system re-establishes its context on the next ``connect``.
    - :meth:`check` tells a holder (pkcardd's reader worker keeps one connection
      per reader) what became of the card since the connection was last used:
      one ``SCardStatus``, compared with the ATR and pcscd's card event counter
      seen at connect time. While any connection is open, pcscd does not power
      the card down; once the last one closes it does after a grace period,
      and every verified PIN state goes with the power.
    - **Never hold a transaction while a person types a PIN on a keyboard.**
      Windows resets a card whose transaction stays idle for about 5 s, and a
      held transaction blocks every other application. Collect the PIN first,
      then open the transaction, send VERIFY and the operation, and close it.
    """

    def __init__(
        self, hcard: int, protocol: int, atr: bytes, reader: ReaderInfo,
        context: int | None = None, *, state: int = 0,
    ) -> None:
        self._hcard = hcard
        self._card_events = state >> _EVENT_SHIFT  # pcscd's count when we connected
        self._context = context  # owned: released by close()
        self._protocol = protocol
        self._pci = _pci_for(protocol)
        self._atr = atr
        self._reader = reader
        self._closed = False
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PcscConnection(reader={self._reader.name!r}, closed={self._closed})"

    @property
    def reader(self) -> ReaderInfo:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._reader.capabilities

    def transmit(self, command: bytes) -> bytes:
        # The per-APDU path: as little Python as a bare SCardTransmit allows (issue #14, G9).
        status, response = scard.SCardTransmit(self._hcard, self._pci, list(command))
        if status != _SUCCESS:
            raise self._failure(status, "SCardTransmit")
        if len(response) < 2:
            # No status word: the card went away during the command. (vpcd, and
            # some readers, report the lost card as an empty success.)
            raise CardRemoved(f"SCardTransmit on {self._reader.name!r}: no response from the card")
        return bytes(response)

    def control(self, code: int, data: bytes) -> bytes:
        """SCardControl: PC/SC part 10 requests (see :mod:`pkcard.pinpad`).

        A reader or driver without the feature raises :class:`NotSupported`.
        The request and answer are never logged (a PIN entry answer is the card's).
        """
        status, response = scard.SCardControl(self._hcard, code, list(data))
        if status == PcscStatus.E_UNSUPPORTED_FEATURE:
            raise NotSupported(f"SCardControl {code:#010x} on {self._reader.name!r}: not supported")
        if status != PcscStatus.SUCCESS:
            raise self._failure(status, "SCardControl")
        return bytes(response)

    def check(self) -> CardContinuity:
        """SAME, RESET (acknowledged: the handle works again) or GONE. Never raises.

        GONE: the card was removed (even if one is back: pcscd counted the
        events), another ATR answers, the reader left or pcscd restarted.
        RESET: another application reset the card, or it lost power.
        """
        status, _name, state, _protocol, atr = scard.SCardStatus(self._hcard)
        if status in (PcscStatus.W_RESET_CARD, PcscStatus.W_UNPOWERED_CARD):
            try:
                self._acknowledge_reset()
            except TransportError:
                return CardContinuity.GONE
            status, _name, state, _protocol, atr = scard.SCardStatus(self._hcard)
            lost = True
        else:
            lost = False
        if status != PcscStatus.SUCCESS or bytes(atr) != self._atr:
            return CardContinuity.GONE
        if state >> _EVENT_SHIFT != self._card_events:
            return CardContinuity.GONE
        if not state & SCARD_POWERED:
            try:  # powered down under us: power it up again, the states are gone
                self._acknowledge_reset()
            except TransportError:
                return CardContinuity.GONE
            lost = True
        return CardContinuity.RESET if lost else CardContinuity.SAME

    def begin_transaction(self) -> None:
        status = scard.SCardBeginTransaction(self._hcard)
        if status != PcscStatus.SUCCESS:
            raise self._failure(status, "SCardBeginTransaction")

    def end_transaction(self) -> None:
        status = scard.SCardEndTransaction(self._hcard, scard.SCARD_LEAVE_CARD)
        if status != PcscStatus.SUCCESS:
            raise self._failure(status, "SCardEndTransaction")

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        status = scard.SCardDisconnect(self._hcard, scard.SCARD_LEAVE_CARD)
        if status != PcscStatus.SUCCESS:
            _log.debug("SCardDisconnect on %s: 0x%08X", self._reader.name, status)
        if self._context is not None:
            release_context(self._context)

    def _failure(self, status: int, action: str) -> Exception:
        """The error to raise for a failed call.

        For a reset, acknowledge it first so the handle works again; the error
        is then :class:`pkcard.errors.CardReset` (or the reconnect's failure).
        """
        if status == PcscStatus.W_RESET_CARD:
            self._acknowledge_reset()
        return error_for_status(status, f"{action} on {self._reader.name!r}")

    def _acknowledge_reset(self) -> None:
        status, protocol = scard.SCardReconnect(
            self._hcard, scard.SCARD_SHARE_SHARED, PROTOCOLS, scard.SCARD_LEAVE_CARD
        )
        if status != PcscStatus.SUCCESS:
            raise error_for_status(status, f"SCardReconnect on {self._reader.name!r}")
        self._protocol = protocol
        self._pci = _pci_for(protocol)
        _log.info("card in %s was reset or lost power; its verified states are gone",
                  self._reader.name)
