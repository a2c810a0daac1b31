"""The professional card's driver interface: :class:`PkDriver` and the types it speaks.

A driver implements the PK's commands with typed inputs and typed answers
(:class:`PinAnswer`) and no rules; the rules live in the card application
(:class:`pkcard.pk.ProfessionalCard`). Two drivers exist:
:class:`pkcard.pk_iso.IsoPkDriver` (docs/card-profile.md over APDUs) and
:class:`pkcard.pkcs11.Pkcs11PkDriver` (a PKCS#11 module).
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

from pkcard import tlv
from pkcard.cardinfo import CardInfo, parse_date, parse_enum, parse_text, required
from pkcard.errors import FormatError, NotSupported
from pkcard.pin import PinRef
from pkcard.secret import Secret

__all__ = [
    "KeySlot",
    "PinAnswer",
    "PinOutcome",
    "PkDriver",
    "PkHolder",
    "Profession",
    "parse_holder",
]

TAG_HOLDER = 0x7F61


class Profession(IntEnum):
    DOCTOR = 1
    DENTIST = 2
    NURSE = 3
    PHARMACIST = 4
    BLOOD_DONATION_STAFF = 5
    OTHER_HEALTH_WORKER = 6
    ADMINISTRATIVE = 7


class KeySlot(IntEnum):
    """Certificates on the PK, by what their key does."""

    AUTHENTICATION = 1  # EF.C.Auth, key 01
    SIGNATURE = 2  # EF.C.Sign, key 02 (KPEP)


class PinOutcome(IntEnum):
    """How the card answered a PIN command, as the driver saw it."""

    OK = 1  # 9000
    WRONG = 2  # 63Cx, with tries left
    BLOCKED = 3  # 6983
    NOT_USABLE = 4  # 6984: SPIN in transport state, TPIN used
    NOT_FOUND = 5  # 6A88: the card has no such reference


@dataclass(frozen=True)
class PinAnswer:
    outcome: PinOutcome
    tries_left: int | None = None  # set for WRONG


@dataclass(frozen=True)
class PkHolder:
    """EF.Holder. The birth date is only for the PIN policy."""

    name: str
    holder_id: str
    profession: Profession
    birth_date: date


def parse_holder(ef: bytes) -> PkHolder:
    """EF.Holder (template 7F61, docs/card-profile.md), as every PK driver reads it."""
    fields = tlv.parse_dict(tlv.Tlv.unpack(TAG_HOLDER, ef))
    holder_id = required(fields, 0xDF10).decode("ascii", errors="replace")
    if not holder_id.isdigit():
        raise FormatError("holder id must be ASCII digits")
    return PkHolder(
        name=parse_text(required(fields, 0x5F20), "holder name"),
        holder_id=holder_id,
        profession=parse_enum(Profession, required(fields, 0xDF11), "profession"),
        birth_date=parse_date(required(fields, 0xDF12)),
    )


class PkDriver(abc.ABC):
    """The PK's commands, typed. No rules: those live in :class:`~pkcard.pk.ProfessionalCard`."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """An exclusive transaction on the card."""

    @abc.abstractmethod
    def select(self) -> None:
        """Select the PK application; :class:`WrongCardKind` if absent."""

    @abc.abstractmethod
    def read_card_info(self) -> CardInfo: ...

    @abc.abstractmethod
    def read_holder(self) -> PkHolder: ...

    @abc.abstractmethod
    def read_certificate(self, slot: KeySlot) -> bytes | None:
        """The certificate's DER, or ``None`` when the card has none in that slot."""

    @abc.abstractmethod
    def pin_answer(self, ref: PinRef) -> PinAnswer:
        """The reference's state without presenting a secret (spends no try)."""

    @abc.abstractmethod
    def verify(self, ref: PinRef, secret: Secret) -> PinAnswer: ...

    @abc.abstractmethod
    def change_reference_data(self, ref: PinRef, old: Secret, new: Secret) -> PinAnswer: ...

    @abc.abstractmethod
    def reset_retry_counter(self, puk: Secret, new_pin: Secret) -> PinAnswer:
        """Unblock the PIN with the PUK; a WRONG answer counts the PUK's tries."""

    @abc.abstractmethod
    def activate_signature(self, tpin: Secret, new_spin: Secret) -> PinAnswer:
        """Set the first SPIN with the TPIN; a WRONG answer counts the TPIN's tries."""

    # The key commands report, whatever the path to the card, a key used before
    # its secret was verified as KeyNeedsPin and a missing key as KeyNotFound
    # (pkcard.errors), never as a status word.

    @abc.abstractmethod
    def internal_authenticate(self, digest: bytes) -> bytes:
        """Sign ``digest`` with the authentication key (needs the PIN verified)."""

    @abc.abstractmethod
    def compute_signature(self, digest: bytes) -> bytes:
        """Sign ``digest`` with the KPEP key (needs the SPIN verified just before)."""

    # Secure PIN entry on the reader's PIN pad (pkcard.pinpad). The holder types
    # the secrets on the reader; none of them reaches the host. Drivers without
    # PIN-pad support keep these defaults.

    def verify_on_pad(self, ref: PinRef) -> PinAnswer:
        """VERIFY ``ref`` with the secret typed on the reader's PIN pad."""
        raise NotSupported("this driver has no PIN-pad entry")

    def change_reference_data_on_pad(self, ref: PinRef) -> PinAnswer:
        """CHANGE REFERENCE DATA with the old and new secret typed on the PIN pad."""
        raise NotSupported("this driver has no PIN-pad entry")

    def reset_retry_counter_on_pad(self) -> PinAnswer:
        """RESET RETRY COUNTER with the PUK and the new PIN typed on the PIN pad."""
        raise NotSupported("this driver has no PIN-pad entry")

    def activate_signature_on_pad(self) -> PinAnswer:
        """Signature activation with the TPIN and the new SPIN typed on the PIN pad."""
        raise NotSupported("this driver has no PIN-pad entry")
