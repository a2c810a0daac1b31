"""gRPC servicers of the reference backend (pkcard.backend.v1) and the server builder.

The calling client is its mTLS identity (certificate common name) when the
server runs with TLS client authentication, else, in development, the
metadata value ``x-pkcard-backend-client``. Every refusal is a gRPC status
with a ``google.rpc.ErrorInfo`` (domain ``backend.pkcard.si``) whose reason is
the :class:`pkcard.errors.RefusalReason` name; :func:`status_for` is the one
mapping.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from pkcard.backend.authorizations import (
    AUTH_CODE_RE,
    MAX_CODE_NAME,
    AuthorizationOutcome,
    ChangeAction,
    ChangeRecord,
    WithdrawalReason,
    check_order,
)
from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import CardState, Registry
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc
from pkcard.errors import (
    AuthorizationsRefused,
    MalformedPin,
    PinBlocked,
    PkcardError,
    RefusalReason,
    RegistryBusy,
    RegistryConflict,
    RegistryNotFound,
    RegistryUnavailable,
    TokenRefused,
    WrongPin,
)
from pkcard.holder import LossReason
from pkcard.secret import Secret
from pkcard.token import BackupSwitchReason, CardRole, PossessionProof, ProofMethod
from pkcard.verify import Clock, SessionScope

ERROR_DOMAIN = "backend.pkcard.si"
CLIENT_METADATA_KEY = "x-pkcard-backend-client"
METADATA_PREFIX = "authorization_"  # NO_AUTHORIZATION: one ErrorInfo metadata key per code
MAX_REQUEST_BYTES = 65536  # a token is at most 16 KiB
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_log = logging.getLogger(__name__)

# Refusals about the card's state: the token is fine, the card may not be used.
_CARD_STATE = frozenset({RefusalReason.CARD_REVOKED, RefusalReason.CARD_INACTIVE,
                         RefusalReason.REGULAR_CARD_DEACTIVATED, RefusalReason.NO_AUTHORIZATION,
                         RefusalReason.BACKUP_SWITCH_NOT_CONFIRMED})

_T = TypeVar("_T")


class ClientIdentity(IntEnum):
    """Where the backend takes the calling client's id from."""

    MTLS = 1  # the peer certificate's common name
    METADATA = 2  # x-pkcard-backend-client (development only)


@dataclass(frozen=True)
class StatusDetail:
    """A gRPC status code, the ErrorInfo reason and metadata, and a message."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: tuple[tuple[str, str], ...] = ()


def status_for(exc: Exception) -> StatusDetail:
    """The one mapping from backend exceptions to gRPC statuses. Never quotes a secret."""
    if isinstance(exc, TokenRefused):
        code = (grpc.StatusCode.FAILED_PRECONDITION if exc.reason in _CARD_STATE
                else grpc.StatusCode.PERMISSION_DENIED)
        # NO_AUTHORIZATION: each requested code and why, as "authorization_<code>" keys
        # (ErrorInfo keys start lower-case: [a-z][a-zA-Z0-9-_]+, at most 64 characters)
        why = tuple((f"{METADATA_PREFIX}{code}", text) for code, text in exc.explanations) \
            if isinstance(exc, AuthorizationsRefused) else ()
        return StatusDetail(code, exc.reason.name, exc.detail, why)
    if isinstance(exc, WrongPin):
        return StatusDetail(grpc.StatusCode.PERMISSION_DENIED, "REACTIVATION_PASSWORD_WRONG",
                            str(exc), (("tries_left", str(exc.tries_left)),))
    if isinstance(exc, PinBlocked):
        return StatusDetail(grpc.StatusCode.PERMISSION_DENIED, "REACTIVATION_PASSWORD_BLOCKED",
                            str(exc), (("tries_left", "0"),))
    if isinstance(exc, MalformedPin):
        return StatusDetail(grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_PASSWORD", str(exc))
    if isinstance(exc, RegistryUnavailable):  # retry later; a redemption may have landed
        return StatusDetail(grpc.StatusCode.UNAVAILABLE, "REGISTRY_UNAVAILABLE",
                            "the registry database is unavailable; try again")
    if isinstance(exc, RegistryBusy):  # nothing was applied; retry
        return StatusDetail(grpc.StatusCode.ABORTED, "REGISTRY_BUSY",
                            "the registry is busy; nothing was applied, try again")
    if isinstance(exc, RegistryNotFound):
        return StatusDetail(grpc.StatusCode.NOT_FOUND, "NOT_FOUND", str(exc))
    if isinstance(exc, RegistryConflict):
        return StatusDetail(grpc.StatusCode.FAILED_PRECONDITION, "CONFLICT", str(exc))
    if isinstance(exc, PkcardError | ValueError):
        return StatusDetail(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", str(exc))
    return StatusDetail(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")


def to_grpc_status(detail: StatusDetail) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=detail.reason, domain=ERROR_DOMAIN,
                                       metadata=dict(detail.metadata))
    packed = any_pb2.Any()
    packed.Pack(info)
    message = status_pb2.Status(code=detail.code.value[0], message=detail.message,
                                details=[packed])
    status: grpc.Status = rpc_status.to_status(message)
    return status


def _abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    detail = status_for(exc)
    if detail.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
        _log.warning("backend call failed: %s", exc)
    if detail.code is grpc.StatusCode.INTERNAL:
        _log.error("internal error in backend call", exc_info=exc)
    context.abort_with_status(to_grpc_status(detail))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def client_id(context: grpc.ServicerContext, identity: ClientIdentity) -> str:
    """The calling client's id, or abort UNAUTHENTICATED."""
    value: str | None = None
    if identity is ClientIdentity.MTLS:
        # grpc returns a list of bytes here (its stubs say bytes)
        raw: object = context.auth_context().get("x509_common_name")
        found = [raw] if isinstance(raw, bytes) else raw if isinstance(raw, list) else []
        if len(found) == 1 and isinstance(found[0], bytes):
            value = found[0].decode("utf-8", "replace")
    else:
        for key, item in context.invocation_metadata():
            if key == CLIENT_METADATA_KEY and isinstance(item, str):
                value = item
    if value is None or not _CLIENT_ID_RE.fullmatch(value):
        context.abort_with_status(to_grpc_status(StatusDetail(
            grpc.StatusCode.UNAUTHENTICATED, "CLIENT_UNKNOWN", "no valid client identity")))
        raise AssertionError("abort_with_status returned")  # pragma: no cover
    return value


_RESTRICTED_REASONS = {
    ProofMethod.RESTRICTED_EMERGENCY: pb.RESTRICTED_REASON_EMERGENCY,
    ProofMethod.RESTRICTED_KZZ_UNUSABLE: pb.RESTRICTED_REASON_KZZ_UNUSABLE,
    ProofMethod.RESTRICTED_PATIENT_ABSENT: pb.RESTRICTED_REASON_PATIENT_ABSENT,
    ProofMethod.RESTRICTED_OTHER: pb.RESTRICTED_REASON_OTHER,
}


def _outcome_message(item: AuthorizationOutcome) -> pb.AuthorizationOutcome:
    return pb.AuthorizationOutcome(
        code=item.code, granted=item.granted,
        refusal=pb.AuthorizationRefusal.ValueType(0 if item.refusal is None
                                                   else int(item.refusal)),
        withdrawal_reason=pb.WithdrawalReason.ValueType(
            0 if item.withdrawal_reason is None else int(item.withdrawal_reason)),
        withdrawn_unix=item.withdrawn or 0,
    )


def _change_message(record: ChangeRecord) -> pb.AuthorizationChangeRecord:
    return pb.AuthorizationChangeRecord(
        employer_id=record.employer_id, holder_id=record.holder_id, code=record.code,
        action=pb.ChangeAction.ValueType(int(record.action)),
        changed_unix=record.changed, reported_unix=record.reported,
        days_after_change=record.days_after_change, late=record.late,
        client_id=record.client_id or "",
    )


def _guarded(context: grpc.ServicerContext, call: Callable[[], _T]) -> _T:
    try:
        return call()
    except Exception as exc:  # the one place backend exceptions become statuses
        _abort(context, exc)


class SessionServicer(pb_grpc.SessionServiceServicer):
    """IssueChallenge, RedeemToken and the holder's ReactivateCard (proof of possession of
    the regular card, then its reactivation password)."""

    def __init__(self, backend: SessionBackend, identity: ClientIdentity) -> None:
        self._backend = backend
        self._identity = identity

    def IssueChallenge(
        self, request: pb.IssueChallengeRequest, context: grpc.ServicerContext
    ) -> pb.IssueChallengeResponse:
        client = client_id(context, self._identity)
        challenge = _guarded(context, lambda: self._backend.issue_challenge(client))
        return pb.IssueChallengeResponse(nonce=challenge.nonce,
                                         expires_unix=int(challenge.expires.timestamp()))

    def RedeemToken(
        self, request: pb.RedeemTokenRequest, context: grpc.ServicerContext
    ) -> pb.RedeemTokenResponse:
        client = client_id(context, self._identity)
        redemption = _guarded(context, lambda: self._backend.redeem(request.token, client))
        session = redemption.session
        return pb.RedeemTokenResponse(
            actor_id=session.claims.actor_id,
            card_serial=session.claims.card_serial,
            scope=pb.SCOPE_FULL if session.scope is SessionScope.FULL else pb.SCOPE_RESTRICTED,
            granted_authorizations=sorted(session.granted),
            patient_id=session.claims.patient_id or "",
            backup_activated=redemption.backup_activated,
            restricted_reason=_RESTRICTED_REASONS.get(session.claims.proof_method,
                                                      pb.RESTRICTED_REASON_UNSPECIFIED),
            restricted_note=session.claims.restricted_reason or "",
            authorizations=[_outcome_message(item) for item in redemption.authorizations],
        )

    def ReactivateCard(
        self, request: pb.ReactivateCardRequest, context: grpc.ServicerContext
    ) -> pb.ReactivateCardResponse:
        client = client_id(context, self._identity)
        proof = None
        if request.HasField("proof"):
            proof = PossessionProof(bytes(request.proof.nonce),
                                    tuple(bytes(c) for c in request.proof.certificate_chain),
                                    bytes(request.proof.signature))

        def reactivate() -> int:
            with Secret(request.reactivation_password) as password:
                return self._backend.reactivate(request.card_serial, password, client, proof)

        try:
            tries = _guarded(context, reactivate)
        finally:
            request.Clear()
        return pb.ReactivateCardResponse(tries_left=tries)

    def GetCardStatus(
        self, request: pb.GetCardStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetCardStatusResponse:
        client_id(context, self._identity)
        state = _guarded(context, lambda: self._backend.card_state(request.card_serial))
        return card_status_message(state)

    def ChangeReactivationPassword(
        self, request: pb.ChangeReactivationPasswordRequest, context: grpc.ServicerContext
    ) -> pb.ChangeReactivationPasswordResponse:
        client = client_id(context, self._identity)
        proof = _proof(request.proof) if request.HasField("proof") else None

        def change() -> int:
            with Secret(request.old_password) as old, Secret(request.new_password) as new:
                return self._backend.change_password(request.card_serial, old, new, client,
                                                     proof)

        try:
            tries = _guarded(context, change)
        finally:
            request.Clear()
        return pb.ChangeReactivationPasswordResponse(tries_left=tries)

    def RevokeSignature(
        self, request: pb.RevokeSignatureRequest, context: grpc.ServicerContext
    ) -> pb.RevokeSignatureResponse:
        client = client_id(context, self._identity)

        def revoke() -> None:
            with Secret(request.reactivation_password) as password:
                self._backend.revoke_signature(request.card_serial, password, client)

        try:
            _guarded(context, revoke)
        finally:
            request.Clear()
        return pb.RevokeSignatureResponse()

    def ReportCardLost(
        self, request: pb.ReportCardLostRequest, context: grpc.ServicerContext
    ) -> pb.ReportCardLostResponse:
        client = client_id(context, self._identity)

        def report() -> None:
            reason = LossReason(int(request.reason))  # ValueError for UNSPECIFIED
            with Secret(request.reactivation_password) as password:
                self._backend.report_lost(request.card_serial, reason, password, client)

        try:
            _guarded(context, report)
        finally:
            request.Clear()
        return pb.ReportCardLostResponse()


    def ActivateBackupCard(
        self, request: pb.ActivateBackupCardRequest, context: grpc.ServicerContext
    ) -> pb.ActivateBackupCardResponse:
        client = client_id(context, self._identity)
        proof = _proof(request.proof) if request.HasField("proof") else None

        def activate() -> bool:
            reason = BackupSwitchReason(int(request.reason))  # ValueError for UNSPECIFIED
            return self._backend.activate_backup(request.card_serial, reason, client, proof)

        return pb.ActivateBackupCardResponse(activated=_guarded(context, activate))


def _proof(message: pb.PossessionProof) -> PossessionProof:
    return PossessionProof(bytes(message.nonce), tuple(bytes(c) for c in message.certificate_chain),
                           bytes(message.signature))


def card_status_message(state: CardState) -> pb.GetCardStatusResponse:
    """The GetCardStatus reply for a :class:`~pkcard.backend.registry.CardState`."""
    return pb.GetCardStatusResponse(
        card_serial=state.serial,
        role=pb.CardRole.ValueType(int(state.role)),
        status=pb.CardStatus.ValueType(int(state.status)),
        reactivation_tries_left=state.reactivation_tries_left,
        signature_revoked=state.signature_revoked,
        loss_reason=pb.LossReason.ValueType(0 if state.loss_reason is None
                                            else int(state.loss_reason)),
        switches=[pb.CardSwitch(time_unix=item.time, kind=pb.SwitchKind.ValueType(int(item.kind)),
                                card_serial=item.card_serial,
                                reason=pb.BackupSwitchReason.ValueType(
                                    0 if item.reason is None else int(item.reason)))
                  for item in state.switches],
    )


class RegistryAdminServicer(pb_grpc.RegistryAdminServiceServicer):
    """Registry administration, for the client ids in ``admins`` only."""

    def __init__(self, registry: Registry, clock: Clock, identity: ClientIdentity,
                 admins: frozenset[str]) -> None:
        self._registry = registry
        self._clock = clock
        self._identity = identity
        self._admins = admins

    def _now_for_admin(self, context: grpc.ServicerContext) -> datetime:
        if self._admin(context) not in self._admins:
            context.abort_with_status(to_grpc_status(StatusDetail(
                grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ADMIN",
                "this client may not administer the registry")))
        return self._clock()

    def _admin(self, context: grpc.ServicerContext) -> str:
        return client_id(context, self._identity)

    def AddHolder(
        self, request: pb.AddHolderRequest, context: grpc.ServicerContext
    ) -> pb.AddHolderResponse:
        now = self._now_for_admin(context)
        _guarded(context, lambda: self._registry.add_holder(request.holder_id, request.name, now))
        return pb.AddHolderResponse()

    def AddCard(
        self, request: pb.AddCardRequest, context: grpc.ServicerContext
    ) -> pb.AddCardResponse:
        now = self._now_for_admin(context)

        def add() -> None:
            if request.role not in (pb.CARD_ROLE_REGULAR, pb.CARD_ROLE_BACKUP):
                raise ValueError("role must be regular or backup")
            role = CardRole(int(request.role))
            cert = request.auth_cert_der or None
            digest = None if cert is None else hashlib.sha256(cert).digest()
            password = Secret(request.reactivation_password) if request.reactivation_password \
                else None
            try:
                self._registry.add_card(request.card_serial, request.holder_id, role, now,
                                        auth_cert_sha256=digest,
                                        reactivation_password=password)
            finally:
                if password is not None:
                    password.wipe()

        _guarded(context, add)
        return pb.AddCardResponse()

    def GrantAuthorization(
        self, request: pb.GrantAuthorizationRequest, context: grpc.ServicerContext
    ) -> pb.GrantAuthorizationResponse:
        now = self._now_for_admin(context)
        _guarded(context, lambda: self._registry.grant(request.holder_id, request.code, now))
        return pb.GrantAuthorizationResponse()

    def WithdrawAuthorization(
        self, request: pb.WithdrawAuthorizationRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawAuthorizationResponse:
        now = self._now_for_admin(context)

        def withdraw() -> None:
            reason = WithdrawalReason(int(request.reason))  # ValueError for UNSPECIFIED
            if reason is WithdrawalReason.EMPLOYER_ORDER:
                raise ValueError("EMPLOYER_ORDER is the employer's: use ChangeAuthorizations")
            self._registry.withdraw(request.holder_id, request.code, reason, now)

        _guarded(context, withdraw)
        return pb.WithdrawAuthorizationResponse()

    def RevokeCard(
        self, request: pb.RevokeCardRequest, context: grpc.ServicerContext
    ) -> pb.RevokeCardResponse:
        now = self._now_for_admin(context)
        _guarded(context, lambda: self._registry.revoke_card(request.card_serial, now))
        return pb.RevokeCardResponse()

    def ReactivateCard(
        self, request: pb.ReactivateCardRequest, context: grpc.ServicerContext
    ) -> pb.ReactivateCardResponse:
        now = self._now_for_admin(context)

        def reactivate() -> int:
            with Secret(request.reactivation_password) as password:
                return self._registry.reactivate(request.card_serial, password, now)

        tries = _guarded(context, reactivate)
        return pb.ReactivateCardResponse(tries_left=tries)


    def ChangeAuthorizations(
        self, request: pb.ChangeAuthorizationsRequest, context: grpc.ServicerContext
    ) -> pb.ChangeAuthorizationsResponse:
        now = self._now_for_admin(context)
        admin = self._admin(context)

        def order() -> tuple[ChangeRecord, ...]:
            if request.changed_unix <= 0:
                raise ValueError("changed_unix must be set: when the change took effect")
            if request.changed_unix > now.timestamp() + 86400:  # before it overflows datetime
                raise ValueError("changed_unix lies in the future")
            changed = datetime.fromtimestamp(request.changed_unix, UTC)
            changes = check_order(
                request.employer_id, request.holder_id,
                [(change.code, ChangeAction(int(change.action))) for change in request.changes],
                changed=changed, now=now)
            return self._registry.order_authorizations(request.employer_id, request.holder_id,
                                                       changes, changed, now, client_id=admin)

        records = _guarded(context, order)
        first = records[0]
        return pb.ChangeAuthorizationsResponse(reported_unix=first.reported,
                                               days_after_change=first.days_after_change,
                                               late=first.late)

    def ListAuthorizationChanges(
        self, request: pb.ListAuthorizationChangesRequest, context: grpc.ServicerContext
    ) -> pb.ListAuthorizationChangesResponse:
        self._now_for_admin(context)
        records = _guarded(context, lambda: self._registry.authorization_changes(
            late_only=request.late_only, holder_id=request.holder_id or None,
            employer_id=request.employer_id or None))
        return pb.ListAuthorizationChangesResponse(
            changes=[_change_message(record) for record in records])

    def ListAuthorizationCodes(
        self, request: pb.ListAuthorizationCodesRequest, context: grpc.ServicerContext
    ) -> pb.ListAuthorizationCodesResponse:
        self._now_for_admin(context)
        codes = _guarded(context, self._registry.catalogue)
        return pb.ListAuthorizationCodesResponse(
            codes=[pb.AuthorizationCode(code=item.code, name=item.name) for item in codes])

    def AddAuthorizationCode(
        self, request: pb.AddAuthorizationCodeRequest, context: grpc.ServicerContext
    ) -> pb.AddAuthorizationCodeResponse:
        now = self._now_for_admin(context)
        admin = self._admin(context)

        def add() -> None:
            if not AUTH_CODE_RE.fullmatch(request.code):
                raise ValueError("code must be [A-Z][A-Z0-9]{1,15}")
            name = request.name
            if not name.strip() or len(name) > MAX_CODE_NAME or not name.isprintable():
                raise ValueError(f"name must be 1-{MAX_CODE_NAME} printable characters")
            self._registry.add_catalogue_code(request.code, name, now, client_id=admin)

        _guarded(context, add)
        return pb.AddAuthorizationCodeResponse()


def build_server(
    backend: SessionBackend,
    registry: Registry,
    clock: Clock,
    *,
    identity: ClientIdentity,
    admins: frozenset[str],
    max_workers: int = 16,
) -> grpc.Server:
    """A gRPC server with both services added; the caller adds ports, starts and stops it."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    pb_grpc.add_SessionServiceServicer_to_server(SessionServicer(backend, identity), server)
    pb_grpc.add_RegistryAdminServiceServicer_to_server(
        RegistryAdminServicer(registry, clock, identity, admins), server)
    return server
