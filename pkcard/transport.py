"""The abstract transport: how pkcard reaches one card in one reader.

pkcard never imports pyscard. ``pcsc_bridge`` implements this interface over
PC/SC, ``simcard`` implements it in process for unit tests and for the
daemon's embedded default. The protocol layer (:mod:`pkcard.protocol`) sits
on top of it, and the card applications on top of that.

A transport raises only :class:`pkcard.errors.TransportError` subclasses.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

from pkcard.errors import NotSupported


@dataclass(frozen=True)
class ReaderCapabilities:
    """What a reader can do beyond moving APDUs.

    ``pin_pad`` and ``display`` are ``None`` when the model is known but its
    capabilities are not (for example the IDBridge GCR5500).
    """

    pin_pad: bool | None = False
    display: bool | None = False


class CardContinuity(IntEnum):
    """What became of a held connection's card since its last use (see ``check``)."""

    SAME = 0  # the same card, powered all along: its verified PIN states are intact
    RESET = 1  # the same card was reset or lost power: every verified state is gone;
    #            the connection acknowledged it and works again
    GONE = 2  # the card left (another may be in now), the reader left or the PC/SC
    #           service restarted: the connection is dead, connect again


class SmartCardConnection(abc.ABC):
    """A connection to one card. Moves raw APDUs; knows nothing of their meaning."""

    @property
    @abc.abstractmethod
    def atr(self) -> bytes:
        """The card's answer to reset."""

    @property
    def capabilities(self) -> ReaderCapabilities:
        """The capabilities of the reader this connection goes through."""
        return ReaderCapabilities()

    @abc.abstractmethod
    def transmit(self, command: bytes) -> bytes:
        """Send one encoded command APDU, return the raw response (data + SW1 SW2).

        Raises :class:`pkcard.errors.CardRemoved`, :class:`pkcard.errors.CardReset`,
        :class:`pkcard.errors.NoService` and the other transport errors.
        """

    def control(self, code: int, data: bytes) -> bytes:
        """Send a reader control command (SCardControl), e.g. PC/SC part 10 PIN-pad features.

        ``code`` is the full control code as the platform expects it. Readers
        that cannot take control commands raise :class:`pkcard.errors.NotSupported`.
        """
        raise NotSupported("this reader takes no control commands")

    def check(self) -> CardContinuity:
        """Before a held connection is used again: is it still the same card, unchanged?

        Never raises. A connection that cannot tell returns ``SAME`` and lets
        the next command fail with its transport error.
        """
        return CardContinuity.SAME

    def begin_transaction(self) -> None:
        """Take the card exclusively until :meth:`end_transaction`. No-op by default."""
        return

    def end_transaction(self) -> None:
        """Release what :meth:`begin_transaction` took. No-op by default."""
        return

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """An exclusive transaction around a multi-APDU operation."""
        self.begin_transaction()
        try:
            yield
        finally:
            self.end_transaction()

    @abc.abstractmethod
    def close(self) -> None:
        """Disconnect, leaving the card powered and its PIN states intact."""

    def __enter__(self) -> SmartCardConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
