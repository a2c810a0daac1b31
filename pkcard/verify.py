"""Verify pkcard session tokens: the library backend teams import on its own.

:class:`TokenVerifier` does no I/O of its own. It asks three things the
caller passes in: the trust anchors of one environment, a
:class:`RegistryView` (card status, holder authorizations) and a
:class:`NonceStore` (the challenges the backend issued). Every refusal is a
:class:`pkcard.errors.TokenRefused` carrying a :class:`RefusalReason`.

The checks follow the Web eID authentication token validator, adapted to a
compact JWS signed by a PK card (docs/token.md): size limits, strict
base64url, a header allow-list, no duplicate JSON keys, the ``x5c`` chain
validated with ``cryptography.x509.verification`` at the verification time, key
usage, ``alg`` bound to the leaf key type, the signature, the claims and
their times (``iat`` within the skew of the verifier's clock), the
single-use client-bound nonce, the KZZ proof over the same challenge (its
certificate bound to the patient), and finally the registry. Certificates
in ``x5c`` after the leaf are only candidates for path building: one that
is not on the validated path is ignored, never trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from pkcard.certs import certificate_key, load_certificate
from pkcard.errors import AuthorizationsRefused, FormatError, RefusalReason, TokenRefused
from pkcard.token import (
    JWS_TYP,
    MAX_PROOF_CHAIN,
    NONCE_LENGTH,
    TOKEN_VERSION,
    CardRole,
    Environment,
    JwsAlgorithm,
    PossessionProof,
    ProofMethod,
    SessionClaims,
    algorithm_for,
    b64_decode_strict,
    b64url_decode,
    kzz_proof_digest,
    parse_compact_payload,
    reactivation_proof_digest,
    wire_name,
)

__all__ = [
    "CardRecord",
    "CardStatus",
    "Clock",
    "NONCE_REFUSALS",
    "InMemoryNonceStore",
    "NonceOutcome",
    "NonceStore",
    "ProvenKey",
    "RefusalReason",
    "RegistryView",
    "SessionScope",
    "TokenRefused",
    "TokenVerifier",
    "TrustAnchors",
    "VerifiedSession",
    "verify_card_signature",
]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""

MAX_TOKEN_LENGTH = 16384
MAX_HEADER_LENGTH = 12288
MAX_PAYLOAD_LENGTH = 6144
MAX_SIGNATURE_LENGTH = 700  # base64url of a 4096-bit RSA signature is 683 characters
MAX_CHAIN_LENGTH = 4
DEFAULT_MAX_SKEW = timedelta(seconds=60)
DEFAULT_MAX_LIFETIME = timedelta(minutes=10)
_HEADER_PARAMS = frozenset({"alg", "typ", "x5c"})
_SHA256_PREHASHED = utils.Prehashed(hashes.SHA256())
_ECDSA_PREHASHED = ec.ECDSA(_SHA256_PREHASHED)
_PSS_SALT_32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


class CardStatus(IntEnum):
    """A PK card's state in the registry."""

    STANDBY = 1  # a backup card never used: its first accepted token activates it
    ACTIVE = 2
    INACTIVE = 3  # a regular card while its backup is in use, or a backup after reactivation
    REVOKED = 4


class NonceOutcome(IntEnum):
    """What a :class:`NonceStore` says about a nonce presented for consumption."""

    ACCEPTED = 1
    UNKNOWN = 2
    EXPIRED = 3
    REUSED = 4
    FOREIGN_CLIENT = 5


NONCE_REFUSALS: Mapping[NonceOutcome, RefusalReason] = MappingProxyType({
    NonceOutcome.UNKNOWN: RefusalReason.NONCE_UNKNOWN,
    NonceOutcome.EXPIRED: RefusalReason.NONCE_EXPIRED,
    NonceOutcome.REUSED: RefusalReason.NONCE_REUSED,
    NonceOutcome.FOREIGN_CLIENT: RefusalReason.NONCE_FOREIGN_CLIENT,
})
"""The refusal for each nonce outcome other than ACCEPTED."""


class SessionScope(IntEnum):
    """FULL: patient presence proven with the KZZ. RESTRICTED: a restricted proof method."""

    FULL = 1
    RESTRICTED = 2


_ACCEPTED = NonceOutcome.ACCEPTED
_FULL_SCOPE = SessionScope.FULL
_RESTRICTED_SCOPE = SessionScope.RESTRICTED
_KZZ_CONTACT = ProofMethod.KZZ_CONTACT_PCSC
_BACKUP = CardRole.BACKUP


@dataclass(frozen=True)
class CardRecord:
    """What the registry knows about one PK card."""

    serial: str
    holder_id: str
    role: CardRole
    status: CardStatus
    auth_cert_sha256: bytes | None = None  # when set, the token's leaf must be this cert


class RegistryView(Protocol):
    """The registry questions the verifier asks."""

    def card(self, serial: str) -> CardRecord | None:
        """The card with this serial, or None."""
        ...

    def granted_authorizations(self, holder_id: str) -> frozenset[str]:
        """The holder's authorization codes that are granted and not withdrawn."""
        ...


_REVOKED = CardStatus.REVOKED
_STANDBY = CardStatus.STANDBY
_INACTIVE = CardStatus.INACTIVE


class NonceStore(Protocol):
    """The backend's issued challenges. ``consume`` must be atomic."""

    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        """Mark ``nonce`` used if it was issued to ``client_id`` and is still valid."""
        ...


@dataclass(frozen=True)
class TrustAnchors:
    """The CA certificates of ONE environment: PK authentication and KZZ card CAs."""

    environment: Environment
    pk: tuple[x509.Certificate, ...]
    kzz: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.pk or not self.kzz:
            raise ValueError("trust anchors need at least one PK CA and one KZZ CA")


@dataclass(frozen=True)
class VerifiedSession:
    """A token that passed every check, and what it grants."""

    claims: SessionClaims
    card: CardRecord
    algorithm: JwsAlgorithm
    scope: SessionScope
    granted: frozenset[str]
    leaf_sha256: bytes

    @property
    def activates_backup(self) -> bool:
        """True for a confirmed token of a backup card that is not active (on standby, or
        inactive since the regular card was reactivated): it switches the cards."""
        return (self.card.role is CardRole.BACKUP and self.claims.backup_switch is not None
                and self.card.status in (CardStatus.STANDBY, CardStatus.INACTIVE))


@dataclass(frozen=True)
class ProvenKey:
    """A PK key whose possession a :class:`~pkcard.token.PossessionProof` proved.

    ``leaf_sha256`` is SHA-256 of the leaf certificate (compare it with the
    registry's pinned certificate); ``holder_id`` its subject serialNumber.
    """

    leaf_sha256: bytes
    holder_id: str


@dataclass(frozen=True)
class _Outstanding:
    client_id: bytes  # UTF-8, encoded once at issue for the constant-time comparison
    expires: datetime


class InMemoryNonceStore:
    """A bounded, thread-safe :class:`NonceStore` for one process (tests, single-node backends)."""

    def __init__(self, lifetime: timedelta = timedelta(seconds=120), capacity: int = 100_000):
        self._lifetime = lifetime
        self._capacity = capacity
        self._lock = threading.Lock()
        self._outstanding: OrderedDict[bytes, _Outstanding] = OrderedDict()
        self._used: OrderedDict[bytes, datetime] = OrderedDict()

    def issue(self, client_id: str, now: datetime) -> bytes:
        """A fresh 32-byte challenge bound to ``client_id``."""
        nonce = secrets.token_bytes(NONCE_LENGTH)
        with self._lock:
            self._prune(now)
            while len(self._outstanding) >= self._capacity:
                self._outstanding.popitem(last=False)
            self._outstanding[nonce] = _Outstanding(client_id.encode(), now + self._lifetime)
        return nonce

    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        with self._lock:
            entry = self._outstanding.get(nonce)
            if entry is None:
                return NonceOutcome.REUSED if nonce in self._used else NonceOutcome.UNKNOWN
            if not hmac.compare_digest(entry.client_id, client_id.encode()):
                return NonceOutcome.FOREIGN_CLIENT
            if now >= entry.expires:
                del self._outstanding[nonce]
                return NonceOutcome.EXPIRED
            del self._outstanding[nonce]
            self._used[nonce] = entry.expires
            return _ACCEPTED

    def _prune(self, now: datetime) -> None:
        while self._used and next(iter(self._used.values())) <= now:
            self._used.popitem(last=False)
        while self._used and len(self._used) >= self._capacity:
            self._used.popitem(last=False)


@dataclass(frozen=True)
class _ValidatedChain:
    """A chain that validated, the window in which it is valid, and its leaf key."""

    not_before: datetime
    not_after: datetime
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    algorithm: JwsAlgorithm
    leaf_sha256: bytes
    leaf_serial_attr: str | None


class _ChainCache:
    """LRU of validated chains keyed by the encoded chain itself. Thread-safe.

    The key is the token's header text (or a ``kzzCert``'s DER bytes): its
    dict hash is cheaper than a SHA-256 of it, and equal keys are equal bytes,
    so nothing but the exact encoding validated earlier ever hits an entry.
    Only validated chains are stored; a header holds at most
    MAX_HEADER_LENGTH characters, so the default 4096 entries take at most
    ≈ 50 MB (≈ 4 MB for the usual 1 KB header).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str | bytes, _ValidatedChain] = OrderedDict()

    def get(self, key: str | bytes, at: datetime) -> _ValidatedChain | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not entry.not_before <= at <= entry.not_after:
                return None  # outside the window: validate again (and refuse properly)
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str | bytes, entry: _ValidatedChain) -> None:
        if self._capacity <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TokenRefused(RefusalReason.DUPLICATE_JSON_KEY, "a JSON object repeats a key")
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise TokenRefused(RefusalReason.MALFORMED, "JSON holds a non-finite number")


def _json_object(segment: bytes, what: str) -> dict[str, Any]:
    try:
        text = segment.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_reject_duplicates,
                           parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TokenRefused(RefusalReason.MALFORMED, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenRefused(RefusalReason.MALFORMED, f"{what} is not a JSON object")
    return value


def _b64url(part: str, what: str) -> bytes:
    try:
        return b64url_decode(part)
    except FormatError as exc:
        raise TokenRefused(RefusalReason.MALFORMED, f"{what} is not base64url") from exc


def verify_card_signature(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, signature: bytes, digest: bytes
) -> bool:
    """Check a card's INTERNAL AUTHENTICATE answer over a SHA-256 ``digest``.

    EC P-256: raw ``r || s``, exactly 64 bytes, 0 < r, s < n. RSA: PSS with
    SHA-256, MGF1-SHA-256 and a 32-byte salt.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
            return False
        der = utils.encode_dss_signature(r, s)
        try:
            public_key.verify(der, digest, _ECDSA_PREHASHED)
        except InvalidSignature:
            return False
        return True
    if len(signature) != (public_key.key_size + 7) // 8:
        return False
    try:
        public_key.verify(signature, digest, _PSS_SALT_32, _SHA256_PREHASHED)
    except InvalidSignature:
        return False
    return True


def _card_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None:
    try:
        key = certificate_key(cert)
        algorithm_for(key)
    except FormatError:  # CertificateError too
        return None
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    return None


def _serial_attribute(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(attrs) != 1 or not isinstance(attrs[0].value, str):
        return None
    return attrs[0].value


def _has_digital_signature(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return usage.digital_signature


class TokenVerifier:
    """Verifies session tokens for ONE environment; thread-safe."""

    def __init__(
        self,
        trust: TrustAnchors,
        registry: RegistryView,
        nonce_store: NonceStore,
        clock: Clock,
        *,
        environment: Environment,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
        restricted_authorizations: Iterable[str] = (),
        chain_cache_size: int = 4096,
    ) -> None:
        if trust.environment is not environment:
            raise ValueError("the trust anchors belong to another environment")
        self._trust = trust
        self._registry = registry
        self._nonces = nonce_store
        self._clock = clock
        self._max_skew = max_skew
        self._max_skew_us = max_skew // _MICROSECOND
        self._environment = environment
        self._max_lifetime = max_lifetime
        self._max_lifetime_us = max_lifetime // _MICROSECOND
        self._restricted = frozenset(restricted_authorizations)
        self._pk_store = verification.Store(list(trust.pk))
        self._kzz_store = verification.Store(list(trust.kzz))
        self._pk_chains = _ChainCache(chain_cache_size)
        self._kzz_chains = _ChainCache(chain_cache_size)

    @property
    def environment(self) -> Environment:
        return self._environment

    def verify(self, token: str, client_id: str) -> VerifiedSession:
        """Verify ``token`` presented by ``client_id``; consumes its nonce on success.

        Raises :class:`TokenRefused`. The nonce is consumed only once the
        token's signatures and claims are valid, so a forged token cannot burn
        a client's challenge.
        """
        now = self._clock()
        claims, chain = self._verify_signed(token, now)
        self._check_nonce(claims.nonce, client_id, now)
        return self._check_registry(claims, chain)

    def _verify_signed(
        self, token: str, now: datetime
    ) -> tuple[SessionClaims, _ValidatedChain]:
        """Every check that needs neither the nonce store nor the registry."""
        header_part, payload_part, signature_part = self._split(token)
        payload_bytes = _b64url(payload_part, "payload")
        claims = parse_compact_payload(payload_bytes)  # what pkcardd writes: one regex
        if claims is None:
            claims = self._parse_payload(payload_bytes)
        if claims.environment is not self._environment:
            raise TokenRefused(
                RefusalReason.ENVIRONMENT_MISMATCH,
                f"a {wire_name(claims.environment)} token at a "
                f"{wire_name(self._environment)} verifier",
            )
        self._check_times(claims, now)
        # the chains are checked at the verifier's time, never at the token's own iat
        chain = self._pk_chain(header_part, now)
        signature = _b64url(signature_part, "signature")
        digest = hashlib.sha256(f"{header_part}.{payload_part}".encode("ascii")).digest()
        if not verify_card_signature(chain.public_key, signature, digest):
            raise TokenRefused(RefusalReason.BAD_SIGNATURE, "the PK signature does not verify")
        if chain.leaf_serial_attr is None or chain.leaf_serial_attr != claims.actor_id:
            raise TokenRefused(RefusalReason.HOLDER_MISMATCH,
                               "actorId differs from the certificate's holder id")
        if claims.proof_method is _KZZ_CONTACT:
            self._check_kzz(claims, now)
        return claims, chain

    @staticmethod
    def _parse_payload(payload_bytes: bytes) -> SessionClaims:
        """Any other layout: strict JSON, then the claims (or the reason they are refused)."""
        payload = _json_object(payload_bytes, "payload")
        try:
            return SessionClaims.from_json(payload)
        except FormatError as exc:
            version = payload.get("version")
            unsupported = isinstance(version, int) and version != TOKEN_VERSION
            reason = (RefusalReason.VERSION_UNSUPPORTED if unsupported
                      else RefusalReason.CLAIMS_INVALID)
            raise TokenRefused(reason, str(exc)) from exc

    def verify_possession(self, proof: PossessionProof, card_serial: str) -> ProvenKey:
        """Check a PK's proof of possession for ``card_serial``; no nonce, no registry.

        The chain must validate now to the PK trust anchors (digitalSignature,
        a P-256 or RSA >= 2048 key, a subject serialNumber), and the signature
        must verify over :func:`~pkcard.token.reactivation_proof_digest`. The
        caller consumes ``proof.nonce`` and binds the key to the card. Raises
        :class:`TokenRefused` with ``REACTIVATION_PROOF_INVALID``.
        """
        refused = RefusalReason.REACTIVATION_PROOF_INVALID
        if (len(proof.nonce) != NONCE_LENGTH or not 1 <= len(proof.chain) <= MAX_PROOF_CHAIN
                or len(proof.signature) > MAX_SIGNATURE_LENGTH or not card_serial.isascii()):
            raise TokenRefused(refused, "the proof of possession is malformed")
        try:
            certs = [x509.load_der_x509_certificate(der) for der in proof.chain]
        except (ValueError, x509.InvalidVersion) as exc:
            raise TokenRefused(refused, "the proof holds a malformed certificate") from exc
        leaf = certs[0]
        public_key = _card_key(leaf)
        holder = _serial_attribute(leaf)
        if public_key is None or holder is None:
            raise TokenRefused(refused, "the proof's certificate is not a PK authentication "
                               "certificate")
        try:
            self._validate_chain(self._pk_store, leaf, certs[1:], self._clock(), refused)
        except TokenRefused as exc:
            raise TokenRefused(refused, exc.detail) from None
        digest = reactivation_proof_digest(proof.nonce, card_serial)
        if not verify_card_signature(public_key, proof.signature, digest):
            raise TokenRefused(refused, "the proof's signature does not verify")
        return ProvenKey(hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest(), holder)

    # --- structure and header ---------------------------------------------

    @staticmethod
    def _split(token: str) -> tuple[str, str, str]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenRefused(RefusalReason.TOO_LARGE, f"tokens are at most {MAX_TOKEN_LENGTH} "
                               "characters")
        if not token.isascii():
            raise TokenRefused(RefusalReason.MALFORMED, "a compact JWS is ASCII")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRefused(RefusalReason.MALFORMED, "a compact JWS has three parts")
        header, payload, signature = parts
        if (len(header) > MAX_HEADER_LENGTH or len(payload) > MAX_PAYLOAD_LENGTH
                or len(signature) > MAX_SIGNATURE_LENGTH):
            raise TokenRefused(RefusalReason.TOO_LARGE, "a token part exceeds its size limit")
        if not header or not payload or not signature:
            raise TokenRefused(RefusalReason.MALFORMED, "a token part is empty")
        return header, payload, signature

    def _pk_chain(self, header_part: str, at: datetime) -> _ValidatedChain:
        cached = self._pk_chains.get(header_part, at)
        if cached is not None:
            return cached
        header = _json_object(_b64url(header_part, "header"), "header")
        unknown = set(header) - _HEADER_PARAMS
        if unknown:
            raise TokenRefused(RefusalReason.BAD_HEADER,
                               f"header parameters not allowed: {sorted(unknown)!r}")
        alg = header.get("alg")
        if alg not in ("ES256", "PS256"):
            raise TokenRefused(RefusalReason.ALG_NOT_ALLOWED, "alg must be ES256 or PS256")
        if header.get("typ") != JWS_TYP:
            raise TokenRefused(RefusalReason.BAD_HEADER, f"typ must be {JWS_TYP}")
        x5c = header.get("x5c")
        if (not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_CHAIN_LENGTH
                or not all(isinstance(c, str) for c in x5c)):
            raise TokenRefused(RefusalReason.BAD_HEADER, "x5c must list 1 to 4 certificates")
        try:
            certs = [load_certificate(b64_decode_strict(c)) for c in x5c]
        except FormatError as exc:  # CertificateError too: every lazily parsed part is read
            raise TokenRefused(RefusalReason.BAD_HEADER, "x5c holds a malformed certificate") \
                from exc
        leaf = certs[0]
        public_key = _card_key(leaf)
        if public_key is None:
            raise TokenRefused(RefusalReason.ALG_KEY_MISMATCH,
                               "the leaf key is neither EC P-256 nor RSA >= 2048")
        algorithm = algorithm_for(public_key)
        if algorithm.name != alg:
            raise TokenRefused(RefusalReason.ALG_KEY_MISMATCH,
                               f"alg {alg} does not match the {algorithm.name} leaf key")
        validated = self._validate_chain(self._pk_store, leaf, certs[1:], at)
        entry = _ValidatedChain(
            not_before=validated[0],
            not_after=validated[1],
            public_key=public_key,
            algorithm=algorithm,
            leaf_sha256=hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest(),
            leaf_serial_attr=_serial_attribute(leaf),
        )
        self._pk_chains.put(header_part, entry)
        return entry

    @staticmethod
    def _validate_chain(
        store: verification.Store,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        at: datetime,
        reason: RefusalReason = RefusalReason.CHAIN_INVALID,
    ) -> tuple[datetime, datetime]:
        """Validate ``leaf`` to ``store`` at ``at``; the window in which the chain is valid."""
        verifier = (
            verification.PolicyBuilder()
            .store(store)
            .time(at)
            .max_chain_depth(MAX_CHAIN_LENGTH)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            raise TokenRefused(reason, "the certificate chain does not validate now") \
                from exc
        if not _has_digital_signature(leaf):
            raise TokenRefused(RefusalReason.KEY_USAGE, "the certificate lacks digitalSignature")
        not_before = max(c.not_valid_before_utc for c in verified.chain)
        not_after = min(c.not_valid_after_utc for c in verified.chain)
        return not_before, not_after

    # --- claims -----------------------------------------------------------

    def _check_times(self, claims: SessionClaims, now: datetime) -> None:
        # whole microseconds since the epoch: exact, like datetime arithmetic, and defined
        # for every claim value (datetime stops at the year 9999, a claim at 2**40 s)
        now_us = (now - _EPOCH) // _MICROSECOND
        skew_us, lifetime_us = self._max_skew_us, self._max_lifetime_us
        iat, exp = claims.iat * 1_000_000, claims.exp * 1_000_000
        if iat > now_us + skew_us:
            raise TokenRefused(RefusalReason.CLOCK_SKEW, "iat lies in the future")
        if exp <= iat or exp - iat > lifetime_us:
            raise TokenRefused(RefusalReason.LIFETIME_TOO_LONG,
                               f"exp must follow iat by at most {self._max_lifetime}")
        if now_us - skew_us >= exp:
            raise TokenRefused(RefusalReason.TOKEN_EXPIRED, "the token has expired")
        if iat < now_us - skew_us:
            raise TokenRefused(RefusalReason.CLOCK_SKEW,
                               f"iat is more than {self._max_skew} in the past")
        if claims.patient_proof_time is not None:
            proof = claims.patient_proof_time * 1_000_000
            if proof > iat + skew_us or iat - proof > lifetime_us:
                raise TokenRefused(RefusalReason.CLAIMS_INVALID,
                                   "patientProofTime is not close to iat")

    def _check_kzz(self, claims: SessionClaims, at: datetime) -> None:
        cert_der, proof = claims.kzz_cert, claims.kzz_proof
        if cert_der is None or proof is None:  # SessionClaims guarantees both; be explicit
            raise TokenRefused(RefusalReason.KZZ_PROOF_MISSING, "no KZZ proof")
        chain = self._kzz_chains.get(cert_der, at)
        if chain is None:
            try:
                cert = load_certificate(cert_der)
            except FormatError as exc:
                raise TokenRefused(RefusalReason.KZZ_CHAIN_INVALID, "kzzCert is malformed") \
                    from exc
            public_key = _card_key(cert)
            if public_key is None:
                raise TokenRefused(RefusalReason.KZZ_CHAIN_INVALID,
                                   "the KZZ key is neither EC P-256 nor RSA >= 2048")
            window = self._validate_chain(self._kzz_store, cert, [], at,
                                          RefusalReason.KZZ_CHAIN_INVALID)
            chain = _ValidatedChain(window[0], window[1], public_key, algorithm_for(public_key),
                                    hashlib.sha256(cert_der).digest(), _serial_attribute(cert))
            self._kzz_chains.put(cert_der, chain)
        if chain.leaf_serial_attr is None:
            raise TokenRefused(RefusalReason.KZZ_PROOF_INVALID,
                               "the KZZ certificate carries no patient binding (serialNumber)")
        if chain.leaf_serial_attr != claims.patient_id:
            raise TokenRefused(RefusalReason.KZZ_PROOF_INVALID,
                               "the KZZ certificate belongs to another patient")
        digest = kzz_proof_digest(claims.nonce, claims.card_serial)
        if not verify_card_signature(chain.public_key, proof, digest):
            raise TokenRefused(RefusalReason.KZZ_PROOF_INVALID,
                               "the KZZ proof does not verify over this challenge")

    def _check_nonce(self, nonce: bytes, client_id: str, now: datetime) -> None:
        outcome = self._nonces.consume(nonce, client_id, now)
        if outcome is _ACCEPTED:
            return
        refusal = NONCE_REFUSALS.get(outcome)
        if refusal is not None:
            raise TokenRefused(refusal, f"challenge {outcome.name.lower().replace('_', ' ')}")

    # --- registry ---------------------------------------------------------

    def _check_registry(self, claims: SessionClaims, chain: _ValidatedChain) -> VerifiedSession:
        card = self._registry.card(claims.card_serial)
        if card is None:
            raise TokenRefused(RefusalReason.CARD_UNKNOWN, "the card is not registered")
        if card.auth_cert_sha256 is not None and not hmac.compare_digest(
            card.auth_cert_sha256, chain.leaf_sha256
        ):
            raise TokenRefused(RefusalReason.CARD_CERT_MISMATCH,
                               "the certificate is not the registered one of this card")
        if card.holder_id != claims.actor_id:
            raise TokenRefused(RefusalReason.HOLDER_MISMATCH, "the card belongs to another holder")
        if card.role is not claims.card_role:
            raise TokenRefused(RefusalReason.CARD_ROLE_MISMATCH, "cardRole differs from registry")
        status = card.status  # the enum members are module constants: class lookups cost
        if status is _REVOKED:
            raise TokenRefused(RefusalReason.CARD_REVOKED, "the card is revoked")
        if status is _STANDBY or status is _INACTIVE:
            if card.role is _BACKUP:
                if claims.backup_switch is None:
                    raise TokenRefused(
                        RefusalReason.BACKUP_SWITCH_NOT_CONFIRMED,
                        "this backup card is not active: using it deactivates your regular "
                        "card until it is reactivated; confirm the switch with a reason "
                        "(fault, loss or block)")
            elif status is _INACTIVE:  # the regular card while its backup is used
                raise TokenRefused(
                    RefusalReason.REGULAR_CARD_DEACTIVATED,
                    "your backup card is in use; reactivate your regular card with "
                    "pkpin reactivate",
                )
            else:
                raise TokenRefused(RefusalReason.CARD_INACTIVE, "the card is not active")
        requested = frozenset(claims.authorizations)
        granted = requested & self._registry.granted_authorizations(card.holder_id)
        restricted = claims.proof_method is not _KZZ_CONTACT
        if restricted:
            granted &= self._restricted
        if requested and not granted:
            raise AuthorizationsRefused("none of the requested authorizations is granted",
                                        holder_id=card.holder_id,
                                        requested=claims.authorizations,
                                        restricted=restricted)
        session = object.__new__(VerifiedSession)
        # every field is final here: set the frozen fields in one step (__init__ costs ~1 µs)
        object.__setattr__(session, "__dict__", {
            "claims": claims, "card": card, "algorithm": chain.algorithm,
            "scope": _RESTRICTED_SCOPE if restricted else _FULL_SCOPE, "granted": granted,
            "leaf_sha256": chain.leaf_sha256,
        })
        return session
