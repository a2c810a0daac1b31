"""The health insurance card's driver interface: :class:`KzzDriver` and the types it speaks.

The rules live in the card application (:class:`pkcard.kzz.HealthInsuranceCard`);
:class:`pkcard.kzz_iso.IsoKzzDriver` implements this interface over APDUs.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from pkcard import tlv
from pkcard.cardinfo import CardInfo, parse_date, parse_text, required
from pkcard.errors import FormatError

__all__ = ["InsuredPerson", "KzzDriver", "ZzzsNumber", "parse_insured"]

ZZZS_NUMBER_LENGTH = 9
TAG_INSURED = 0x7F62


@dataclass(frozen=True)
class ZzzsNumber:
    """The insured person's ZZZS number: exactly 9 ASCII digits."""

    value: str

    def __post_init__(self) -> None:
        if len(self.value) != ZZZS_NUMBER_LENGTH or not (
            self.value.isascii() and self.value.isdigit()
        ):
            raise FormatError("a ZZZS number is exactly 9 digits")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class InsuredPerson:
    """EF.Insured (template 7F62)."""

    zzzs_number: ZzzsNumber
    name: str
    birth_date: date


def parse_insured(ef: bytes) -> InsuredPerson:
    """EF.Insured (template 7F62, docs/card-profile.md), as every KZZ driver reads it."""
    fields = tlv.parse_dict(tlv.Tlv.unpack(TAG_INSURED, ef))
    return InsuredPerson(
        zzzs_number=ZzzsNumber(required(fields, 0xDF20).decode("ascii", errors="replace")),
        name=parse_text(required(fields, 0x5F20), "insured person's name"),
        birth_date=parse_date(required(fields, 0xDF12)),
    )


class KzzDriver(abc.ABC):
    """The KZZ's commands, typed."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]: ...

    @abc.abstractmethod
    def select(self) -> None:
        """Select the KZZ application; :class:`WrongCardKind` if absent."""

    @abc.abstractmethod
    def read_card_info(self) -> CardInfo: ...

    @abc.abstractmethod
    def read_insured(self) -> InsuredPerson: ...

    @abc.abstractmethod
    def read_certificate(self) -> bytes:
        """The DER of the card authentication certificate."""

    @abc.abstractmethod
    def internal_authenticate(self, digest: bytes) -> bytes:
        """Sign ``digest`` with the card authentication key."""
