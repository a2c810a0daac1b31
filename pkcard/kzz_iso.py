"""The health insurance card's ISO driver: :class:`IsoKzzDriver` (the profile over APDUs)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from pkcard.cardinfo import (
    FID_AUTH_CERT,
    FID_INSURED,
    KZZ_AID,
    CardInfo,
    IssuedKind,
    read_card_info,
    read_ef,
    select_application,
)
from pkcard.kzz_driver import InsuredPerson, KzzDriver, parse_insured
from pkcard.protocol import SmartCardProtocol
from pkcard.transport import SmartCardConnection

__all__ = ["IsoKzzDriver"]

INS_INTERNAL_AUTHENTICATE = 0x88
KEY_CARD_AUTH = 0x01


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
