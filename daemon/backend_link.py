"""pkcardd's calls to the backend (pkcard.backend.v1) made for a card holder.

Reactivating a holder's regular PK after a backup card was
used (``pkpin reactivate``), through the backend's holder-facing
``SessionService.ReactivateCard``: the regular card's proof of possession
(its signature over a fresh challenge, :meth:`BackendLink.challenge`) and
the reactivation password are the authorization, so the workstation needs
no admin right. The backend checks
the password (salted scrypt, limited tries); the daemon only forwards it and
never logs it. Backend refusals become :mod:`pkcard.errors`: a wrong password
:class:`~pkcard.errors.WrongPin` with ``tries_left``, a blocked one
:class:`~pkcard.errors.PinBlocked`, anything else
:class:`~pkcard.errors.BackendRefused`; an unreachable backend
:class:`~pkcard.errors.BackendUnavailable`.

Issue 15 adds the holder's other backend calls (:mod:`pkcard.daemon.holder`):
the card's registry status, changing the reactivation password (the
backend's copy is the only one; the regular card's proof of possession
authorizes it as for a reactivation), revoking the KPEP and reporting a card
lost, stolen or misused (the reactivation password authorizes both).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from pkcard.backend.v1 import backend_pb2, backend_pb2_grpc
from pkcard.daemon.config import BackendConfig
from pkcard.errors import (
    BackendRefused,
    BackendUnavailable,
    MalformedPin,
    PinBlocked,
    PkcardError,
    WrongPin,
    tries_left_text,
)
from pkcard.secret import Secret
from pkcard.token import PossessionProof

BACKEND_ERROR_DOMAIN = "backend.pkcard.si"
CLIENT_METADATA_KEY = "x-pkcard-backend-client"
DEFAULT_TIMEOUT = 15.0
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    metadata: Iterable[Any] = error.trailing_metadata() or ()
    for key, value in metadata:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == BACKEND_ERROR_DOMAIN:
                return info
    return None


def backend_error(error: grpc.RpcError) -> PkcardError:
    """The pkcard error for a failed backend call. Never quotes the request."""
    code: grpc.StatusCode = error.code()
    if code in _UNREACHABLE:
        return BackendUnavailable(f"the backend did not answer ({code.name})")
    info = _error_info(error)
    reason = code.name if info is None else info.reason
    if reason == "REACTIVATION_PASSWORD_WRONG":
        try:
            tries = int(info.metadata.get("tries_left", "0")) if info is not None else 0
        except ValueError:
            tries = 0
        return WrongPin(tries, f"wrong reactivation password, {tries_left_text(tries)}")
    if reason == "REACTIVATION_PASSWORD_BLOCKED":
        return PinBlocked("the reactivation password is blocked; ask the card registry")
    if reason == "MALFORMED_PASSWORD":
        return MalformedPin("the backend refused the reactivation password's format")
    return BackendRefused(reason)


class BackendLink:
    """One gRPC channel to the backend; :meth:`close` releases it.

    ``client_id`` (the workstation id) is sent as the development identity
    when the link has no mutual TLS; with TLS the backend takes the
    certificate's common name instead.
    """

    def __init__(
        self, config: BackendConfig, client_id: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if config.tls is None:
            self._channel = grpc.insecure_channel(config.address)
            self._metadata: tuple[tuple[str, str], ...] = ((CLIENT_METADATA_KEY, client_id),)
        else:
            tls = config.tls
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls.server_ca.read_bytes(),
                private_key=tls.client_key.read_bytes(),
                certificate_chain=tls.client_certificate.read_bytes(),
            )
            self._channel = grpc.secure_channel(config.address, credentials)
            self._metadata = ()
        self._timeout = timeout
        self._sessions = backend_pb2_grpc.SessionServiceStub(self._channel)

    def challenge(self) -> bytes:
        """A fresh single-use challenge of this workstation (IssueChallenge)."""
        try:
            reply = self._sessions.IssueChallenge(backend_pb2.IssueChallengeRequest(),
                                                  timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise backend_error(error) from None
        return bytes(reply.nonce)

    def reactivate(self, card_serial: str, password: Secret, proof: PossessionProof) -> None:
        """Make the regular card ``card_serial`` active again; its backup becomes inactive.

        ``proof`` is the card's signature over a :meth:`challenge` of this link.
        """
        request = backend_pb2.ReactivateCardRequest(
            card_serial=card_serial, reactivation_password=password.reveal().decode("utf-8"),
            proof=backend_pb2.PossessionProof(nonce=proof.nonce,
                                              certificate_chain=list(proof.chain),
                                              signature=proof.signature),
        )
        try:
            self._sessions.ReactivateCard(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise backend_error(error) from None
        finally:
            request.Clear()

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise backend_error(error) from None

    def card_status(self, card_serial: str) -> backend_pb2.GetCardStatusResponse:
        """What the backend's registry knows about ``card_serial`` (GetCardStatus)."""
        reply: backend_pb2.GetCardStatusResponse = self._call(
            self._sessions.GetCardStatus, backend_pb2.GetCardStatusRequest(card_serial=card_serial))
        return reply

    def change_password(self, card_serial: str, old: Secret, new: Secret,
                        proof: PossessionProof) -> int:
        """Replace the holder's reactivation password at the backend (its only copy); returns
        its tries left."""
        request = backend_pb2.ChangeReactivationPasswordRequest(
            card_serial=card_serial, old_password=old.reveal().decode("utf-8"),
            new_password=new.reveal().decode("utf-8"),
            proof=backend_pb2.PossessionProof(nonce=proof.nonce,
                                              certificate_chain=list(proof.chain),
                                              signature=proof.signature),
        )
        try:
            reply: backend_pb2.ChangeReactivationPasswordResponse = self._call(
                self._sessions.ChangeReactivationPassword, request)
        finally:
            request.Clear()
        return reply.tries_left

    def revoke_signature(self, card_serial: str, password: Secret) -> None:
        """Revoke the KPEP of ``card_serial`` with the holder's reactivation password."""
        request = backend_pb2.RevokeSignatureRequest(
            card_serial=card_serial, reactivation_password=password.reveal().decode("utf-8"))
        try:
            self._call(self._sessions.RevokeSignature, request)
        finally:
            request.Clear()

    def report_lost(self, card_serial: str, reason: int, password: Secret) -> None:
        """Revoke a lost, stolen or misused card for good (``reason``: the LossReason number)."""
        request = backend_pb2.ReportCardLostRequest(
            card_serial=card_serial, reason=backend_pb2.LossReason.ValueType(reason),
            reactivation_password=password.reveal().decode("utf-8"))
        try:
            self._call(self._sessions.ReportCardLost, request)
        finally:
            request.Clear()

    def activate_backup(self, card_serial: str, reason: int, proof: PossessionProof) -> bool:
        """Switch to the backup card now (``reason``: the BackupSwitchReason number); False
        when it was already active."""
        reply: backend_pb2.ActivateBackupCardResponse = self._call(
            self._sessions.ActivateBackupCard, backend_pb2.ActivateBackupCardRequest(
                card_serial=card_serial, reason=backend_pb2.BackupSwitchReason.ValueType(reason),
                proof=backend_pb2.PossessionProof(nonce=proof.nonce,
                                                  certificate_chain=list(proof.chain),
                                                  signature=proof.signature)))
        return reply.activated

    def close(self) -> None:
        self._channel.close()
