"""The health insurance card (KZZ) application: :class:`HealthInsuranceCard` and its data.

The KZZ carries no secrets. It is read without a PIN, and proves it is
present by signing a host-computed hash with its card authentication key
(INTERNAL AUTHENTICATE, key 01), which the host checks against the card's
certificate (:func:`pkcard.certs.verify_card_signature`). The driver
interface is :mod:`pkcard.kzz_driver`, the APDU driver :mod:`pkcard.kzz_iso`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from pkcard.cardinfo import CardInfo, Environment
from pkcard.certs import SHA256_LENGTH, CertificateInfo, parse_certificate
from pkcard.errors import FormatError
from pkcard.kzz_driver import KzzDriver, ZzzsNumber
from pkcard.kzz_iso import IsoKzzDriver
from pkcard.transport import SmartCardConnection

__all__ = ["HealthInsuranceCard", "KzzCardData"]


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


class HealthInsuranceCard:
    """The KZZ application. Construct per card session: ``HealthInsuranceCard.over(conn)``."""

    def __init__(self, driver: KzzDriver) -> None:
        self._driver = driver

    @classmethod
    def over(cls, connection: SmartCardConnection) -> HealthInsuranceCard:
        return cls(IsoKzzDriver.over(connection))

    @contextmanager
    def _session(self) -> Iterator[None]:
        with self._driver.transaction():
            self._driver.select()
            yield

    def card_info(self) -> CardInfo:
        """EF.CardInfo alone (serial, validity, environment): one short transaction."""
        with self._session():
            return self._driver.read_card_info()

    def read_card(self) -> KzzCardData:
        """Read EF.CardInfo, EF.Insured and the certificate in one transaction."""
        with self._session():
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
        with self._session():
            return self._driver.internal_authenticate(challenge_hash)
