"""The health insurance card (KZZ): driver interface, ISO-profile driver, application.

The KZZ carries no secrets. It is read without a PIN, and proves it is
present by signing a host-computed hash with its card authentication key
(INTERNAL AUTHENTICATE, key 01), which the host checks against the card's
certificate (:func:`pkcard.certs.verify_card_signature`).
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from pkcard import tlv
from pkcard.cardinfo import (
    FID_AUTH_CERT,
    FID_INSURED,
    KZZ_AID,
    CardInfo,
    Environment,
    IssuedKind,
    parse_date,
    parse_text,
    read_card_info,
    read_ef,
    required,
    select_application,
)
from pkcard.certs import SHA256_LENGTH, CertificateInfo, parse_certificate
from pkcard.errors import FormatError
from pkcard.protocol import SmartCardProtocol
from pkcard.transport import SmartCardConnection

__all__ = [
    "HealthInsuranceCard",
    "InsuredPerson",
    "IsoKzzDriver",
    "KzzCardData",
    "KzzDriver",
    "ZzzsNumber",
]

INS_INTERNAL_AUTHENTICATE = 0x88
KEY_CARD_AUTH = 0x01
TAG_INSURED = 0x7F62
ZZZS_NUMBER_LENGTH = 9


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


@dataclass(frozen=True)
class KzzCardData:
    """Everything on a KZZ."""

    zzzs_number: ZzzsNumber
    name: str
    birth_date: date
    card_serial: str
    issuer: str
    valid_from: date
    valid_until: date
    environment: Environment
    certificate: CertificateInfo


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


def parse_insured(ef: bytes) -> InsuredPerson:
    """EF.Insured (template 7F62, docs/card-profile.md), as every KZZ driver reads it."""
    fields = tlv.parse_dict(tlv.Tlv.unpack(TAG_INSURED, ef))
    return InsuredPerson(
        zzzs_number=ZzzsNumber(required(fields, 0xDF20).decode("ascii", errors="replace")),
        name=parse_text(required(fields, 0x5F20), "insured person's name"),
        birth_date=parse_date(required(fields, 0xDF12)),
    )


class IsoKzzDriver(KzzDriver):
    """:class:`KzzDriver` for the documented ISO 7816-4 profile (docs/card-profile.md)."""

    def __init__(self, protocol: SmartCardProtocol) -> None:
        self._protocol = protocol

    @classmethod
    def over(cls, connection: SmartCardConnection) -> IsoKzzDriver:
        return cls(SmartCardProtocol(connection))

    def transaction(self) -> AbstractContextManager[None]:
        return self._protocol.connection.transaction()

    def select(self) -> None:
        select_application(self._protocol, KZZ_AID)

    def read_card_info(self) -> CardInfo:
        return read_card_info(self._protocol, IssuedKind.KZZ)

    def read_insured(self) -> InsuredPerson:
        return parse_insured(read_ef(self._protocol, FID_INSURED))

    def read_certificate(self) -> bytes:
        return read_ef(self._protocol, FID_AUTH_CERT)

    def internal_authenticate(self, digest: bytes) -> bytes:
        return self._protocol.send_apdu(
            0x00, INS_INTERNAL_AUTHENTICATE, 0x00, KEY_CARD_AUTH, digest, le=256
        )


class HealthInsuranceCard:
    """The KZZ application. Construct per card session: ``HealthInsuranceCard.over(conn)``."""

    def __init__(self, driver: KzzDriver) -> None:
        self._driver = driver

    @classmethod
    def over(cls, connection: SmartCardConnection) -> HealthInsuranceCard:
        return cls(IsoKzzDriver.over(connection))

    def card_info(self) -> CardInfo:
        """EF.CardInfo alone (serial, validity, environment): one short transaction."""
        with self._driver.transaction():
            self._driver.select()
            return self._driver.read_card_info()

    def read_card(self) -> KzzCardData:
        """Read EF.CardInfo, EF.Insured and the certificate in one transaction."""
        with self._driver.transaction():
            self._driver.select()
            info = self._driver.read_card_info()
            insured = self._driver.read_insured()
            der = self._driver.read_certificate()
        return KzzCardData(
            zzzs_number=insured.zzzs_number,
            name=insured.name,
            birth_date=insured.birth_date,
            card_serial=info.serial,
            issuer=info.issuer,
            valid_from=info.valid_from,
            valid_until=info.valid_until,
            environment=info.environment,
            certificate=parse_certificate(der),
        )

    def authenticate(self, challenge_hash: bytes) -> bytes:
        """The card's signature over a 32-byte SHA-256 ``challenge_hash`` (proof of presence)."""
        if len(challenge_hash) != SHA256_LENGTH:
            raise FormatError("the challenge hash must be a 32-byte SHA-256 digest")
        with self._driver.transaction():
            self._driver.select()
            return self._driver.internal_authenticate(challenge_hash)
