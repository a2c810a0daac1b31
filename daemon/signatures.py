"""pkcard.v1.SignatureService: qualified (KPEP) signatures over documents, and their check.

SignDocument hashes the document on the host (or takes its SHA-256), reads
the card's KPEP certificate and has the card sign the CAdES-BES signed
attributes (:func:`pkcard.cms.sign_detached_digest`) with the SPIN presented
for this one signature (sole control), or typed on the reader's PIN pad.
With a backend configured, the card's KPEP is checked there first: a KPEP
the holder revoked (``pkpin revoke-signature``) or a card reported lost is
refused (:class:`~pkcard.errors.SignatureRevoked`) before the SPIN is sent.
VerifyDocument checks a detached signature against the configured trust
anchors (:func:`pkcard.cms.verify_detached`).

The audit record of a signature holds the document's SHA-256 and the signing
certificate's fingerprint and serial, never the SPIN or the document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from pkcard.cms import SignedDocument, SignerCache, sign_detached_digest, verify_detached
from pkcard.daemon import cards
from pkcard.daemon.card_backends import CardBackends, PkJob
from pkcard.daemon.pin_entry import PinEntryPolicy, PinPresenter
from pkcard.daemon.services import AuditNote, Auditor, Intent
from pkcard.errors import InvalidRequest, NotSupported, TransportPinActive
from pkcard.pin import PinEntry, PinRef, entry_from_field, host_secret
from pkcard.pk import ProfessionalCard
from pkcard.pk_driver import KeySlot
from pkcard.v1 import signatures_pb2, signatures_pb2_grpc

if TYPE_CHECKING:  # cryptography loads with the first certificate (issue #14, G6)
    from cryptography import x509

MAX_DOCUMENT_BYTES = 768 * 1024
MAX_CMS_BYTES = 64 * 1024
SHA256_LENGTH = 32
ACTIVATE_HINT = (
    "the signing PIN (SPIN) is still in transport state: "
    "run `pkpin activate-signature` to set it with the TPIN first"
)


def load_trust_anchors(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """The certificates in the PEM files ``paths`` (each may hold several)."""
    if not paths:
        return ()
    from cryptography import x509  # noqa: PLC0415 - lazily: see the imports

    anchors: list[x509.Certificate] = []
    for path in paths:
        anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return tuple(anchors)


def simulated_trust_anchor_paths() -> tuple[Path, ...]:
    """The test PKI's PK CAs (fixtures/pki/ca/*-pk), which issue the simulated cards' KPEPs."""
    # Imported here: only a simulated daemon needs the test PKI.
    from pkcard.simcard.profile import TEST_CA_DIR  # noqa: PLC0415

    return tuple(sorted(TEST_CA_DIR.glob("*-pk/ca-cert.pem")))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _document_sha256(request: signatures_pb2.SignDocumentRequest) -> bytes:
    which = request.WhichOneof("content")
    if which == "document":
        if len(request.document) > MAX_DOCUMENT_BYTES:
            raise InvalidRequest(
                f"document is larger than {MAX_DOCUMENT_BYTES} bytes: send its SHA-256 instead"
            )
        return hashlib.sha256(request.document).digest()
    if which == "document_sha256":
        if len(request.document_sha256) != SHA256_LENGTH:
            raise InvalidRequest("document_sha256 must be 32 bytes (a SHA-256)")
        return request.document_sha256
    raise InvalidRequest("set document or document_sha256")


class SignatureServicer(signatures_pb2_grpc.SignatureServiceServicer):
    """SignDocument and VerifyDocument.

    The card job runs through ``backends`` (the reader's configured driver);
    the SPIN is presented under ``pin_entry`` (:mod:`pkcard.daemon.pin_entry`):
    a SPIN sent for a reader with a PIN pad is refused unless host entry is
    allowed, an empty SPIN on such a reader is typed there (announced), and a
    wrong or blocked SPIN counts against the card's failed-PIN limit; a card
    over the limit is refused (:class:`~pkcard.errors.RateLimited`) before the
    SPIN reaches it.
    """

    def __init__(
        self,
        backends: CardBackends,
        auditor: Auditor,
        trust_anchors: Sequence[x509.Certificate] | Callable[[], Sequence[x509.Certificate]],
        *,
        pin_entry: PinEntryPolicy | None = None,
        check_signature: Callable[[str], None] | None = None,
    ) -> None:
        # asks the backend whether the card's KPEP is revoked (SignatureRevoked), before the SPIN
        self._check_signature = check_signature
        self._backends = backends
        self._auditor = auditor
        # A callable is asked at each VerifySignature (it caches): the simulated daemon's
        # built-in test anchors are parsed then, not at start (cryptography, issue #14 G6).
        if callable(trust_anchors):
            self._trust_anchors = trust_anchors
        else:
            anchors = tuple(trust_anchors)
            self._trust_anchors = lambda: anchors
        self._pin_entry = pin_entry or PinEntryPolicy()
        # KPEP certificates parsed once, by their DER (a swapped card brings other bytes)
        self._signers = SignerCache()

    def _sign_job(
        self, presenter: PinPresenter, digest: bytes, spin: PinEntry, *, confirm: bool,
        note: AuditNote,
    ) -> PkJob[SignedDocument]:
        """The card job: read the KPEP certificate, present the SPIN, sign."""

        def run(card: ProfessionalCard, pin_pad: bool) -> SignedDocument:
            signing_time = datetime.now(UTC).replace(microsecond=0)
            presenter.on_pad((spin,), pin_pad, "SPIN")  # a refused host SPIN never reads the card
            serial = card.card_info().serial
            note.card_serial = serial
            if self._check_signature is not None:
                self._check_signature(serial)  # a revoked KPEP never gets the SPIN
            presenter.check(serial)  # before the certificate is read and the SPIN presented
            certificate_der = card.certificate(KeySlot.SIGNATURE)
            if certificate_der is None:
                raise NotSupported(
                    "this PK has no qualified signing certificate (KPEP): it cannot sign"
                )
            prepared = self._signers.get(certificate_der)
            signer = prepared.info
            note.certificate_sha256 = signer.sha256_fingerprint.hex()
            note.certificate_serial = format(signer.serial_number, "x")

            def sign(to_be_signed: bytes) -> bytes:
                return presenter.present(
                    serial, (spin,), pin_pad, what="SPIN",
                    host=lambda: card.sign(to_be_signed, host_secret(spin),
                                           confirm_last_try=confirm),
                    pad=lambda: card.sign_on_pad(to_be_signed, confirm_last_try=confirm))

            try:
                cms = sign_detached_digest(digest, prepared, sign, signing_time=signing_time)
            except TransportPinActive:
                raise TransportPinActive(ACTIVATE_HINT) from None
            return SignedDocument(cms, signer, signing_time, digest, serial)

        return run

    def SignDocument(
        self, request: signatures_pb2.SignDocumentRequest, context: grpc.ServicerContext
    ) -> signatures_pb2.SignDocumentResponse:
        with self._auditor.call(
            context, "SignDocument", reader=request.reader, reference=PinRef.SPIN,
            intent=Intent.DURABLE,
        ) as note, ExitStack() as wipe:
            spin = entry_from_field(request.spin)
            wipe.push(spin)  # wiped when the call ends
            request.spin = ""
            reader = cards.require_reader(request.reader)
            digest = _document_sha256(request)
            note.document_sha256 = digest.hex()
            remaining = context.time_remaining()
            signed = self._backends.pk(
                reader,
                self._sign_job(self._pin_entry.presenter(reader, context), digest, spin,
                               confirm=request.confirm_last_try, note=note),
                timeout=None if remaining is None else max(0.0, remaining),
                is_active=context.is_active,
            ).value
            return signatures_pb2.SignDocumentResponse(
                cms=signed.cms,
                signer=cards.certificate_message(signed.signer),
                signing_time=_timestamp(signed.signing_time),
                document_sha256=signed.document_sha256,
                card_serial=signed.card_serial,
            )

    def VerifyDocument(
        self, request: signatures_pb2.VerifyDocumentRequest, context: grpc.ServicerContext
    ) -> signatures_pb2.VerifyDocumentResponse:
        with self._auditor.call(context, "VerifyDocument") as note:
            if len(request.document) > MAX_DOCUMENT_BYTES:
                raise InvalidRequest(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
            if not request.cms or len(request.cms) > MAX_CMS_BYTES:
                raise InvalidRequest(f"cms must be 1 to {MAX_CMS_BYTES} bytes of DER")
            note.document_sha256 = hashlib.sha256(request.document).hexdigest()
            info = verify_detached(request.cms, request.document, self._trust_anchors())
            note.certificate_sha256 = info.signer.sha256_fingerprint.hex()
            note.certificate_serial = format(info.signer.serial_number, "x")
            response = signatures_pb2.VerifyDocumentResponse(
                signer=cards.certificate_message(info.signer),
                document_sha256=info.message_digest,
                trust_anchor=info.trust_anchor,
            )
            if info.signing_time is not None:
                response.signing_time.CopyFrom(_timestamp(info.signing_time))
            return response
