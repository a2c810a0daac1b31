"""pkcard session tokens: the claims model, the signing input and compact JWS assembly.

A session token is a compact JWS (RFC 7515) signed by the PK card's
authentication key: ES256 for EC P-256 keys (the card answers raw ``r || s``),
PS256 for RSA keys (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32). The host
computes SHA-256 of the signing input and the card signs that hash through
INTERNAL AUTHENTICATE. docs/token.md is the normative description.

``CardRole`` and ``Environment`` (EF.CardInfo) and ``Profession`` (EF.Holder)
are the card applications' own enums, re-exported here.

This module writes tokens; :mod:`pkcard.verify` reads them. Both share the
strict claim parser :meth:`SessionClaims.from_json`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from pkcard.cardinfo import CardRole, Environment
from pkcard.certs import certificate_key
from pkcard.errors import FormatError
from pkcard.kzz import KzzCardData
from pkcard.pk import PkCardData
from pkcard.pk_driver import Profession

if TYPE_CHECKING:  # cryptography is imported where it is used (issue #14, G6)
    from cryptography import x509

JWS_TYP = "pkcard-session+jwt"
TOKEN_VERSION = 1
NONCE_LENGTH = 32
KZZ_PROOF_DOMAIN = b"pkcard-kzz-proof-v1\x00"
REACTIVATION_PROOF_DOMAIN = b"pkcard-reactivation-proof-v1\x00"
MAX_PROOF_CHAIN = 4  # certificates in a possession proof, leaf first (as x5c)
MAX_AUTHORIZATIONS = 32
DEFAULT_LIFETIME = timedelta(minutes=5)
MAX_RESTRICTED_REASON = 200

__all__ = [
    "CLAIM_NAMES",
    "DEFAULT_LIFETIME",
    "JWS_TYP",
    "KZZ_PROOF_DOMAIN",
    "NONCE_LENGTH",
    "REACTIVATION_PROOF_DOMAIN",
    "MAX_PROOF_CHAIN",
    "PossessionProof",
    "TOKEN_VERSION",
    "BackupSwitchReason",
    "CardRole",
    "CardSigner",
    "Environment",
    "JwsAlgorithm",
    "Profession",
    "ProofMethod",
    "SessionClaims",
    "algorithm_for",
    "b64_decode_strict",
    "b64url_decode",
    "b64url_encode",
    "build_token",
    "kzz_proof_digest",
    "make_kzz_proof",
    "parse_compact_payload",
    "session_claims",
    "signing_input",
    "wire_name",
]

CLAIM_NAMES = frozenset({
    "version", "iss", "iat", "exp", "nonce", "proofMethod", "actorId", "profession",
    "cardSerial", "cardRole", "environment", "authorizations", "patientId", "patientProofTime",
    "kzzSerial", "kzzProof", "kzzCert", "restrictedReason", "backupSwitch",
})

CardSigner = Callable[[bytes], bytes]
"""Signs a 32-byte SHA-256 hash with a card key (INTERNAL AUTHENTICATE)."""

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_AUTH_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,15}")
_ZZZS_RE = re.compile(r"[0-9]{9}")


class JwsAlgorithm(IntEnum):
    """The only two JWS algorithms a PK card can produce."""

    ES256 = 1
    PS256 = 2


class ProofMethod(IntEnum):
    """How the patient's presence was established (gematik PoPP ``proofMethod``, extended)."""

    KZZ_CONTACT_PCSC = 1
    RESTRICTED_EMERGENCY = 2
    RESTRICTED_KZZ_UNUSABLE = 3
    RESTRICTED_PATIENT_ABSENT = 4
    RESTRICTED_OTHER = 5  # another exceptional case: restrictedReason is the caller's own text

    @property
    def restricted(self) -> bool:
        return self is not ProofMethod.KZZ_CONTACT_PCSC


class BackupSwitchReason(IntEnum):
    """Why the holder switches to the backup card (the seed: fault, loss or block).

    A backup card's token carries it (claim ``backupSwitch``) when the holder
    confirmed the switch: the backend activates a backup that is not active
    only with it, deactivates the regular card and records the reason.
    Stable numbers: the protobuf BackupSwitchReason.
    """

    FAULT = 1
    LOSS = 2
    BLOCK = 3


def wire_name(member: IntEnum) -> str:
    """A claim value's spelling in the token: ``KZZ_CONTACT_PCSC`` is ``kzz-contact-pcsc``."""
    return member.name.lower().replace("_", "-")


_E = TypeVar("_E", ProofMethod, Profession, CardRole, Environment, BackupSwitchReason)


def _from_wire(enum: type[_E], value: object, claim: str) -> _E:
    if isinstance(value, str):
        member = _WIRE_NAMES.get((enum, value))
        if isinstance(member, enum):
            return member
    raise FormatError(f"claim {claim!r} has an unknown value")


_WIRE_NAMES: Mapping[tuple[type[IntEnum], str], IntEnum] = MappingProxyType({
    (enum, wire_name(member)): member
    for enum in (ProofMethod, Profession, CardRole, Environment, BackupSwitchReason)
    for member in enum
})
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")  # by len(text) % 4


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: no padding, no other characters, canonical trailing bits."""
    tail = len(text) % 4
    if tail == 1 or not text.isascii() or "+" in text or "/" in text or "=" in text:
        raise FormatError("not canonical unpadded base64url")
    raw = text.encode("ascii")
    # the unused low bits of the last character must be zero (RFC 4648 section 3.5)
    if tail and _B64URL_ALPHABET.find(raw[-1]) & (0x0F if tail == 2 else 0x03):
        raise FormatError("not canonical unpadded base64url")
    try:  # strict: any character outside the alphabet (now "-" and "_" are mapped) is refused
        return binascii.a2b_base64(raw.translate(_URL_TO_STD) + _PADDING[tail], strict_mode=True)
    except binascii.Error:
        raise FormatError("not canonical unpadded base64url") from None


def b64_decode_strict(text: str) -> bytes:
    """Strict padded standard base64 (the encoding of ``x5c`` and ``kzzCert``)."""
    if len(text) % 4 or not text.isascii() or "-" in text or "_" in text:
        raise FormatError("not canonical base64")
    raw = text.encode("ascii")
    try:
        data = binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise FormatError("not canonical base64") from None
    # strict mode checks the padding's place, not the unused low bits before it
    if raw.endswith(b"=") and _B64_ALPHABET.find(raw[-3 if raw.endswith(b"==") else -2]) & (
        0x0F if raw.endswith(b"==") else 0x03
    ):
        raise FormatError("not canonical base64")
    return data


def kzz_proof_digest(nonce: bytes, pk_card_serial: str) -> bytes:
    """The hash the KZZ card signs: SHA-256("pkcard-kzz-proof-v1" 00 || nonce || PK serial).

    The nonce is always 32 bytes, so the concatenation is unambiguous. Binding
    the PK card serial stops a proof made for one professional's session from
    being replayed into another's with the same challenge.
    """
    if len(nonce) != NONCE_LENGTH:
        raise FormatError(f"nonce must be {NONCE_LENGTH} bytes")
    return hashlib.sha256(KZZ_PROOF_DOMAIN + nonce + pk_card_serial.encode("ascii")).digest()


def reactivation_proof_digest(nonce: bytes, card_serial: str) -> bytes:
    """The hash a regular PK signs to prove it is in the reader for a reactivation:
    SHA-256("pkcard-reactivation-proof-v1" 00 || nonce || card serial).

    The domain string keeps it apart from token signatures and KZZ proofs; the
    nonce (a backend challenge) makes it fresh; the serial names the card.
    """
    if len(nonce) != NONCE_LENGTH:
        raise FormatError(f"nonce must be {NONCE_LENGTH} bytes")
    return hashlib.sha256(REACTIVATION_PROOF_DOMAIN + nonce + card_serial.encode("ascii")).digest()


@dataclass(frozen=True)
class PossessionProof:
    """A card's signature over a backend challenge: it is in the reader, its PIN verified.

    ``chain`` is the card's authentication certificate chain (DER, leaf
    first, no root); ``signature`` the INTERNAL AUTHENTICATE answer over
    :func:`reactivation_proof_digest` of ``nonce`` and the card serial.
    """

    nonce: bytes
    chain: tuple[bytes, ...]
    signature: bytes = field(repr=False)


def make_possession_proof(nonce: bytes, card_serial: str, chain: tuple[bytes, ...],
                          authenticate: CardSigner) -> PossessionProof:
    """Ask the PK (PIN verified) to sign :func:`reactivation_proof_digest`."""
    return PossessionProof(nonce, chain, authenticate(reactivation_proof_digest(nonce,
                                                                                card_serial)))


@dataclass(frozen=True)
class SessionClaims:
    """The payload of a session token. Times are seconds since the epoch (UTC)."""

    iss: str
    iat: int
    exp: int
    nonce: bytes
    proof_method: ProofMethod
    actor_id: str
    profession: Profession
    card_serial: str
    card_role: CardRole
    environment: Environment
    authorizations: tuple[str, ...]
    patient_id: str | None = None
    patient_proof_time: int | None = None
    kzz_serial: str | None = None
    kzz_proof: bytes | None = None
    kzz_cert: bytes | None = None
    restricted_reason: str | None = None
    version: int = TOKEN_VERSION
    backup_switch: BackupSwitchReason | None = None  # a backup card's confirmed switch

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.version != TOKEN_VERSION:
            raise FormatError("unsupported token version")
        for claim, value in (("iss", self.iss), ("actorId", self.actor_id),
                             ("cardSerial", self.card_serial)):
            if not _ID_RE.fullmatch(value):
                raise FormatError(f"claim {claim!r} is not a valid identifier")
        if len(self.nonce) != NONCE_LENGTH:
            raise FormatError(f"claim 'nonce' must be {NONCE_LENGTH} bytes")
        if len(self.authorizations) > MAX_AUTHORIZATIONS or len(set(self.authorizations)) != len(
            self.authorizations
        ):
            raise FormatError("claim 'authorizations' too long or has duplicates")
        if not all(_AUTH_CODE_RE.fullmatch(code) for code in self.authorizations):
            raise FormatError("claim 'authorizations' holds a malformed code")
        if self.patient_id is not None and not _ZZZS_RE.fullmatch(self.patient_id):
            raise FormatError("claim 'patientId' must be 9 digits")
        kzz = (self.kzz_serial, self.kzz_proof, self.kzz_cert, self.patient_proof_time)
        if self.proof_method.restricted:
            if any(part is not None for part in kzz):
                raise FormatError("a restricted token carries no KZZ proof")
            reason = self.restricted_reason
            if reason is None or not reason.strip() or len(reason) > MAX_RESTRICTED_REASON:
                raise FormatError("a restricted token needs a restricted reason")
        else:
            if any(part is None for part in kzz) or self.patient_id is None:
                raise FormatError("a KZZ token needs patientId, kzzSerial, kzzProof, kzzCert "
                                  "and patientProofTime")
            if self.kzz_serial is not None and not _ID_RE.fullmatch(self.kzz_serial):
                raise FormatError("claim 'kzzSerial' is not a valid identifier")
            if self.restricted_reason is not None:
                raise FormatError("a KZZ token carries no restricted reason")
        if self.backup_switch is not None and self.card_role is not CardRole.BACKUP:
            raise FormatError("only a backup card's token carries backupSwitch")

    def to_json(self) -> dict[str, Any]:
        """The payload as a JSON object, with the claim names of docs/token.md."""
        out: dict[str, Any] = {
            "version": self.version,
            "iss": self.iss,
            "iat": self.iat,
            "exp": self.exp,
            "nonce": b64url_encode(self.nonce),
            "proofMethod": wire_name(self.proof_method),
            "actorId": self.actor_id,
            "profession": wire_name(self.profession),
            "cardSerial": self.card_serial,
            "cardRole": wire_name(self.card_role),
            "environment": wire_name(self.environment),
            "authorizations": list(self.authorizations),
        }
        if self.patient_id is not None:
            out["patientId"] = self.patient_id
        if self.patient_proof_time is not None:
            out["patientProofTime"] = self.patient_proof_time
        if self.kzz_serial is not None:
            out["kzzSerial"] = self.kzz_serial
        if self.kzz_proof is not None:
            out["kzzProof"] = b64url_encode(self.kzz_proof)
        if self.kzz_cert is not None:
            out["kzzCert"] = base64.b64encode(self.kzz_cert).decode("ascii")
        if self.restricted_reason is not None:
            out["restrictedReason"] = self.restricted_reason
        if self.backup_switch is not None:
            out["backupSwitch"] = wire_name(self.backup_switch)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> SessionClaims:
        """Parse a payload object strictly: unknown claims and wrong types are refused."""
        return _claims_by_field(cls, obj)


def _claims_by_field(cls: type[SessionClaims], obj: Mapping[str, object]) -> SessionClaims:
    """The reference parser: each claim read on its own, then :meth:`SessionClaims._check`."""
    unknown = obj.keys() - CLAIM_NAMES
    if unknown:
        raise FormatError(f"unknown claims: {sorted(unknown)!r}")
    auths = obj.get("authorizations")
    if not isinstance(auths, list) or not all(isinstance(a, str) for a in auths):
        raise FormatError("claim 'authorizations' must be a list of strings")
    proof = _opt_str(obj, "kzzProof")
    cert = _opt_str(obj, "kzzCert")
    return cls(
        version=_int(obj, "version"),
        iss=_str(obj, "iss"),
        iat=_int(obj, "iat"),
        exp=_int(obj, "exp"),
        nonce=b64url_decode(_str(obj, "nonce")),
        proof_method=_from_wire(ProofMethod, obj.get("proofMethod"), "proofMethod"),
        actor_id=_str(obj, "actorId"),
        profession=_from_wire(Profession, obj.get("profession"), "profession"),
        card_serial=_str(obj, "cardSerial"),
        card_role=_from_wire(CardRole, obj.get("cardRole"), "cardRole"),
        environment=_from_wire(Environment, obj.get("environment"), "environment"),
        authorizations=tuple(auths),
        patient_id=_opt_str(obj, "patientId"),
        patient_proof_time=_opt_int(obj, "patientProofTime"),
        kzz_serial=_opt_str(obj, "kzzSerial"),
        kzz_proof=None if proof is None else b64url_decode(proof),
        kzz_cert=None if cert is None else b64_decode_strict(cert),
        restricted_reason=_opt_str(obj, "restrictedReason"),
        backup_switch=None if "backupSwitch" not in obj
        else _from_wire(BackupSwitchReason, obj.get("backupSwitch"), "backupSwitch"),
    )


_ID_MATCH = _ID_RE.fullmatch
_AUTH_CODE_MATCH = _AUTH_CODE_RE.fullmatch
_ZZZS_MATCH = _ZZZS_RE.fullmatch
_MAX_TIME = 2**40
_PROOF_METHODS: Mapping[object, ProofMethod] = MappingProxyType(
    {wire_name(m): m for m in ProofMethod})
_PROFESSIONS: Mapping[object, Profession] = MappingProxyType(
    {wire_name(m): m for m in Profession})
_CARD_ROLES: Mapping[object, CardRole] = MappingProxyType({wire_name(m): m for m in CardRole})
_ENVIRONMENTS: Mapping[object, Environment] = MappingProxyType(
    {wire_name(m): m for m in Environment})
_SWITCH_REASONS: Mapping[object, BackupSwitchReason] = MappingProxyType(
    {wire_name(m): m for m in BackupSwitchReason})


_RX_ID = r'"([A-Za-z0-9._:-]{1,64})"'  # _ID_RE: never a quote or a backslash to decode
_RX_INT = r"(0|[1-9][0-9]{0,12})"  # JSON's integers of at most 13 digits (2**40 has 13)
_RX_CODE = r'"[A-Z][A-Z0-9]{1,15}"'
_RX_WIRE = r'"([a-z-]{1,32})"'
_RX_JSON_STRING = r'"((?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*)"'
_COMPACT_PAYLOAD = re.compile(
    r'\{"version":1,"iss":' + _RX_ID + ',"iat":' + _RX_INT + ',"exp":' + _RX_INT
    + r',"nonce":"([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])"'  # 32 bytes, canonical
    + ',"proofMethod":' + _RX_WIRE + ',"actorId":' + _RX_ID
    + ',"profession":' + _RX_WIRE + ',"cardSerial":' + _RX_ID + ',"cardRole":' + _RX_WIRE
    + ',"environment":' + _RX_WIRE
    + r',"authorizations":\[((?:' + _RX_CODE + "(?:," + _RX_CODE + r")*)?)\]"
    + r'(?:,"patientId":"([0-9]{9})")?(?:,"patientProofTime":' + _RX_INT + ")?"
    + '(?:,"kzzSerial":' + _RX_ID + r')?(?:,"kzzProof":"([A-Za-z0-9_-]*)")?'
    + r'(?:,"kzzCert":"([A-Za-z0-9+/]*={0,2})")?'
    + '(?:,"restrictedReason":' + _RX_JSON_STRING + ")?"
    + '(?:,"backupSwitch":' + _RX_WIRE + r")?\}"
)
_JSON_STRING = json.JSONDecoder().decode
_KZZ_CONTACT = ProofMethod.KZZ_CONTACT_PCSC  # a module constant: an enum class lookup costs
_BACKUP = CardRole.BACKUP


def parse_compact_payload(segment: bytes) -> SessionClaims | None:
    """The claims of a payload laid out exactly as :func:`build_token` writes it, else None.

    pkcardd writes every payload with :meth:`SessionClaims.to_json`'s claim
    order and compact ASCII JSON. One regular expression checks that layout
    and every claim's syntax at once (issue #14, G4: a verifier reads every
    token's payload); the values then get the checks the syntax cannot
    express (ranges, uniqueness, which claims go together). None means
    "not in this layout or not valid": parse it as JSON with
    :meth:`SessionClaims.from_json`, which accepts any key order and
    spacing and names what is wrong. tests/backend/test_claims_codec.py
    proves on random and mutated payloads that both agree.
    """
    try:
        match = _COMPACT_PAYLOAD.fullmatch(segment.decode("ascii"))
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    (iss, iat_text, exp_text, nonce_text, method_text, actor, profession_text, serial,
     role_text, environment_text, codes, patient, proof_time_text, kzz_serial, proof_text,
     cert_text, reason, switch_text) = match.groups()
    iat, exp = int(iat_text), int(exp_text)
    proof_method = _PROOF_METHODS.get(method_text)
    profession = _PROFESSIONS.get(profession_text)
    role = _CARD_ROLES.get(role_text)
    environment = _ENVIRONMENTS.get(environment_text)
    if (proof_method is None or profession is None or role is None or environment is None
            or iat >= _MAX_TIME or exp >= _MAX_TIME):
        return None
    authorizations = tuple(codes[1:-1].split('","')) if codes else ()
    if len(authorizations) > MAX_AUTHORIZATIONS or len(set(authorizations)) != len(
            authorizations):
        return None
    switch = None
    if switch_text is not None:
        switch = _SWITCH_REASONS.get(switch_text)
        if switch is None or role is not _BACKUP:
            return None
    proof_time = kzz_proof = kzz_cert = None
    # 43 characters of the alphabet, the last one's unused bits zero: canonical, 32 bytes
    nonce = binascii.a2b_base64(nonce_text.encode("ascii").translate(_URL_TO_STD) + b"=")
    try:
        if proof_method is _KZZ_CONTACT:
            if (patient is None or proof_time_text is None or kzz_serial is None
                    or proof_text is None or cert_text is None or reason is not None):
                return None
            proof_time = int(proof_time_text)
            if proof_time >= _MAX_TIME:
                return None
            kzz_proof = b64url_decode(proof_text)
            kzz_cert = b64_decode_strict(cert_text)
        else:
            if (reason is None or proof_time_text is not None or kzz_serial is not None
                    or proof_text is not None or cert_text is not None):
                return None
            if "\\" in reason:
                reason = _JSON_STRING(f'"{reason}"')
            if not reason.strip() or len(reason) > MAX_RESTRICTED_REASON:
                return None
    except FormatError:
        return None
    claims = object.__new__(SessionClaims)
    # every value is checked above, as _check would: set the frozen fields directly
    object.__setattr__(claims, "__dict__", {
        "iss": iss, "iat": iat, "exp": exp, "nonce": nonce, "proof_method": proof_method,
        "actor_id": actor, "profession": profession, "card_serial": serial, "card_role": role,
        "environment": environment, "authorizations": authorizations, "patient_id": patient,
        "patient_proof_time": proof_time, "kzz_serial": kzz_serial, "kzz_proof": kzz_proof,
        "kzz_cert": kzz_cert, "restricted_reason": reason, "version": TOKEN_VERSION,
        "backup_switch": switch,
    })
    return claims


def _str(obj: Mapping[str, object], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise FormatError(f"claim {key!r} must be a string")
    return value


def _opt_str(obj: Mapping[str, object], key: str) -> str | None:
    return None if key not in obj else _str(obj, key)


def _int(obj: Mapping[str, object], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise FormatError(f"claim {key!r} must be a non-negative integer")
    return value


def _opt_int(obj: Mapping[str, object], key: str) -> int | None:
    return None if key not in obj else _int(obj, key)


def algorithm_for(public_key: object) -> JwsAlgorithm:
    """The JWS algorithm a card key produces; refuses anything but P-256 and RSA >= 2048."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return JwsAlgorithm.ES256
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048:
        return JwsAlgorithm.PS256
    raise FormatError("card key is neither EC P-256 nor RSA >= 2048")


def _compact_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signing_input(claims: SessionClaims, chain: Sequence[x509.Certificate]) -> bytes:
    """``base64url(header) "." base64url(payload)``: the bytes whose SHA-256 the PK signs.

    ``chain`` is the PK authentication certificate chain, leaf first, without
    the trust anchor.
    """
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    if not chain:
        raise FormatError("the certificate chain is empty")
    header = {
        "alg": algorithm_for(certificate_key(chain[0])).name,
        "typ": JWS_TYP,
        "x5c": [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in chain],
    }
    return (
        b64url_encode(_compact_json(header)).encode("ascii")
        + b"."
        + b64url_encode(_compact_json(claims.to_json())).encode("ascii")
    )


def build_token(
    claims: SessionClaims, chain: Sequence[x509.Certificate], sign: CardSigner
) -> str:
    """Sign ``claims`` with the PK auth key behind ``sign`` and return the compact JWS."""
    data = signing_input(claims, chain)
    signature = sign(hashlib.sha256(data).digest())
    if algorithm_for(certificate_key(chain[0])) is JwsAlgorithm.ES256 and len(signature) != 64:
        raise FormatError("an ES256 card signature must be 64 bytes (raw r || s)")
    return data.decode("ascii") + "." + b64url_encode(signature)


def session_claims(
    *,
    pk: PkCardData,
    nonce: bytes,
    workstation_id: str,
    now: datetime,
    authorizations: Sequence[str],
    kzz: KzzCardData | None = None,
    kzz_proof: bytes | None = None,
    restricted: ProofMethod | None = None,
    restricted_reason: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    backup_switch: BackupSwitchReason | None = None,
) -> SessionClaims:
    """The claims of a session token from what the cards said.

    Pass ``kzz`` and ``kzz_proof`` (from :func:`make_kzz_proof`) when the
    patient's KZZ was read, or ``restricted`` and ``restricted_reason`` when not.
    """
    iat = int(now.timestamp())
    kzz_claims: dict[str, Any] = {}
    if kzz is not None:
        kzz_claims = {
            "patient_id": str(kzz.zzzs_number),
            "patient_proof_time": iat,
            "kzz_serial": kzz.card_serial,
            "kzz_proof": kzz_proof,
            "kzz_cert": kzz.certificate.der,
        }
    return SessionClaims(
        iss=workstation_id,
        iat=iat,
        exp=iat + int(lifetime.total_seconds()),
        nonce=nonce,
        proof_method=ProofMethod.KZZ_CONTACT_PCSC if restricted is None else restricted,
        actor_id=pk.holder_id,
        profession=pk.profession,
        card_serial=pk.card_serial,
        card_role=pk.role,
        environment=pk.environment,
        authorizations=tuple(authorizations),
        restricted_reason=restricted_reason,
        backup_switch=backup_switch,
        **kzz_claims,
    )


def make_kzz_proof(nonce: bytes, pk_card_serial: str, kzz_authenticate: CardSigner) -> bytes:
    """Ask the KZZ card to sign :func:`kzz_proof_digest` (INTERNAL AUTHENTICATE)."""
    return kzz_authenticate(kzz_proof_digest(nonce, pk_card_serial))
