"""The fuzz targets: one function per parser or driver, ``bytes`` in, nothing out.

A target swallows :class:`pkcard.errors.PkcardError` (the documented way to
refuse input) and lets every other exception escape: that is a finding. The
same functions run under atheris (``python -m fuzz``) and under hypothesis in
tests/fuzz.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from functools import cache
from pathlib import Path

import grpc
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

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


# --- the daemon's own surface (issue 12) ----------------------------------------
#
# These targets run real servers in this process: pkcardd (simulated readers,
# its embedded backend) and the reference backend, each on a Unix socket in a
# private temporary directory, started once per process and stopped at exit.
# A request may be refused with any typed status; INTERNAL or UNKNOWN (an
# exception no mapping knew) is a finding.

_BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
_CALL_TIMEOUT_S = 30.0


def _finding_if_unmapped(error: grpc.RpcError, what: str) -> None:
    code = error.code()
    if code in _BAD_CODES:
        raise AssertionError(f"{what} answered {code.name}: {error.details()}")


@dataclass(frozen=True)
class _Method:
    path: str
    request: type[Message]
    streaming: bool


@dataclass(frozen=True)
class DaemonRig:
    """pkcardd in process: two simulated readers without PIN pad, a PK and a KZZ."""

    channel: grpc.Channel
    readers: tuple[str, ...]
    methods: tuple[_Method, ...]
    insert: Callable[[], None]
    stop: Callable[[], None]


def _daemon_methods() -> tuple[_Method, ...]:
    from grpc_health.v1 import health_pb2  # noqa: PLC0415

    from pkcard.v1 import (  # noqa: PLC0415
        cards_pb2,
        readers_pb2,
        sessions_pb2,
        signatures_pb2,
        simulation_pb2,
    )

    services = [module.DESCRIPTOR.services_by_name[name] for module, name in (
        (readers_pb2, "ReaderService"), (cards_pb2, "CardService"),
        (sessions_pb2, "SessionService"), (signatures_pb2, "SignatureService"),
        (simulation_pb2, "SimulationService"), (health_pb2, "Health"))]
    return tuple(
        _Method(f"/{service.full_name}/{method.name}",
                message_factory.GetMessageClass(method.input_type), method.server_streaming)
        for service in services for method in service.methods
        if service.name != "Health" or method.name in ("Check", "Watch")  # grpc's own servicer
    )


@cache
def daemon_rig() -> DaemonRig:
    from pkcard.daemon.config import DaemonConfig, Limits, ReaderBackend  # noqa: PLC0415
    from pkcard.daemon.server import Daemon  # noqa: PLC0415
    from pkcard.daemon.simulation import extra_reader  # noqa: PLC0415
    from pkcard.simcard.inprocess import TWIN_READER, SimulatedReaderSystem  # noqa: PLC0415

    root = Path(tempfile.mkdtemp(prefix="pkcard-fuzz-daemon-", dir="/tmp"))
    root.chmod(0o700)
    infos = (TWIN_READER, extra_reader(2))  # no PIN pad: an empty PIN never waits for one
    system = SimulatedReaderSystem(infos)
    config = DaemonConfig(
        socket_dir=root / "run", reader_backend=ReaderBackend.SIMULATED,
        audit_log=root / "audit.jsonl", allow_host_pin_entry=True, state_dir=root / "state",
        limits=Limits(failed_pin_limit=1_000_000),
    )
    daemon = Daemon(config, system)
    daemon.start()
    channel = grpc.insecure_channel(f"unix:{daemon.socket_path}")

    def stop() -> None:
        channel.close()
        daemon.stop(grace=0)
        shutil.rmtree(root, ignore_errors=True)

    def insert() -> None:  # fresh cards for every input: no state carries over
        system.insert(infos[0].name, _fresh("pk-regular"))
        system.insert(infos[1].name, _fresh("kzz"))

    return DaemonRig(channel, tuple(info.name for info in infos), _daemon_methods(), insert,
                     stop)


_READER_FIELDS = ("reader", "pk_reader", "kzz_reader")


def daemon_requests(data: bytes) -> None:
    """A random protobuf request to any method of every servicer of a running pkcardd.

    The first byte picks the method, the second decides whether reader fields
    name a real reader (so requests get past the reader check), the rest is
    the serialized request; bytes that are no message of the method's type
    go as they are (the daemon must answer them INVALID_REQUEST).
    """
    rig = daemon_rig()
    if len(data) < 2:
        data = data.ljust(2, b"\0")
    method = rig.methods[data[0] % len(rig.methods)]
    body = data[2:]
    try:
        message = method.request.FromString(body)
    except DecodeError:
        payload = body  # the daemon answers INVALID_REQUEST (daemon/admission.py)
    else:
        for index, name in enumerate(_READER_FIELDS):
            if data[1] >> index & 1 and name in message.DESCRIPTOR.fields_by_name:
                setattr(message, name, rig.readers[(data[1] >> 4 >> index) % len(rig.readers)])
        payload = message.SerializeToString()
    rig.insert()
    try:
        if method.streaming:
            call = rig.channel.unary_stream(method.path, None, None)
            stream = call(payload, timeout=_CALL_TIMEOUT_S)
            try:
                next(iter(stream), None)
            finally:
                stream.cancel()  # type: ignore[no-untyped-call]
        else:
            rig.channel.unary_unary(method.path, None, None)(payload, timeout=_CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.CANCELLED:
            _finding_if_unmapped(error, method.path)


# --- the audit log reader and pkcard-audit verify --------------------------------


@cache
def _audit_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pkcard-fuzz-audit-", dir="/tmp"))
    root.chmod(0o700)
    atexit.register(shutil.rmtree, root, True)
    return root


def _fresh_log_path(name: str) -> Path:
    """``name`` in the audit scratch folder, with no log, head file or rotated file of an
    earlier input left (the head file would make the next log look cut off)."""
    for old in _audit_dir().glob(name + "*"):
        old.unlink()
    return _audit_dir() / name


def _valid_audit_log(records: int) -> bytes:
    from pkcard.daemon.audit import AuditEntry, AuditLog  # noqa: PLC0415

    path = _fresh_log_path("seed.jsonl")
    log = AuditLog(path)
    try:
        for index in range(records):
            log.append(AuditEntry(operation="VerifyPin", outcome="WRONG_PIN", uid=0,
                                  reader="Gemalto PC Twin Reader (simulated)",
                                  card_serial=SERIAL, tries_left=index), now=NOW)
    finally:
        log.close()
    return path.read_bytes()


def audit_log(data: bytes) -> None:
    """The audit-log reader (start-up and ``pkcard-audit verify``) on arbitrary file content.

    The verifier reports findings and never raises; the daemon's start-up
    either opens the log (then an appended record verifies) or refuses it
    with :class:`~pkcard.daemon.audit.AuditLogCorrupt`; ``pkcard-audit
    verify`` exits 0 exactly when the chain is intact, else 1.
    """
    from pkcard.daemon import audit, audit_cli  # noqa: PLC0415

    result = audit.verify_bytes(data)
    audit.verify_bytes(data, expected_head=hashlib.sha256(data).hexdigest())
    path = _fresh_log_path("audit.jsonl")
    path.write_bytes(data)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = audit_cli.main(["verify", str(path)])
    if code != (audit_cli.EXIT_INTACT if result.intact else audit_cli.EXIT_BROKEN):
        raise AssertionError(f"pkcard-audit verify exited {code}: {out.getvalue()[-300:]}")
    try:
        log = audit.AuditLog(path)
    except (audit.AuditLogCorrupt, PkcardError):
        if result.intact:
            raise AssertionError("an intact audit log was refused at start-up") from None
        return
    try:
        log.append(audit.AuditEntry(operation="Fuzz", outcome="OK"), now=NOW)
    finally:
        log.close()
    if not audit.verify_bytes(path.read_bytes()).intact:
        raise AssertionError("a record appended to an accepted log breaks the chain")


# --- the backend's RedeemToken ------------------------------------------------------


@dataclass(frozen=True)
class BackendRig:
    """The reference backend in process (SQLite registry, gRPC on a Unix socket)."""

    redeem: Callable[[bytes], object]
    nonce: Callable[[], bytes]
    token: TokenRig
    stop: Callable[[], None]


@cache
def backend_rig() -> BackendRig:
    from pkcard.backend.core import SessionBackend  # noqa: PLC0415
    from pkcard.backend.registry import Registry  # noqa: PLC0415
    from pkcard.backend.service import ClientIdentity, build_server  # noqa: PLC0415

    rig = token_rig()
    root = Path(tempfile.mkdtemp(prefix="pkcard-fuzz-backend-", dir="/tmp"))
    root.chmod(0o700)
    registry = Registry(root / "backend.sqlite", scrypt_n=2**8)
    registry.add_holder(HOLDER, "Dr Fuzz", NOW)
    registry.add_card(SERIAL, HOLDER, CardRole.REGULAR, NOW,
                      reactivation_password=Secret("Fuzz-pass-1"))
    registry.grant(HOLDER, "I002", NOW)
    anchors = TrustAnchors(Environment.TEST, (rig.pki.pk_ca.cert,), (rig.pki.kzz_ca.cert,))
    backend = SessionBackend(registry, anchors, lambda: NOW, environment=Environment.TEST,
                             restricted_authorizations={"I002"})
    server = build_server(backend, registry, lambda: NOW, identity=ClientIdentity.METADATA,
                          admins=frozenset(), max_workers=2)
    socket = root / "backend.sock"
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    channel = grpc.insecure_channel(f"unix:{socket}")

    def stop() -> None:
        channel.close()
        server.stop(None).wait()
        registry.close()
        shutil.rmtree(root, ignore_errors=True)
    metadata = (("x-pkcard-backend-client", CLIENT),)
    call = channel.unary_unary("/pkcard.backend.v1.SessionService/RedeemToken", None, None)
    challenge = channel.unary_unary("/pkcard.backend.v1.SessionService/IssueChallenge", None,
                                    None)

    def redeem(payload: bytes) -> object:
        return call(payload, metadata=metadata, timeout=_CALL_TIMEOUT_S)

    def nonce() -> bytes:
        from pkcard.backend.v1 import backend_pb2  # noqa: PLC0415

        reply = backend_pb2.IssueChallengeResponse.FromString(
            challenge(b"", metadata=metadata, timeout=_CALL_TIMEOUT_S))
        return bytes(reply.nonce)

    return BackendRig(redeem, nonce, rig, stop)


def shutdown() -> None:
    """Stop the servers the targets started in this process (pkcardd's reader workers
    are not daemon threads: a process that started them must call this before it ends)."""
    for started in (daemon_rig, backend_rig):
        if started.cache_info().currsize:
            started().stop()
            started.cache_clear()


def backend_redeem(data: bytes) -> None:
    """RedeemToken of a running reference backend: a random protobuf request, or a request
    carrying a valid token over a fresh challenge with one part replaced or one byte flipped."""
    from pkcard.backend.v1 import backend_pb2  # noqa: PLC0415

    rig = backend_rig()
    choice, rest = (data[0] % 6, data[1:]) if data else (0, b"")
    if choice == 0:  # the bytes as a serialized request (grpc refuses undecodable ones itself)
        try:
            payload = backend_pb2.RedeemTokenRequest.FromString(rest).SerializeToString()
        except DecodeError:
            return
    else:
        valid = rig.token.valid(rig.nonce()).split(".")
        if choice == 1:
            candidate = rest.decode("utf-8", errors="replace")
        elif choice == 5:
            text = ".".join(valid)
            at = int.from_bytes(rest[:2].ljust(2, b"\0"), "big") % len(text)
            flip = rest[2] if len(rest) > 2 else 1
            candidate = text[:at] + chr((ord(text[at]) ^ flip) % 128) + text[at + 1 :]
        else:
            valid[choice - 2] = b64url_encode(rest)
            candidate = ".".join(valid)
        payload = backend_pb2.RedeemTokenRequest(token=candidate).SerializeToString()
    try:
        rig.redeem(payload)
    except grpc.RpcError as error:
        _finding_if_unmapped(error, "RedeemToken")


TARGETS: dict[str, Target] = {
    "apdu": apdu,
    "audit": audit_log,
    "backend": backend_redeem,
    "daemon": daemon_requests,
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
    elif name == "audit":
        yield b""
        yield _valid_audit_log(3)
        yield _valid_audit_log(2)[:-7]  # a torn last line
        yield b'{"seq":1,"prev":"' + b"0" * 64 + b'","hash":"x"}\n'
    elif name == "backend":
        yield b"\0"
        yield b"\1" + b"e30.e30.e30"
        yield b"\2" + b'{"alg":"ES256"}'
        yield b"\5" + bytes([0, 40, 7])
    elif name == "daemon":
        for index, method in enumerate(_daemon_methods()):  # no server started here
            yield bytes([index, 0xFF]) + method.request().SerializeToString()
