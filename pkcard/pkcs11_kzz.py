"""A :class:`~pkcard.kzz.KzzDriver` over a PKCS#11 module (PyKCS11).

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

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import PyKCS11

from pkcard.cardinfo import CardInfo, IssuedKind, parse_card_info
from pkcard.errors import FormatError, NotSupported, WrongCardKind
from pkcard.kzz import InsuredPerson, KzzDriver, parse_insured
from pkcard.pkcs11 import (
    LABEL_CARD_INFO,
    KeyId,
    Pkcs11Module,
    Pkcs11Token,
    TokenSelector,
    rsa_pss_sha256,
)

__all__ = ["LABEL_INSURED", "Pkcs11KzzDriver"]

LABEL_INSURED = "EF.Insured"
_SHA256_LENGTH = 32


class Pkcs11KzzDriver(KzzDriver):
    """:class:`~pkcard.kzz.KzzDriver` over the token ``card`` of a PKCS#11 module.

    Call :meth:`close` to close the session; the module stays its owner's.
    """

    def __init__(self, module: Pkcs11Module, card: TokenSelector) -> None:
        self._card = Pkcs11Token(module, card)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._card.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def transaction(self) -> AbstractContextManager[None]:
        """Serialises this driver's operations; the module locks the token itself."""
        return self._locked()

    def select(self) -> None:
        self._card.open()

    def read_card_info(self) -> CardInfo:
        info = parse_card_info(self._card.data_object(LABEL_CARD_INFO))
        if info.kind is not IssuedKind.KZZ:
            raise WrongCardKind("EF.CardInfo says this is not a KZZ")
        return info

    def read_insured(self) -> InsuredPerson:
        return parse_insured(self._card.data_object(LABEL_INSURED))

    def read_certificate(self) -> bytes:
        handle = self._card.find_key_object(KeyId.AUTH, PyKCS11.CKO_CERTIFICATE)
        if handle is None:
            raise FormatError("the KZZ token has no authentication certificate")
        return self._card.value(handle)

    def internal_authenticate(self, digest: bytes) -> bytes:
        if len(digest) != _SHA256_LENGTH:
            raise FormatError("the hash must be a 32-byte SHA-256 digest")
        handle = self._card.find_key_object(KeyId.AUTH, PyKCS11.CKO_PRIVATE_KEY)
        if handle is None:
            raise NotSupported("the module exposes no authentication key of this KZZ")
        key_type = self._card.key_type(KeyId.AUTH, handle)
        if key_type == PyKCS11.CKK_EC:
            return self._card.sign(handle, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA))
        if key_type == PyKCS11.CKK_RSA:
            return self._card.sign(handle, digest, rsa_pss_sha256())
        raise NotSupported("the KZZ's authentication key is neither EC nor RSA")
