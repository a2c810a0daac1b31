"""A :class:`~pkcard.kzz_driver.KzzDriver` over a PKCS#11 module (through :mod:`pkcard.pkcs11`).

Where a module exposes a health insurance card (KZZ) as a token, this driver
lets :class:`~pkcard.kzz.HealthInsuranceCard` read it and have it sign the
proof of presence, as the APDU driver does. The token carries (docs/pkcs11.md):

* EF.CardInfo and EF.Insured: public ``CKO_DATA`` objects of application
  ``pkcard``, labelled ``EF.CardInfo`` / ``EF.Insured``, holding the bytes
  docs/card-profile.md defines;
* the card authentication certificate and key, found by ``CKA_ID`` 01, label
  ``auth`` or key usage (:meth:`pkcard.pkcs11.Pkcs11Token.find_key_object`).

A KZZ has no secret: the key is a public object (``CKA_PRIVATE`` false), usable
without C_Login. It signs with CKM_ECDSA (raw ``r || s``) or, for an RSA key,
RSASSA-PSS (SHA-256, salt 32), the schemes the backend checks.
"""

from __future__ import annotations

from pkcard.cardinfo import CardInfo, IssuedKind
from pkcard.errors import FormatError, NotSupported
from pkcard.kzz_driver import InsuredPerson, KzzDriver, parse_insured
from pkcard.pkcs11 import KeyId, Pkcs11Module, Pkcs11Serialised, Pkcs11Token, TokenSelector

__all__ = ["LABEL_INSURED", "Pkcs11KzzDriver"]

LABEL_INSURED = "EF.Insured"


class Pkcs11KzzDriver(Pkcs11Serialised, KzzDriver):
    """:class:`~pkcard.kzz.KzzDriver` over the token ``card`` of a PKCS#11 module.

    Call :meth:`close` to close the session; the module stays its owner's.
    """

    def __init__(self, module: Pkcs11Module, card: TokenSelector) -> None:
        super().__init__()
        self._card = Pkcs11Token(module, card)

    def close(self) -> None:
        with self._lock:
            self._card.close()

    def select(self) -> None:
        self._card.open()

    def read_card_info(self) -> CardInfo:
        return self._card.card_info(IssuedKind.KZZ)

    def read_insured(self) -> InsuredPerson:
        return parse_insured(self._card.data_object(LABEL_INSURED))

    def read_certificate(self) -> bytes:
        der = self._card.certificate(KeyId.AUTH)
        if der is None:
            raise FormatError("the KZZ token has no authentication certificate")
        return der

    def internal_authenticate(self, digest: bytes) -> bytes:
        handle = self._card.private_key(KeyId.AUTH)
        if handle is None:
            raise NotSupported("the module exposes no authentication key of this KZZ")
        return self._card.authenticate(KeyId.AUTH, handle, digest)
