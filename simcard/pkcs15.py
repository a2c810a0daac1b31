"""The PKCS#15 structure of the simulated PK (docs/card-profile.md, "PKCS#15").

It describes the PK application's own files, secrets and keys so that a
generic PKCS#15 reader (OpenSC's ``opensc-pkcs11.so``) can use the card:
EF.DIR under the MF names the PK application (DF ``5015``, also selectable by
the PKCS#15 AID); in it EF.ODF points to EF.TokenInfo, the AODF (PIN, PUK,
SPIN), the PrKDF (keys ``01``/``02``), the CDF (EF.C.Auth, EF.C.Sign) and the
DODF (EF.CardInfo, EF.Holder as opaque data objects of application
``pkcard``). All paths are absolute (``3F00 5015 FID``).

The DER objects follow PKCS#15 v1.1 (IMPLICIT TAGS; type attributes are
explicitly tagged ``[1]``), encoded with asn1crypto.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from asn1crypto import core

from simcard.spec import KeyAlgorithm, KeyUse, SecretRef, secret_format

PKCS15_AID = bytes.fromhex("A000000063504B43532D3135")
PK_DF = 0x5015
TOKEN_LABEL = "pkcard PK"
MANUFACTURER = "pkcard simulated card"
DATA_APPLICATION = "pkcard"  # CKA_APPLICATION of the data objects (pkcard.pkcs11)


class Pkcs15Fid(IntEnum):
    """FIDs of the PKCS#15 files: EF.DIR under the MF, the rest in the PK DF."""

    DIR = 0x2F00
    ODF = 0x5031
    TOKEN_INFO = 0x5032
    AODF = 0x4401
    PRKDF = 0x4402
    CDF = 0x4403
    DODF = 0x4404


# --- ASN.1 (PKCS#15 v1.1) -------------------------------------------------------------


class _Path(core.Sequence):
    _fields = [("path", core.OctetString)]


class _ObjectFlags(core.BitString):
    _map = {0: "private", 1: "modifiable"}


class _CommonObjectAttributes(core.Sequence):
    _fields = [
        ("label", core.UTF8String, {"optional": True}),
        ("flags", _ObjectFlags, {"optional": True}),
        ("auth_id", core.OctetString, {"optional": True}),
    ]


class _CommonAuthenticationObjectAttributes(core.Sequence):
    _fields = [("auth_id", core.OctetString)]


class _PinFlags(core.BitString):
    _map = {
        0: "case-sensitive",
        1: "local",
        2: "change-disabled",
        3: "unblock-disabled",
        4: "initialized",
        5: "needs-padding",
        6: "unblockingPin",
        7: "soPin",
    }


class _PinType(core.Enumerated):
    _map = {0: "bcd", 1: "ascii-numeric", 2: "utf8"}


class _PinAttributes(core.Sequence):
    _fields = [
        ("pin_flags", _PinFlags),
        ("pin_type", _PinType),
        ("min_length", core.Integer),
        ("stored_length", core.Integer),
        ("max_length", core.Integer, {"optional": True}),
        ("pin_reference", core.Integer, {"implicit": 0, "optional": True}),
        ("pad_char", core.OctetString, {"optional": True}),
    ]


class _PinObject(core.Sequence):
    _fields = [
        ("common", _CommonObjectAttributes),
        ("class_attributes", _CommonAuthenticationObjectAttributes),
        ("type_attributes", _PinAttributes, {"explicit": 1}),
    ]


class _KeyUsageFlags(core.BitString):
    _map = {
        0: "encrypt",
        1: "decrypt",
        2: "sign",
        3: "signRecover",
        4: "wrap",
        5: "unwrap",
        6: "verify",
        7: "verifyRecover",
        8: "derive",
        9: "nonRepudiation",
    }


class _CommonKeyAttributes(core.Sequence):
    _fields = [
        ("id", core.OctetString),
        ("usage", _KeyUsageFlags),
        ("native", core.Boolean, {"default": True}),
        ("key_reference", core.Integer, {"optional": True}),
    ]


class _RsaKeyAttributes(core.Sequence):
    _fields = [("value", _Path), ("modulus_length", core.Integer)]


class _EcKeyAttributes(core.Sequence):
    _fields = [("value", _Path)]


class _RsaKeyObject(core.Sequence):
    _fields = [
        ("common", _CommonObjectAttributes),
        ("class_attributes", _CommonKeyAttributes),
        ("type_attributes", _RsaKeyAttributes, {"explicit": 1}),
    ]


class _EcKeyObject(core.Sequence):
    _fields = [
        ("common", _CommonObjectAttributes),
        ("class_attributes", _CommonKeyAttributes),
        ("type_attributes", _EcKeyAttributes, {"explicit": 1}),
    ]


class _PrivateKey(core.Choice):
    _alternatives = [
        ("rsa", _RsaKeyObject),
        ("ec", _EcKeyObject, {"implicit": 0}),
    ]


class _CommonCertificateAttributes(core.Sequence):
    _fields = [("id", core.OctetString)]


class _CertificateAttributes(core.Sequence):
    _fields = [("value", _Path)]


class _CertificateObject(core.Sequence):
    _fields = [
        ("common", _CommonObjectAttributes),
        ("class_attributes", _CommonCertificateAttributes),
        ("type_attributes", _CertificateAttributes, {"explicit": 1}),
    ]


class _CommonDataObjectAttributes(core.Sequence):
    _fields = [("application_name", core.UTF8String, {"optional": True})]


class _DataObject(core.Sequence):
    _fields = [
        ("common", _CommonObjectAttributes),
        ("class_attributes", _CommonDataObjectAttributes),
        ("type_attributes", _Path, {"explicit": 1}),
    ]


class _TokenFlags(core.BitString):
    _map = {0: "readonly", 1: "loginRequired", 2: "prnGeneration", 3: "eidCompliant"}


class _TokenInfo(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("serial_number", core.OctetString),
        ("manufacturer_id", core.UTF8String, {"optional": True}),
        ("label", core.UTF8String, {"implicit": 0, "optional": True}),
        ("token_flags", _TokenFlags),
    ]


# --- the card's objects -----------------------------------------------------------------


@dataclass(frozen=True)
class Pkcs15Key:
    """One key of the card as the PrKDF lists it, with its certificate file."""

    ref: int
    use: KeyUse
    algorithm: KeyAlgorithm
    certificate_fid: int


@dataclass(frozen=True)
class Pkcs15Files:
    """The generated files: EF.DIR for the MF, the rest for the PK DF."""

    master_files: Mapping[int, bytes]
    application_files: Mapping[int, bytes]


# authId of each secret in the AODF; the PIN is unblocked by the PUK.
_AUTH_IDS = {SecretRef.PIN: 0x01, SecretRef.PUK: 0x02, SecretRef.SPIN: 0x03}
_PIN_LABELS = {SecretRef.PIN: "PIN", SecretRef.PUK: "PUK", SecretRef.SPIN: "SPIN"}


def _path(fid: int) -> _Path:
    return _Path({"path": bytes.fromhex("3F00") + PK_DF.to_bytes(2, "big") + fid.to_bytes(2, "big")})


def _df_path() -> bytes:
    return bytes.fromhex("3F00") + PK_DF.to_bytes(2, "big")


def _pin_object(ref: SecretRef) -> bytes:
    fmt = secret_format(ref)
    flags = {"initialized", "needs-padding"}
    if ref == SecretRef.PUK:
        flags |= {"unblockingPin", "unblock-disabled"}
    if ref == SecretRef.SPIN:
        flags.add("local")  # OpenSC's "sign PIN": a second, local PIN
    common: dict[str, object] = {"label": _PIN_LABELS[ref], "flags": {"private"}}
    if ref == SecretRef.PIN:
        common["auth_id"] = bytes([_AUTH_IDS[SecretRef.PUK]])
    obj = _PinObject(
        {
            "common": common,
            "class_attributes": {"auth_id": bytes([_AUTH_IDS[ref]])},
            "type_attributes": {
                "pin_flags": flags,
                "pin_type": "ascii-numeric",
                "min_length": fmt.min_length,
                "stored_length": fmt.block_length,
                "max_length": fmt.max_length,
                "pin_reference": int(ref),
                "pad_char": b"\xff",
            },
        }
    )
    return bytes(obj.dump())


def _key_object(key: Pkcs15Key) -> bytes:
    auth = key.use == KeyUse.AUTHENTICATION
    guard = SecretRef.PIN if auth else SecretRef.SPIN
    common = {
        "label": "auth" if auth else "sign",
        "flags": {"private"},
        "auth_id": bytes([_AUTH_IDS[guard]]),
    }
    attributes = {
        "id": bytes([key.ref]),
        "usage": {"sign"} if auth else {"sign", "nonRepudiation"},
        "key_reference": key.ref,
    }
    value = _Path({"path": _df_path()})
    if key.algorithm == KeyAlgorithm.RSA_2048:
        choice = _PrivateKey(
            name="rsa",
            value={
                "common": common,
                "class_attributes": attributes,
                "type_attributes": {"value": value, "modulus_length": 2048},
            },
        )
    else:
        choice = _PrivateKey(
            name="ec",
            value={
                "common": common,
                "class_attributes": attributes,
                "type_attributes": {"value": value},
            },
        )
    return bytes(choice.dump())


def _certificate_object(key: Pkcs15Key) -> bytes:
    label = "auth" if key.use == KeyUse.AUTHENTICATION else "sign"
    obj = _CertificateObject(
        {
            "common": {"label": label},
            "class_attributes": {"id": bytes([key.ref])},
            "type_attributes": {"value": _path(key.certificate_fid)},
        }
    )
    return bytes(obj.dump())


def _data_object(label: str, fid: int) -> bytes:
    obj = _DataObject(  # opaqueDO: the untagged alternative of PKCS#15 DataType
        {
            "common": {"label": label},
            "class_attributes": {"application_name": DATA_APPLICATION},
            "type_attributes": _path(fid),
        }
    )
    return bytes(obj.dump())


def _odf_entry(tag: int, fid: int) -> bytes:
    """One ODF choice: ``[tag] EXPLICIT Path`` (constructed context tag)."""
    path = bytes(_path(fid).dump())
    return _tlv(0xA0 | tag, path)


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


# ODF choice tags (PKCS#15 PKCS15Objects): privateKeys [0], certificates [4],
# dataObjects [7], authObjects [8].
_ODF_PRIVATE_KEYS = 0
_ODF_CERTIFICATES = 4
_ODF_DATA_OBJECTS = 7
_ODF_AUTH_OBJECTS = 8


def pk_pkcs15_files(
    serial: str,
    secrets: Sequence[SecretRef],
    keys: Sequence[Pkcs15Key],
    data_objects: Mapping[str, int],
) -> Pkcs15Files:
    """The PKCS#15 files describing a PK with ``secrets``, ``keys`` and data objects.

    ``data_objects`` maps a label (``EF.CardInfo``) to the FID holding its bytes.
    Only the PIN, PUK and SPIN are listed: PKCS#15 has no transport PIN or
    password of this profile's kind.
    """
    pins = [ref for ref in (SecretRef.PIN, SecretRef.PUK, SecretRef.SPIN) if ref in secrets]
    ef_dir = _tlv(
        0x61,
        _tlv(0x4F, PKCS15_AID) + _tlv(0x50, TOKEN_LABEL.encode("ascii")) + _tlv(0x51, _df_path()),
    )
    token_info = _TokenInfo(
        {
            "version": 0,
            "serial_number": serial.encode("ascii"),
            "manufacturer_id": MANUFACTURER,
            "label": TOKEN_LABEL,
            "token_flags": {"readonly", "prnGeneration"},
        }
    )
    odf = (
        _odf_entry(_ODF_PRIVATE_KEYS, Pkcs15Fid.PRKDF)
        + _odf_entry(_ODF_CERTIFICATES, Pkcs15Fid.CDF)
        + _odf_entry(_ODF_DATA_OBJECTS, Pkcs15Fid.DODF)
        + _odf_entry(_ODF_AUTH_OBJECTS, Pkcs15Fid.AODF)
    )
    application_files = {
        Pkcs15Fid.ODF: odf,
        Pkcs15Fid.TOKEN_INFO: bytes(token_info.dump()),
        Pkcs15Fid.AODF: b"".join(_pin_object(ref) for ref in pins),
        Pkcs15Fid.PRKDF: b"".join(_key_object(key) for key in keys),
        Pkcs15Fid.CDF: b"".join(_certificate_object(key) for key in keys),
        Pkcs15Fid.DODF: b"".join(_data_object(label, fid) for label, fid in data_objects.items()),
    }
    return Pkcs15Files({Pkcs15Fid.DIR: ef_dir}, {int(k): v for k, v in application_files.items()})
