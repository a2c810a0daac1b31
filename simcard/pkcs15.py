"""The PKCS#15 structure of the simulated PK (docs/card-profile.md, "PKCS#15").

It describes the PK application's own files, secrets and keys so that a
generic PKCS#15 reader (OpenSC's ``opensc-pkcs11.so``) can use the card:
EF.DIR under the MF names the PK application (DF ``5015``, also selectable by
the PKCS#15 AID); in it EF.ODF points to EF.TokenInfo, the AODF (PIN, PUK,
SPIN), the PrKDF (keys ``01``/``02``), the CDF (EF.C.Auth, EF.C.Sign) and the
DODF (EF.CardInfo, EF.Holder as opaque data objects of application
``pkcard``). All paths are absolute (``3F00 5015 FID``).

The DER objects follow PKCS#15 v1.1 (IMPLICIT TAGS; type attributes are
explicitly tagged ``[1]``), written by the small encoder below: the card side
stays independent of the host-side parsers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from pkcard.simcard.spec import PIN_PAD_BYTE, KeyAlgorithm, KeyUse, SecretRef, secret_format

PKCS15_AID = bytes.fromhex("A000000063504B43532D3135")
PK_DF = 0x5015
MF_PATH = bytes.fromhex("3F00")
TOKEN_LABEL = "pkcard PK"  # noqa: S105 - a token label, not a secret
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


# --- DER (PKCS#15 v1.1: IMPLICIT TAGS; type attributes are EXPLICIT [1]) ------------------


def _der(tag: int, value: bytes) -> bytes:
    """One DER object with a one-byte tag."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _utf8(text: str) -> bytes:
    return _der(0x0C, text.encode("utf-8"))


def _octets(value: bytes) -> bytes:
    return _der(0x04, value)


def _integer(value: int, tag: int = 0x02) -> bytes:
    """A non-negative INTEGER (a leading 00 keeps 0x80..0xFF positive)."""
    return _der(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _bits(*named: IntEnum) -> bytes:
    """A named-bit BIT STRING in DER: bit 0 is the first bit, trailing zero bits dropped."""
    if not named:
        return _der(0x03, b"\x00")
    highest = max(int(bit) for bit in named)
    size = highest // 8 + 1
    value = 0
    for bit in named:
        value |= 1 << (size * 8 - 1 - int(bit))
    return _der(0x03, bytes([size * 8 - 1 - highest]) + value.to_bytes(size, "big"))


def _path(fid: int | None = None) -> bytes:
    """Path ::= SEQUENCE { path OCTET STRING }: the PK DF, or an EF in it."""
    path = MF_PATH + PK_DF.to_bytes(2, "big")
    if fid is not None:
        path += fid.to_bytes(2, "big")
    return _seq(_octets(path))


class _ObjectFlag(IntEnum):
    PRIVATE = 0


class _PinFlag(IntEnum):
    LOCAL = 1
    UNBLOCK_DISABLED = 3
    INITIALIZED = 4
    NEEDS_PADDING = 5
    UNBLOCKING_PIN = 6


class _KeyUsage(IntEnum):
    SIGN = 2
    NON_REPUDIATION = 9


class _TokenFlag(IntEnum):
    READONLY = 0
    PRN_GENERATION = 2


_PIN_TYPE_ASCII_NUMERIC = 1
_TAG_PIN_REFERENCE = 0x80  # [0] IMPLICIT INTEGER
_TAG_TYPE_ATTRIBUTES = 0xA1  # [1] EXPLICIT
_TAG_EC_KEY = 0xA0  # privateECKey [0]
_P256_FIELD_SIZE = 256
_TAG_TOKEN_LABEL = 0x80  # label [0] IMPLICIT UTF8String


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


def _common(label: str, *, private: bool = False, auth_id: int | None = None) -> bytes:
    """CommonObjectAttributes."""
    flags = _bits(_ObjectFlag.PRIVATE) if private else b""
    auth = _octets(bytes([auth_id])) if auth_id is not None else b""
    return _seq(_utf8(label), flags, auth)


def _pin_object(ref: SecretRef) -> bytes:
    fmt = secret_format(ref)
    flags = [_PinFlag.INITIALIZED, _PinFlag.NEEDS_PADDING]
    if ref == SecretRef.PUK:
        flags += [_PinFlag.UNBLOCKING_PIN, _PinFlag.UNBLOCK_DISABLED]
    if ref == SecretRef.SPIN:
        flags.append(_PinFlag.LOCAL)  # OpenSC's "sign PIN": a second, local PIN
    unblocked_by = _AUTH_IDS[SecretRef.PUK] if ref == SecretRef.PIN else None
    attributes = _seq(
        _bits(*flags),
        _integer(_PIN_TYPE_ASCII_NUMERIC, 0x0A),
        _integer(fmt.min_length),
        _integer(fmt.block_length),
        _integer(fmt.max_length),
        _integer(int(ref), _TAG_PIN_REFERENCE),
        _octets(bytes([PIN_PAD_BYTE])),
    )
    return _seq(
        _common(_PIN_LABELS[ref], private=True, auth_id=unblocked_by),
        _seq(_octets(bytes([_AUTH_IDS[ref]]))),
        _der(_TAG_TYPE_ATTRIBUTES, attributes),
    )


def _key_object(key: Pkcs15Key) -> bytes:
    auth = key.use == KeyUse.AUTHENTICATION
    guard = SecretRef.PIN if auth else SecretRef.SPIN
    usage = (_KeyUsage.SIGN,) if auth else (_KeyUsage.SIGN, _KeyUsage.NON_REPUDIATION)
    common = _common("auth" if auth else "sign", private=True, auth_id=_AUTH_IDS[guard])
    key_attributes = _seq(_octets(bytes([key.ref])), _bits(*usage), _integer(key.ref))
    if key.algorithm == KeyAlgorithm.RSA_2048:
        typed = _seq(_path(), _integer(2048))
        return _seq(common, key_attributes, _der(_TAG_TYPE_ATTRIBUTES, typed))
    typed = _seq(_path(), _integer(_P256_FIELD_SIZE))  # fieldSize: OpenSC's extension
    return _der(_TAG_EC_KEY, common + key_attributes + _der(_TAG_TYPE_ATTRIBUTES, typed))


def _certificate_object(key: Pkcs15Key) -> bytes:
    label = "auth" if key.use == KeyUse.AUTHENTICATION else "sign"
    typed = _seq(_path(key.certificate_fid))
    return _seq(
        _seq(_utf8(label)),
        _seq(_octets(bytes([key.ref]))),
        _der(_TAG_TYPE_ATTRIBUTES, typed),
    )


def _data_object(label: str, fid: int) -> bytes:
    """An opaqueDO (the untagged alternative of PKCS#15 DataType)."""
    return _seq(
        _seq(_utf8(label)),
        _seq(_utf8(DATA_APPLICATION)),
        _der(_TAG_TYPE_ATTRIBUTES, _path(fid)),
    )


def _odf_entry(tag: int, fid: int) -> bytes:
    """One ODF choice: ``[tag]`` wrapping the Path of the directory file."""
    return _der(0xA0 | tag, _path(fid))


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
    df_path = MF_PATH + PK_DF.to_bytes(2, "big")
    ef_dir = _der(
        0x61,
        _der(0x4F, PKCS15_AID) + _der(0x50, TOKEN_LABEL.encode("ascii")) + _der(0x51, df_path),
    )
    token_info = _seq(
        _integer(0),
        _octets(serial.encode("ascii")),
        _utf8(MANUFACTURER),
        _der(_TAG_TOKEN_LABEL, TOKEN_LABEL.encode("utf-8")),
        _bits(_TokenFlag.READONLY, _TokenFlag.PRN_GENERATION),
    )
    odf = (
        _odf_entry(_ODF_PRIVATE_KEYS, Pkcs15Fid.PRKDF)
        + _odf_entry(_ODF_CERTIFICATES, Pkcs15Fid.CDF)
        + _odf_entry(_ODF_DATA_OBJECTS, Pkcs15Fid.DODF)
        + _odf_entry(_ODF_AUTH_OBJECTS, Pkcs15Fid.AODF)
    )
    application_files = {
        Pkcs15Fid.ODF: odf,
        Pkcs15Fid.TOKEN_INFO: token_info,
        Pkcs15Fid.AODF: b"".join(_pin_object(ref) for ref in pins),
        Pkcs15Fid.PRKDF: b"".join(_key_object(key) for key in keys),
        Pkcs15Fid.CDF: b"".join(_certificate_object(key) for key in keys),
        Pkcs15Fid.DODF: b"".join(_data_object(label, fid) for label, fid in data_objects.items()),
    }
    return Pkcs15Files({Pkcs15Fid.DIR: ef_dir}, {int(k): v for k, v in application_files.items()})
