"""SoftHSM2 tokens that mirror a simulated PK profile (tests, benchmarks, demos).

:func:`provision_pk` turns a PK profile (fixtures/apdu/profiles) into the two
tokens :class:`pkcard.pkcs11.Pkcs11PkDriver` expects (docs/pkcs11.md):

* the card token, labelled with the card serial: user PIN = PIN, SO PIN = PUK,
  the authentication key and certificate (``CKA_ID`` 01, label ``auth``), the
  KPEP certificate (02) and the EF.CardInfo / EF.Holder data objects, read
  from a simulated card built from the same profile;
* for a PK with a KPEP, the signature token labelled ``<serial> KPEP``: user
  PIN = SPIN, the KPEP key and certificate (``CKA_ID`` 02, label ``sign``).

SoftHSM2 reads its configuration when the module is first loaded in a
process: write one with :func:`write_config` and load the module inside
:func:`softhsm_conf`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PyKCS11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pkcard.cardinfo import (
    FID_CARD_INFO,
    FID_HOLDER,
    FID_INSURED,
    KZZ_AID,
    PK_AID,
    read_ef,
    select_application,
)
from pkcard.errors import ProfileError
from pkcard.pkcs11 import DATA_APPLICATION, KeyId, Pkcs11Module
from pkcard.protocol import SmartCardProtocol
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import CardProfile, KeySpec
from pkcard.simcard.spec import CardKind, KeyUse, SecretRef, SecretState

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # DER OID prime256v1
_KPEP_SUFFIX = " KPEP"


@dataclass(frozen=True)
class SoftHsmPk:
    """The tokens provisioned for one PK: labels and serials to select them by."""

    card_label: str
    card_serial: str
    signature_label: str | None
    signature_serial: str | None


def write_config(directory: Path) -> Path:
    """Write ``softhsm2.conf`` with a token directory under ``directory``; returns its path."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return conf


@contextmanager
def softhsm_conf(conf: Path) -> Iterator[None]:
    """Point ``SOFTHSM2_CONF`` at ``conf`` for the block (load the module inside it)."""
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOFTHSM2_CONF"]
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def card_files(profile: CardProfile) -> tuple[bytes, bytes]:
    """EF.CardInfo and EF.Holder (EF.Insured of a KZZ) as the simulated card serves them."""
    protocol = SmartCardProtocol(InProcessConnection(SimulatedCard.from_profile(profile)))
    if profile.kind == CardKind.KZZ:
        select_application(protocol, KZZ_AID)
        return read_ef(protocol, FID_CARD_INFO), read_ef(protocol, FID_INSURED)
    select_application(protocol, PK_AID)
    return read_ef(protocol, FID_CARD_INFO), read_ef(protocol, FID_HOLDER)


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _key_template(spec: KeySpec, key_id: KeyId) -> list[tuple[int, Any]]:
    key = serialization.load_pem_private_key(
        spec.key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
    )
    common: list[tuple[int, Any]] = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, True),
        (PyKCS11.CKA_SENSITIVE, True),
        (PyKCS11.CKA_EXTRACTABLE, False),
        (PyKCS11.CKA_SIGN, True),
        (PyKCS11.CKA_ID, bytes([key_id])),
        (PyKCS11.CKA_LABEL, key_id.label),
    ]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        return [
            *common,
            (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
            (PyKCS11.CKA_EC_PARAMS, _P256_PARAMS),
            (PyKCS11.CKA_VALUE, scalar),
        ]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        return [
            *common,
            (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
            (PyKCS11.CKA_MODULUS, _int_bytes(numbers.public_numbers.n)),
            (PyKCS11.CKA_PUBLIC_EXPONENT, _int_bytes(numbers.public_numbers.e)),
            (PyKCS11.CKA_PRIVATE_EXPONENT, _int_bytes(numbers.d)),
            (PyKCS11.CKA_PRIME_1, _int_bytes(numbers.p)),
            (PyKCS11.CKA_PRIME_2, _int_bytes(numbers.q)),
            (PyKCS11.CKA_EXPONENT_1, _int_bytes(numbers.dmp1)),
            (PyKCS11.CKA_EXPONENT_2, _int_bytes(numbers.dmq1)),
            (PyKCS11.CKA_COEFFICIENT, _int_bytes(numbers.iqmp)),
        ]
    raise ProfileError(f"{spec.key_path.name}: neither EC nor RSA")


def _certificate_template(spec: KeySpec, key_id: KeyId) -> list[tuple[int, Any]]:
    cert = x509.load_pem_x509_certificate(spec.certificate_path.read_bytes())
    serial = _int_bytes(cert.serial_number)
    if serial[0] & 0x80:
        serial = b"\x00" + serial
    return [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE),
        (PyKCS11.CKA_CERTIFICATE_TYPE, PyKCS11.CKC_X_509),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, False),
        (PyKCS11.CKA_ID, bytes([key_id])),
        (PyKCS11.CKA_LABEL, key_id.label),
        (PyKCS11.CKA_SUBJECT, cert.subject.public_bytes()),
        (PyKCS11.CKA_ISSUER, cert.issuer.public_bytes()),
        (PyKCS11.CKA_SERIAL_NUMBER, bytes([0x02, len(serial)]) + serial),
        (PyKCS11.CKA_VALUE, cert.public_bytes(serialization.Encoding.DER)),
    ]


def _data_template(label: str, value: bytes) -> list[tuple[int, Any]]:
    return [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_DATA),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, False),
        (PyKCS11.CKA_APPLICATION, DATA_APPLICATION),
        (PyKCS11.CKA_LABEL, label),
        (PyKCS11.CKA_VALUE, value),
    ]


def _init_token(lib: Any, label: str, so_pin: str, user_pin: str) -> tuple[int, str]:
    """Initialise the first free slot; returns the token's slot and serial."""
    free = [
        s
        for s in lib.getSlotList(tokenPresent=True)
        if not lib.getTokenInfo(s).flags & PyKCS11.CKF_TOKEN_INITIALIZED
    ]
    if not free:
        raise ProfileError("SoftHSM2 has no free slot")
    lib.initToken(free[0], so_pin, label)
    for slot in lib.getSlotList(tokenPresent=True):
        info = lib.getTokenInfo(slot)
        if str(info.label).rstrip(" \x00") == label:
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
            session.login(so_pin, PyKCS11.CKU_SO)
            session.initPin(user_pin)
            session.logout()
            session.closeSession()
            return int(slot), str(info.serialNumber).rstrip(" \x00")
    raise ProfileError(f"SoftHSM2 lost the token {label} it just initialised")


def _fill(lib: Any, slot: int, pin: str, templates: list[list[tuple[int, Any]]]) -> None:
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    try:
        session.login(pin)
        for template in templates:
            session.createObject(template)
        session.logout()
    finally:
        session.closeSession()


def provision_pk(module: Pkcs11Module, profile: CardProfile) -> SoftHsmPk:
    """Create the card token (and the signature token, if any) of a PK profile."""
    if profile.kind != CardKind.PK:
        raise ProfileError(f"profile {profile.name} is not a PK")
    lib = module.lib
    serial = profile.card_info.serial
    pin, puk = profile.secret_value(SecretRef.PIN), profile.secret_value(SecretRef.PUK)
    card_info, holder = card_files(profile)
    auth = profile.key(KeyUse.AUTHENTICATION)
    card_objects = [
        _key_template(auth, KeyId.AUTH),
        _certificate_template(auth, KeyId.AUTH),
        _data_template("EF.CardInfo", card_info),
        _data_template("EF.Holder", holder),
    ]
    has_kpep = profile.has_key(KeyUse.SIGNATURE)
    if has_kpep:
        card_objects.append(_certificate_template(profile.key(KeyUse.SIGNATURE), KeyId.SIGN))
    card_slot, card_serial = _init_token(lib, serial, puk, pin)
    _fill(lib, card_slot, pin, card_objects)
    if not has_kpep:
        return SoftHsmPk(serial, card_serial, None, None)
    spin_spec = profile.secret(SecretRef.SPIN)
    if spin_spec.state != SecretState.ACTIVE or spin_spec.value is None:
        raise ProfileError(f"profile {profile.name}: SoftHSM2 cannot model a SPIN in transport")
    sign = profile.key(KeyUse.SIGNATURE)
    label = serial + _KPEP_SUFFIX
    sign_slot, sign_serial = _init_token(lib, label, puk, spin_spec.value)
    _fill(
        lib,
        sign_slot,
        spin_spec.value,
        [_key_template(sign, KeyId.SIGN), _certificate_template(sign, KeyId.SIGN)],
    )
    return SoftHsmPk(serial, card_serial, label, sign_serial)


# A card maker's module names objects its own way: the KZZ token uses an ID and
# a label that are not the profile's (01, "auth"), so the driver finds its key
# by the certificate's key usage (docs/pkcs11.md).
KZZ_OBJECT_LABEL = "Card Authentication"


def _vendor_named(template: list[tuple[int, Any]], cka_id: bytes) -> list[tuple[int, Any]]:
    """``template`` with a vendor-style ID and label, public (a KZZ has no secret)."""
    renamed = {PyKCS11.CKA_ID: cka_id, PyKCS11.CKA_LABEL: KZZ_OBJECT_LABEL,
               PyKCS11.CKA_PRIVATE: False}
    return [(attribute, renamed.get(attribute, value)) for attribute, value in template]


def provision_kzz(module: Pkcs11Module, profile: CardProfile) -> SoftHsmPk:
    """Create the token of a KZZ profile: EF.CardInfo, EF.Insured, the public auth key.

    The key is a public object (``CKA_PRIVATE`` false): the KZZ proves presence
    without a PIN. SoftHSM2 still wants a user PIN to create objects: a random
    one, forgotten at once. Objects carry a vendor-style ID (the SHA-1 of the
    certificate) and label.
    """
    if profile.kind != CardKind.KZZ:
        raise ProfileError(f"profile {profile.name} is not a KZZ")
    lib = module.lib
    serial = profile.card_info.serial
    card_info, insured = card_files(profile)
    auth = profile.key(KeyUse.AUTHENTICATION)
    cka_id = x509.load_pem_x509_certificate(auth.certificate_path.read_bytes()).fingerprint(
        hashes.SHA1())  # noqa: S303 - an object ID, as vendor modules derive it, not security
    throwaway = secrets.token_hex(8)
    slot, token_serial = _init_token(lib, serial, secrets.token_hex(8), throwaway)
    _fill(lib, slot, throwaway, [
        _vendor_named(_key_template(auth, KeyId.AUTH), cka_id),
        _vendor_named(_certificate_template(auth, KeyId.AUTH), cka_id),
        _data_template("EF.CardInfo", card_info),
        _data_template("EF.Insured", insured),
    ])
    return SoftHsmPk(serial, token_serial, None, None)
