"""An in-memory PKCS#11 module with real try counters, for what SoftHSM2 cannot model.

It implements only the PyKCS11 surface pkcard.pkcs11 uses, with the PK's
semantics: wrong PINs count down and lock (flags COUNT_LOW, FINAL_TRY,
LOCKED), a locked SO PIN (PUK) locks the user PIN for good, and a
signature token whose user PIN is "to be changed" holds the TPIN (transport
state). Keys sign with ``cryptography``. Not a PKCS#11 implementation: a
test double for the driver's flag mapping, checked by the same suite as the
real backends.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import PyKCS11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from pkcard.pkcs11 import DATA_APPLICATION, KeyId, digest_info_sha256
from pkcard.simcard.profile import CardProfile, KeySpec
from pkcard.simcard.softhsm import card_files
from pkcard.simcard.spec import KeyUse, SecretRef, SecretState

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class FakePin:
    value: bytes
    max_tries: int
    tries_left: int
    to_be_changed: bool = False

    def check(self, presented: bytes) -> int:
        if self.tries_left == 0:
            return int(PyKCS11.CKR_PIN_LOCKED)
        if hmac.compare_digest(presented, self.value):
            self.tries_left = self.max_tries
            return int(PyKCS11.CKR_OK)
        self.tries_left -= 1
        return int(PyKCS11.CKR_PIN_INCORRECT)

    def flags(self, count_low: int, final_try: int, locked: int, to_be_changed: int) -> int:
        flags = 0
        if self.tries_left == 0:
            flags |= locked
        elif self.tries_left == 1:
            flags |= final_try
        if 0 < self.tries_left < self.max_tries:
            flags |= count_low
        if self.to_be_changed:
            flags |= to_be_changed
        return flags


@dataclass
class FakeToken:
    label: str
    serial: str
    user: FakePin
    so: FakePin
    objects: list[dict[int, Any]] = field(default_factory=list)
    keys: dict[int, PrivateKey] = field(default_factory=dict)  # object index -> key
    logged_in: int | None = None  # CKU_USER or CKU_SO

    @property
    def flags(self) -> int:
        flags = PyKCS11.CKF_TOKEN_INITIALIZED | PyKCS11.CKF_USER_PIN_INITIALIZED
        flags |= PyKCS11.CKF_LOGIN_REQUIRED
        flags |= self.user.flags(
            PyKCS11.CKF_USER_PIN_COUNT_LOW,
            PyKCS11.CKF_USER_PIN_FINAL_TRY,
            PyKCS11.CKF_USER_PIN_LOCKED,
            PyKCS11.CKF_USER_PIN_TO_BE_CHANGED,
        )
        flags |= self.so.flags(
            PyKCS11.CKF_SO_PIN_COUNT_LOW,
            PyKCS11.CKF_SO_PIN_FINAL_TRY,
            PyKCS11.CKF_SO_PIN_LOCKED,
            PyKCS11.CKF_SO_PIN_TO_BE_CHANGED,
        )
        return int(flags)


@dataclass(frozen=True)
class _Info:
    label: str = ""
    serialNumber: str = ""
    manufacturerID: str = "pkcard fake"
    model: str = "fake"
    flags: int = 0
    slotDescription: str = ""
    state: int = 0
    slotID: int = 0


class FakeSession:
    def __init__(self, token: FakeToken, slot: int = 0) -> None:
        self._token = token
        self._slot = slot

    def getSessionInfo(self) -> _Info:
        state = {
            PyKCS11.CKU_USER: PyKCS11.CKS_RW_USER_FUNCTIONS,
            PyKCS11.CKU_SO: PyKCS11.CKS_RW_SO_FUNCTIONS,
        }.get(self._token.logged_in, PyKCS11.CKS_RW_PUBLIC_SESSION)
        return _Info(state=int(state), slotID=self._slot)

    def login(self, pin: bytes, user_type: int = PyKCS11.CKU_USER) -> None:
        token = self._token
        if token.logged_in is not None:
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_USER_ALREADY_LOGGED_IN)
        secret = token.so if user_type == PyKCS11.CKU_SO else token.user
        code = secret.check(bytes(pin))
        if user_type == PyKCS11.CKU_SO and token.so.tries_left == 0:
            token.user.tries_left = 0  # the PK: an exhausted PUK blocks the PIN for good
        if code != PyKCS11.CKR_OK:
            raise PyKCS11.PyKCS11Error(code)
        token.logged_in = user_type

    def logout(self) -> None:
        if self._token.logged_in is None:
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_USER_NOT_LOGGED_IN)
        self._token.logged_in = None

    def setPin(self, old: bytes, new: bytes) -> None:
        user = self._token.user
        code = user.check(bytes(old))
        if code != PyKCS11.CKR_OK:
            raise PyKCS11.PyKCS11Error(code)
        user.value, user.to_be_changed = bytes(new), False

    def initPin(self, new: bytes) -> None:
        if self._token.logged_in != PyKCS11.CKU_SO:
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_USER_NOT_LOGGED_IN)
        user = self._token.user
        user.value, user.tries_left, user.to_be_changed = bytes(new), user.max_tries, False

    def _visible(self, index: int) -> bool:
        private = bool(self._token.objects[index].get(PyKCS11.CKA_PRIVATE))
        return not private or self._token.logged_in == PyKCS11.CKU_USER

    def findObjects(self, template: list[tuple[int, Any]]) -> list[int]:
        return [
            index
            for index, obj in enumerate(self._token.objects)
            if self._visible(index) and all(obj.get(k) == v for k, v in template)
        ]

    def getAttributeValue(
        self, handle: int, attributes: list[int], all_as_binary: bool = False
    ) -> list[Any]:
        if not self._visible(handle):
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_OBJECT_HANDLE_INVALID)
        return [self._token.objects[handle][a] for a in attributes]

    def sign(self, handle: int, data: bytes, mechanism: Any) -> bytes:
        if self._token.logged_in != PyKCS11.CKU_USER:
            raise PyKCS11.PyKCS11Error(PyKCS11.CKR_USER_NOT_LOGGED_IN)
        key = self._token.keys[handle]
        kind = int(mechanism.to_native().mechanism)
        digest = bytes(data)
        prehashed = utils.Prehashed(hashes.SHA256())
        if kind == PyKCS11.CKM_ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(prehashed)))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if kind == PyKCS11.CKM_RSA_PKCS and isinstance(key, rsa.RSAPrivateKey):
            hashed = digest[-32:]
            if digest_info_sha256(hashed) != digest:
                raise PyKCS11.PyKCS11Error(PyKCS11.CKR_DATA_INVALID)
            return key.sign(hashed, padding.PKCS1v15(), prehashed)
        if kind == PyKCS11.CKM_RSA_PKCS_PSS and isinstance(key, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(digest, pss, prehashed)
        raise PyKCS11.PyKCS11Error(PyKCS11.CKR_MECHANISM_INVALID)

    def closeSession(self) -> None:
        return


class FakeLibrary:
    """The PyKCS11Lib surface, over a list of tokens (slot = index)."""

    def __init__(self, tokens: list[FakeToken]) -> None:
        self.tokens = tokens

    def getSlotList(self, tokenPresent: bool = False) -> list[int]:
        return list(range(len(self.tokens)))

    def getTokenInfo(self, slot: int) -> _Info:
        token = self.tokens[slot]
        return _Info(label=token.label, serialNumber=token.serial, flags=token.flags)

    def getSlotInfo(self, slot: int) -> _Info:
        return _Info(slotDescription=f"Fake reader {slot:02d}", flags=PyKCS11.CKF_TOKEN_PRESENT)

    def openSession(self, slot: int, flags: int = 0) -> FakeSession:
        return FakeSession(self.tokens[slot], slot)

    def unload(self) -> None:
        return


def _add_key(token: FakeToken, spec: KeySpec, key_id: KeyId) -> None:
    key = serialization.load_pem_private_key(
        spec.key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    key_type = PyKCS11.CKK_EC if isinstance(key, ec.EllipticCurvePrivateKey) else PyKCS11.CKK_RSA
    token.keys[len(token.objects)] = key
    token.objects.append(
        {
            PyKCS11.CKA_CLASS: PyKCS11.CKO_PRIVATE_KEY,
            PyKCS11.CKA_ID: bytes([key_id]),
            PyKCS11.CKA_KEY_TYPE: key_type,
            PyKCS11.CKA_PRIVATE: True,
        }
    )
    _add_certificate(token, spec, key_id)


def _add_certificate(token: FakeToken, spec: KeySpec, key_id: KeyId) -> None:
    cert = x509.load_pem_x509_certificate(spec.certificate_path.read_bytes())
    token.objects.append(
        {
            PyKCS11.CKA_CLASS: PyKCS11.CKO_CERTIFICATE,
            PyKCS11.CKA_ID: bytes([key_id]),
            PyKCS11.CKA_VALUE: cert.public_bytes(serialization.Encoding.DER),
        }
    )


def fake_pk(profile: CardProfile) -> list[FakeToken]:
    """The card token and (with a KPEP) the signature token of a PK profile."""
    pin, puk = profile.secret(SecretRef.PIN), profile.secret(SecretRef.PUK)
    serial = profile.card_info.serial

    def secret_pin(spec_value: str | None, tries: int, max_tries: int) -> FakePin:
        return FakePin((spec_value or "").encode("ascii"), max_tries, tries)

    card = FakeToken(
        serial,
        serial,
        secret_pin(pin.value, pin.tries_left, 3),
        secret_pin(puk.value, puk.tries_left, 5),
    )
    if puk.tries_left == 0:
        card.user.tries_left = 0
    _add_key(card, profile.key(KeyUse.AUTHENTICATION), KeyId.AUTH)
    info, holder = card_files(profile)
    for label, value in (("EF.CardInfo", info), ("EF.Holder", holder)):
        card.objects.append(
            {
                PyKCS11.CKA_CLASS: PyKCS11.CKO_DATA,
                PyKCS11.CKA_APPLICATION: DATA_APPLICATION,
                PyKCS11.CKA_LABEL: label,
                PyKCS11.CKA_VALUE: value,
            }
        )
    if not profile.has_key(KeyUse.SIGNATURE):
        return [card]
    spin, tpin = profile.secret(SecretRef.SPIN), profile.secret(SecretRef.TPIN)
    if spin.state == SecretState.TRANSPORT:
        user = secret_pin(tpin.value, tpin.tries_left, 3)
        user.to_be_changed = True
    else:
        user = secret_pin(spin.value, spin.tries_left, 3)
    sign = FakeToken(serial + " KPEP", serial + "-2", user, secret_pin(puk.value, 5, 5))
    _add_key(sign, profile.key(KeyUse.SIGNATURE), KeyId.SIGN)
    _add_certificate(card, profile.key(KeyUse.SIGNATURE), KeyId.SIGN)
    return [card, sign]
