"""The constants of docs/card-profile.md, as the card side sees them.

Deliberately independent of the host-side codecs in :mod:`pkcard`: the
simulated card and the host drivers each implement the documented profile on
their own, so a mistake on one side shows up as a disagreement in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

PK_AID = bytes.fromhex("F0504B43415244504B")
KZZ_AID = bytes.fromhex("F0504B434152444B5A")

ATR_PREFIX = bytes.fromhex("3B888001")
PK_HISTORICAL = b"PKCARDPK"
KZZ_HISTORICAL = b"PKCARDKZ"

PIN_PAD_BYTE = 0xFF


class Sw(IntEnum):
    """Status words the simulated card answers (61xx, 63Cx, 6Cxx carry a count in SW2)."""

    OK = 0x9000
    MORE_DATA = 0x6100
    END_OF_FILE = 0x6282
    WRONG_SECRET = 0x63C0
    WRONG_LENGTH = 0x6700
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    WRONG_DATA = 0x6A80
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    WRONG_OFFSET = 0x6B00
    WRONG_LE = 0x6C00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


class Ins(IntEnum):
    VERIFY = 0x20
    MANAGE_SECURITY_ENVIRONMENT = 0x22
    CHANGE_REFERENCE_DATA = 0x24
    PERFORM_SECURITY_OPERATION = 0x2A
    RESET_RETRY_COUNTER = 0x2C
    GET_CHALLENGE = 0x84
    INTERNAL_AUTHENTICATE = 0x88
    SELECT = 0xA4
    READ_BINARY = 0xB0
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCA


class Fid(IntEnum):
    CARD_INFO = 0xC001
    HOLDER = 0xC002
    AUTH_CERTIFICATE = 0xC101
    SIGN_CERTIFICATE = 0xC102
    INSURED = 0xD001


class Tag(IntEnum):
    CARD_INFO = 0x7F60
    HOLDER = 0x7F61
    INSURED = 0x7F62
    SERIAL = 0x5A
    NAME = 0x5F20
    VALID_FROM = 0xDF01
    VALID_UNTIL = 0xDF02
    ROLE = 0xDF03
    ENVIRONMENT = 0xDF04
    ISSUER = 0xDF05
    CARD_KIND = 0xDF06
    HOLDER_ID = 0xDF10
    PROFESSION = 0xDF11
    BIRTH_DATE = 0xDF12
    ZZZS_NUMBER = 0xDF20
    PIN_TABLE = 0xDF30
    PIN_TEMPLATE = 0xA0
    PIN_REF = 0x83
    PIN_MAX_TRIES = 0x90
    PIN_MIN_LENGTH = 0x92
    PIN_MAX_LENGTH = 0x93


class CardKind(IntEnum):
    """Value of DF06 in EF.CardInfo."""

    PK = 1
    KZZ = 2


class CardRole(IntEnum):
    REGULAR = 1
    BACKUP = 2


class Environment(IntEnum):
    TEST = 1
    PRODUCTION = 2


class Profession(IntEnum):
    DOCTOR = 1
    DENTIST = 2
    NURSE = 3
    PHARMACIST = 4
    BLOOD_DONATION_STAFF = 5
    OTHER_HEALTH_WORKER = 6
    ADMINISTRATIVE = 7


class SecretRef(IntEnum):
    """P2 of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER."""

    PIN = 0x81
    PUK = 0x82
    SPIN = 0x83
    TPIN = 0x84
    REACTIVATION = 0x85


class SecretState(IntEnum):
    """The persistent state of one secret (verification is volatile and kept apart)."""

    ACTIVE = 1  # has a value and can be presented
    TRANSPORT = 2  # SPIN before signature activation: no value yet, 6984
    DISABLED = 3  # TPIN after signature activation: 6984 for good


class KeyUse(IntEnum):
    AUTHENTICATION = 1  # INTERNAL AUTHENTICATE
    SIGNATURE = 2  # PSO COMPUTE DIGITAL SIGNATURE, sole control


class KeyAlgorithm(IntEnum):
    EC_P256 = 1
    RSA_2048 = 2


@dataclass(frozen=True)
class SecretFormat:
    """Length rules, padding block and try counter of one secret reference."""

    min_length: int
    max_length: int
    block_length: int
    max_tries: int
    digits_only: bool

    def accepts(self, value: bytes) -> bool:
        """Whether ``value`` (unpadded) is a well-formed secret of this reference."""
        if not self.min_length <= len(value) <= self.max_length:
            return False
        if self.digits_only:
            return all(0x30 <= b <= 0x39 for b in value)
        return all(0x20 <= b <= 0x7E for b in value)


def secret_format(ref: SecretRef) -> SecretFormat:
    """The documented format of ``ref`` (docs/card-profile.md, "Secrets")."""
    match ref:
        case SecretRef.PIN:
            return SecretFormat(4, 8, 8, 3, digits_only=True)
        case SecretRef.PUK:
            return SecretFormat(8, 8, 8, 5, digits_only=True)
        case SecretRef.SPIN:
            return SecretFormat(6, 8, 8, 3, digits_only=True)
        case SecretRef.TPIN:
            return SecretFormat(6, 6, 8, 3, digits_only=True)
        case SecretRef.REACTIVATION:
            return SecretFormat(8, 16, 16, 5, digits_only=False)


def pad_secret(value: bytes, block_length: int) -> bytes:
    """``value`` padded with FF to ``block_length`` (no truncation; caller checks length)."""
    return value + bytes([PIN_PAD_BYTE]) * (block_length - len(value))


def unpad_secret(block: bytes) -> bytes | None:
    """The value inside an FF-padded block, or None when bytes follow the padding."""
    end = block.find(PIN_PAD_BYTE)
    if end < 0:
        return block
    if any(b != PIN_PAD_BYTE for b in block[end:]):
        return None
    return block[:end]


def make_atr(historical: bytes) -> bytes:
    """The profile's ATR: ``3B 88 80 01`` + 8 historical bytes + TCK (XOR of T0..last)."""
    body = ATR_PREFIX + historical
    tck = 0
    for b in body[1:]:
        tck ^= b
    return body + bytes([tck])
