"""The two ways pkpin reaches a card: through pkcardd, or directly through a ReaderSystem.

Both raise the same :mod:`pkcard.errors`, so the words pkpin prints do not
depend on the path taken.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from pkcard.client import PinReport, PkcardClient
from pkcard.errors import NotSupported, WrongCardKind
from pkcard.expiry import ExpiryWarning
from pkcard.holder import BackendCardStatus
from pkcard.pin import PadEntry, PinRef, PinStatus
from pkcard.pk import PkCardData, ProfessionalCard
from pkcard.readers import ReaderState, ReaderSystem
from pkcard.secret import Secret
from pkcard.tools.pkpin import choice

_T = TypeVar("_T")


@dataclass(frozen=True)
class CardReport:
    """A PK's data and the expiry warnings due today."""

    card: PkCardData
    warnings: tuple[ExpiryWarning, ...]


class PinService(abc.ABC):
    """The card operations pkpin needs, whatever the path to the card."""

    @abc.abstractmethod
    def readers(self) -> list[ReaderState]: ...

    @abc.abstractmethod
    def card(self, reader: str) -> CardReport: ...

    @abc.abstractmethod
    def statuses(self, reader: str) -> tuple[PinStatus, ...]:
        """Every secret the card has. Spends no try."""

    @abc.abstractmethod
    def status(self, reader: str, ref: PinRef) -> PinStatus:
        """One secret's status (:class:`~pkcard.errors.NotSupported` if absent)."""

    @abc.abstractmethod
    def change(
        self, reader: str, ref: PinRef, old: Secret, new: Secret, *, confirm_last_try: bool
    ) -> PinStatus: ...

    @abc.abstractmethod
    def unblock(
        self, reader: str, puk: Secret, new_pin: Secret, *, confirm_last_try: bool
    ) -> PinStatus: ...

    @abc.abstractmethod
    def activate_signature(
        self, reader: str, tpin: Secret, new_spin: Secret, *, confirm_last_try: bool
    ) -> PinStatus: ...

    @abc.abstractmethod
    def change_on_pad(self, reader: str, ref: PinRef, *, confirm_last_try: bool) -> PinStatus:
        """Change ``ref`` with the old and new values typed on the reader's PIN pad."""

    @abc.abstractmethod
    def unblock_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        """Unblock the PIN with the PUK and new PIN typed on the reader's PIN pad."""

    @abc.abstractmethod
    def activate_signature_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        """Activate the signing PIN with the TPIN and new SPIN typed on the PIN pad."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> PinService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pin_report(self, reader: str, ref: PinRef | None = None) -> PinReport:
        """The secrets' statuses (every one, or only ``ref``) and the daemon's failed-PIN pause.

        Without pkcardd there is no such pause: ``retry_after_s`` is 0.
        """
        statuses = self.statuses(reader) if ref is None else (self.status(reader, ref),)
        return PinReport(statuses, 0)

    def backend_status(self, reader: str) -> BackendCardStatus | None:
        """What the card registry (the backend) knows about the PK in ``reader``; None without
        pkcardd or without a configured backend."""
        return None

    def pick_reader(self, wanted: str | None) -> ReaderState:
        """``wanted``'s state, or the only reader holding a PK (see :mod:`.choice`)."""
        return choice.pick_reader(self.readers(), wanted)


class DaemonService(PinService):
    """Through pkcardd's gRPC API on a Unix socket."""

    def __init__(self, socket: Path) -> None:
        self._client = PkcardClient(socket)

    def backend_status(self, reader: str) -> BackendCardStatus | None:
        try:
            return self._client.get_card_status(reader)
        except NotSupported:  # pkcardd has no backend
            return None

    def readers(self) -> list[ReaderState]:
        return self._client.list_readers()

    def card(self, reader: str) -> CardReport:
        reading = self._client.get_card(reader)
        if reading.pk is None:
            raise WrongCardKind("the card is not a PK")
        return CardReport(reading.pk, reading.warnings)

    def statuses(self, reader: str) -> tuple[PinStatus, ...]:
        return self._client.get_pin_status(reader)

    def status(self, reader: str, ref: PinRef) -> PinStatus:
        (status,) = self._client.get_pin_status(reader, ref)
        return status

    def pin_report(self, reader: str, ref: PinRef | None = None) -> PinReport:
        return self._client.get_pin_report(reader, ref)

    def change(
        self, reader: str, ref: PinRef, old: Secret, new: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._client.change_pin(reader, ref, old, new, confirm_last_try=confirm_last_try)

    def unblock(
        self, reader: str, puk: Secret, new_pin: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._client.unblock_pin(reader, puk, new_pin, confirm_last_try=confirm_last_try)

    def activate_signature(
        self, reader: str, tpin: Secret, new_spin: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._client.activate_signature_pin(
            reader, tpin, new_spin, confirm_last_try=confirm_last_try
        )

    # A PIN call whose every secret is a PadEntry asks pkcardd to use the reader's PIN pad.

    def change_on_pad(self, reader: str, ref: PinRef, *, confirm_last_try: bool) -> PinStatus:
        pad = PadEntry()
        return self._client.change_pin(reader, ref, pad, pad, confirm_last_try=confirm_last_try)

    def unblock_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        pad = PadEntry()
        return self._client.unblock_pin(reader, pad, pad, confirm_last_try=confirm_last_try)

    def activate_signature_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        pad = PadEntry()
        return self._client.activate_signature_pin(
            reader, pad, pad, confirm_last_try=confirm_last_try
        )

    def close(self) -> None:
        self._client.close()


class DirectService(PinService):
    """Straight to the card through a :class:`ReaderSystem` (PC/SC or simulated).

    Each operation is one connection and one :class:`ProfessionalCard` session.
    ``today`` gives the date for expiry warnings.
    """

    def __init__(self, system: ReaderSystem, today: Callable[[], date] = date.today) -> None:
        self._system = system
        self._today = today

    def _on_card(self, reader: str, job: Callable[[ProfessionalCard], _T]) -> _T:
        with self._system.connect(reader) as connection:
            return job(ProfessionalCard.over(connection))

    def readers(self) -> list[ReaderState]:
        return self._system.list_readers()

    def card(self, reader: str) -> CardReport:
        data = self._on_card(reader, ProfessionalCard.read_card)
        return CardReport(data, data.expiry_warnings(self._today()))

    def statuses(self, reader: str) -> tuple[PinStatus, ...]:
        return self._on_card(reader, ProfessionalCard.pin_statuses)

    def status(self, reader: str, ref: PinRef) -> PinStatus:
        return self._on_card(reader, lambda card: card.pin_status(ref))

    def change(
        self, reader: str, ref: PinRef, old: Secret, new: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._on_card(
            reader, lambda card: card.change(ref, old, new, confirm_last_try=confirm_last_try)
        )

    def unblock(
        self, reader: str, puk: Secret, new_pin: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._on_card(
            reader, lambda card: card.unblock(puk, new_pin, confirm_last_try=confirm_last_try)
        )

    def activate_signature(
        self, reader: str, tpin: Secret, new_spin: Secret, *, confirm_last_try: bool
    ) -> PinStatus:
        return self._on_card(
            reader,
            lambda card: card.activate_signature(tpin, new_spin, confirm_last_try=confirm_last_try),
        )

    def change_on_pad(self, reader: str, ref: PinRef, *, confirm_last_try: bool) -> PinStatus:
        return self._on_card(
            reader, lambda card: card.change_on_pad(ref, confirm_last_try=confirm_last_try)
        )

    def unblock_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        return self._on_card(
            reader, lambda card: card.unblock_on_pad(confirm_last_try=confirm_last_try)
        )

    def activate_signature_on_pad(self, reader: str, *, confirm_last_try: bool) -> PinStatus:
        return self._on_card(
            reader,
            lambda card: card.activate_signature_on_pad(confirm_last_try=confirm_last_try),
        )

    def close(self) -> None:
        self._system.close()
