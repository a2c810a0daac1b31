"""The fuzz targets: one function per parser or driver, ``bytes`` in, nothing out.

A target swallows :class:`pkcard.errors.PkcardError` (the documented way to
refuse input) and lets every other exception escape: that is a finding. The
same functions run under atheris (``python -m fuzz``) and under hypothesis in
tests/fuzz.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from functools import cache
from pathlib import Path

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from fuzz.hostile_certs import hostile_certificates
from pkcard import tlv
from pkcard.apdu import CommandApdu, ResponseApdu
from pkcard.backend.devpki import DevPki, Issued, PrivateKey, card_signer
from pkcard.certs import parse_certificate
from pkcard.cms import sign_detached, verify_detached
from pkcard.errors import PkcardError
from pkcard.kzz import HealthInsuranceCard
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import (
    CardRole,
    CardSigner,
    Environment,
    Profession,
    ProofMethod,
    SessionClaims,
    b64url_decode,
    b64url_encode,
    build_token,
)
from pkcard.transcript import parse_transcript
from pkcard.transport import SmartCardConnection
from pkcard.verify import CardRecord, CardStatus, NonceOutcome, TokenVerifier, TrustAnchors

Target = Callable[[bytes], None]
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "apdu" / "transcripts"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CLIENT = "ws-fuzz-01"
PKI = Path(__file__).resolve().parents[1] / "fixtures" / "pki"
SERIAL = "PK0000100001"
HOLDER = "90001"  # the subject serialNumber of fixtures/pki/cards/pk-regular/auth-cert.pem
NONCE = hashlib.sha256(b"pkcard fuzz challenge").digest()
# Secrets of 6+ digits: a 4-hex-digit status word in an error text cannot look like one.
WRONG_PIN = "13572468"
NEW_PIN = "482915"
CMS_DOCUMENT = b"fuzz: a document signed with the KPEP\n"


# --- codecs ----------------------------------------------------------------


def apdu(data: bytes) -> None:
    """Command and response APDU parsers: a parsed command re-encodes to a parseable one."""
    with contextlib.suppress(PkcardError):
        command = CommandApdu.parse(data)
        again = CommandApdu.parse(command.encode())
        if again != command:
            raise AssertionError("command APDU does not survive encode/parse")
    with contextlib.suppress(PkcardError):
        response = ResponseApdu.parse(data)
        if response.data + response.sw.to_bytes(2, "big") != data:
            raise AssertionError("response APDU does not survive parse")


def tlv_parsers(data: bytes) -> None:
    """BER-TLV: single object, lists (with and without padding), dicts, trees, paths."""
    with contextlib.suppress(PkcardError):
        tlv.Tlv.parse(data)
    with contextlib.suppress(PkcardError):
        tlv.parse_list(data, allow_padding=True)
    with contextlib.suppress(PkcardError):
        tlv.parse_dict(data)
    with contextlib.suppress(PkcardError):
        tlv.validate_tree(data)
    with contextlib.suppress(PkcardError):
        tlv.find(data, 0x7F60, 0x5A)


def transcript(data: bytes) -> None:
    """The transcript text parser."""
    with contextlib.suppress(PkcardError):
        parse_transcript(data.decode("utf-8", errors="replace"))


# --- card drivers over a connection that answers with fuzz ---------------------


class AnswerMode(IntEnum):
    """How one answer is made from the fuzz input (first byte of each step, mod 3)."""

    REAL = 0  # the simulated card's own answer
    FLIPPED = 1  # the card's answer XOR the next bytes of input
    REPLACED = 2  # the next n bytes of input (n = one byte)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    @property
    def done(self) -> bool:
        return self._at >= len(self._data)


class FuzzedConnection(SmartCardConnection):
    """A simulated card whose answers the fuzz input rewrites, step by step."""

    def __init__(self, card: SimulatedCard, data: bytes) -> None:
        self._inner = InProcessConnection(card)
        self._cursor = _Cursor(data)

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    def transmit(self, command: bytes) -> bytes:
        answer = self._inner.transmit(command)
        if self._cursor.done:
            return answer
        mode = AnswerMode(self._cursor.take(1)[0] % len(AnswerMode))
        if mode is AnswerMode.FLIPPED:
            mask = self._cursor.take(len(answer))
            return bytes(a ^ b for a, b in zip(answer, mask.ljust(len(answer), b"\0"), strict=True))
        if mode is AnswerMode.REPLACED:
            size = self._cursor.take(1)
            return self._cursor.take(size[0] * 3 if size else 0)
        return answer

    def close(self) -> None:
        self._inner.close()


@cache
def _pristine(name: str) -> SimulatedCard:
    return SimulatedCard.from_profile(load_profile(name))


def _fresh(name: str) -> SimulatedCard:
    """A card in the profile's initial state (profiles are loaded once)."""
    return SimulatedCard.from_profile(_pristine(name).profile)


def pk_driver(data: bytes) -> None:
    """The PK application over fuzzed answers: read, statuses, verify, change."""
    card = _fresh("pk-regular")
    app = ProfessionalCard.over(FuzzedConnection(card, data))
    pin = card.profile.secret_value(SecretRef.PIN)
    for step in (
        app.read_card,
        app.pin_statuses,
        lambda: app.verify(PinRef.PIN, Secret(WRONG_PIN)),
        lambda: app.change(PinRef.PIN, Secret(pin), Secret(NEW_PIN)),
    ):
        try:
            step()
        except PkcardError as exc:
            text = f"{exc}{exc!r}"
            if any(secret in text for secret in (pin, WRONG_PIN, NEW_PIN)):
                raise AssertionError("a secret reached an error message") from exc


def kzz_driver(data: bytes) -> None:
    """The KZZ application over fuzzed answers: read and authenticate."""
    app = HealthInsuranceCard.over(FuzzedConnection(_fresh("kzz"), data))
    with contextlib.suppress(PkcardError):
        app.read_card()
    with contextlib.suppress(PkcardError):
        app.authenticate(bytes(32))


# --- tokens ----------------------------------------------------------------


class _FixedNonces:
    """A NonceStore that issues one fixed challenge to :data:`CLIENT`, usable once.

    The fuzz targets must behave the same in every run with the same input:
    the random challenges of ``InMemoryNonceStore`` would change the token text.
    """

    def __init__(self) -> None:
        self._used = False

    def issue(self, client_id: str, now: datetime) -> bytes:
        return NONCE

    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        if nonce != NONCE:
            return NonceOutcome.UNKNOWN
        if client_id != CLIENT:
            return NonceOutcome.FOREIGN_CLIENT
        if self._used:
            return NonceOutcome.REUSED
        self._used = True
        return NonceOutcome.ACCEPTED


def _deterministic_signer(key: PrivateKey) -> CardSigner:
    """INTERNAL AUTHENTICATE as the cards do it, with RFC 6979 nonces for EC keys."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return card_signer(key)  # RSA-PSS: random salt, only used where the bytes do not matter

    def sign(digest: bytes) -> bytes:
        der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@dataclass(frozen=True)
class TokenRig:
    """The committed test PKI (fixtures/pki), the pk-regular card and a verifier.

    Fixed keys, a fixed challenge and deterministic ECDSA make ``valid`` the
    same token in every run, so a fixed-seed fuzz pass is reproducible.
    """

    pki: DevPki
    card: Issued

    def verifier(self) -> tuple[TokenVerifier, _FixedNonces]:
        nonces = _FixedNonces()
        record = CardRecord(SERIAL, HOLDER, CardRole.REGULAR, CardStatus.ACTIVE)
        registry = _Registry({SERIAL: record})
        anchors = TrustAnchors(Environment.TEST, (self.pki.pk_ca.cert,), (self.pki.kzz_ca.cert,))
        verifier = TokenVerifier(anchors, registry, nonces, lambda: NOW,
                                 environment=Environment.TEST, restricted_authorizations={"I002"})
        return verifier, nonces

    def valid(self, nonce: bytes) -> str:
        iat = int(NOW.timestamp())
        claims = SessionClaims(
            iss=CLIENT, iat=iat, exp=iat + 300, nonce=nonce,
            proof_method=ProofMethod.RESTRICTED_EMERGENCY, actor_id=HOLDER,
            profession=Profession.DOCTOR, card_serial=SERIAL, card_role=CardRole.REGULAR,
            environment=Environment.TEST, authorizations=("I002",),
            restricted_reason="fuzz",
        )
        return build_token(claims, [self.card.cert], _deterministic_signer(self.card.key))


@dataclass(frozen=True)
class _Registry:
    cards: dict[str, CardRecord]

    def card(self, serial: str) -> CardRecord | None:
        return self.cards.get(serial)

    def granted_authorizations(self, holder_id: str) -> frozenset[str]:
        return frozenset({"I002"})


def _fixture(folder: Path, stem: str) -> Issued:
    key = load_pem_private_key((folder / f"{stem}-key.pem").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"{folder / stem}-key.pem is neither EC nor RSA")
    return Issued(key, x509.load_pem_x509_certificate((folder / f"{stem}-cert.pem").read_bytes()))


@cache
def token_rig() -> TokenRig:
    pki = DevPki(Environment.TEST, _fixture(PKI / "ca" / "test-pk", "ca"),
                 _fixture(PKI / "ca" / "test-kzz", "ca"))
    return TokenRig(pki, _fixture(PKI / "cards" / "pk-regular", "auth"))


def token(data: bytes) -> None:
    """The verifier on raw text, and on a valid token with one part replaced by the input."""
    rig = token_rig()
    verifier, nonces = rig.verifier()
    valid = rig.valid(nonces.issue(CLIENT, NOW)).split(".")
    choice, rest = (data[0] % 5, data[1:]) if data else (0, b"")
    if choice == 0:
        candidate = rest.decode("utf-8", errors="replace")
    elif choice == 4:  # a valid token with a byte of its text flipped
        text = ".".join(valid)
        at = int.from_bytes(rest[:2].ljust(2, b"\0"), "big") % len(text)
        candidate = text[:at] + chr((ord(text[at]) ^ (rest[2] if len(rest) > 2 else 1)) % 128) \
            + text[at + 1 :]
    else:
        valid[choice - 1] = b64url_encode(rest)
        candidate = ".".join(valid)
    with contextlib.suppress(PkcardError):
        verifier.verify(candidate, CLIENT)


# --- certificates ------------------------------------------------------------

_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


@cache
def _cms_template() -> tuple[bytes, Issued]:
    """A valid detached CMS signature by pk-regular's KPEP (RSA; PKCS#1 v1.5 is deterministic)."""
    kpep = _fixture(PKI / "cards" / "pk-regular", "sign")
    signed = sign_detached(CMS_DOCUMENT, kpep.cert.public_bytes(Encoding.DER),
                           _pkcs1_signer(kpep), signing_time=NOW)
    return signed, kpep


def _pkcs1_signer(card: Issued) -> Callable[[bytes], bytes]:
    key = card.key
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the CMS template needs an RSA card")
    return lambda digest: key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def _cms_around(cert_der: bytes) -> bytes | None:
    """The CMS template with ``cert_der`` as its signer's certificate (None: asn1crypto
    cannot even name its issuer and serial in a SignerInfo)."""
    try:
        cert = asn1_x509.Certificate.load(cert_der)
        info = asn1_cms.ContentInfo.load(_cms_template()[0])
        signed_data = info["content"]
        signed_data["certificates"] = [cert]
        signed_data["signer_infos"][0]["sid"] = asn1_cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": cert.issuer, "serial_number": cert.serial_number},
        )
        return bytes(info.dump(force=False))
    except _ASN1_ERRORS:
        return None


def x509_paths(data: bytes) -> None:
    """A certificate from untrusted bytes on every path: card data, a token's x5c, CMS."""
    with contextlib.suppress(PkcardError):
        parse_certificate(data)
    rig = token_rig()
    verifier, nonces = rig.verifier()
    header, payload, _ = rig.valid(nonces.issue(CLIENT, NOW)).split(".")
    fields = json.loads(b64url_decode(header))
    fields["x5c"] = [base64.b64encode(data).decode("ascii")]
    forged = b64url_encode(json.dumps(fields).encode()) + "." + payload
    signature = _deterministic_signer(rig.card.key)(
        hashlib.sha256(forged.encode("ascii")).digest())
    with contextlib.suppress(PkcardError):
        verifier.verify(forged + "." + b64url_encode(signature), CLIENT)
    signed = _cms_around(data)
    if signed is not None:
        with contextlib.suppress(PkcardError):
            verify_detached(signed, CMS_DOCUMENT, [rig.pki.pk_ca.cert], at=NOW)


TARGETS: dict[str, Target] = {
    "apdu": apdu,
    "tlv": tlv_parsers,
    "transcript": transcript,
    "pk": pk_driver,
    "kzz": kzz_driver,
    "token": token,
    "x509": x509_paths,
}


def seeds(name: str) -> Iterator[bytes]:
    """Valid-looking inputs to start a target's corpus from."""
    if name == "apdu":
        yield from (bytes.fromhex(h) for h in (
            "00A4040C09F0504B43415244504B", "00B0000000", "00200081083132333400000000",
            "0084000008", "00B000000000FF", "6110", "0102039000"))
    elif name == "tlv":
        yield from (bytes.fromhex(h) for h in ("7F60035A0131", "5F2003414243", "9F0100", "00"))
    elif name == "transcript":
        for path in sorted(TRANSCRIPTS.glob("*.apdu")):
            yield path.read_bytes()
    elif name in ("pk", "kzz"):
        yield b""
        yield bytes(16)
        yield bytes([1, 0x80] * 8)
        yield bytes([2, 1, 0x61, 0x10, 0x00])
    elif name == "x509":
        rig = token_rig()
        yield rig.card.cert.public_bytes(Encoding.DER)
        yield from hostile_certificates(rig.card.cert, rig.pki.pk_ca.key).values()
    elif name == "token":
        rig = token_rig()
        _, nonces = rig.verifier()
        yield b"\0" + rig.valid(nonces.issue(CLIENT, NOW)).encode()
        yield b"\4" + hashlib.sha256(b"seed").digest()
