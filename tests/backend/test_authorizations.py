"""Authorizations end to end over gRPC (issue 15 point 4): the eight withdrawal reasons of
the seed reach the clinic per code, the restricted OTHER reason with its text, and the
employer's orders with the eight-day reporting rule.

Each scenario runs on SQLite (an in-process server on a real TCP socket) and on a real
``pkcard-backend`` process over PostgreSQL (tests/pgserver.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pgrig import write_anchors
from pgserver import start_backends
from tokenrig import (
    BACKUP_SERIAL,
    HOLDER,
    NOW,
    PASSWORD,
    REGULAR_SERIAL,
    FakeClock,
    Pki,
    make_token,
)

from pkcard.backend.authorizations import REPORTING_DEADLINE, ChangeAction, WithdrawalReason
from pkcard.backend.core import SessionBackend
from pkcard.backend.database import open_database
from pkcard.backend.migrations import MIGRATIONS
from pkcard.backend.registry import AuditEvent, Registry
from pkcard.backend.service import CLIENT_METADATA_KEY, ERROR_DOMAIN, ClientIdentity, build_server
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc
from pkcard.token import ProofMethod

ADMIN = "registry-admin"
CLIENT = "ws-ljubljana-01"
EMPLOYER = "zd-ljubljana-01001"
OTHER_TEXT = "home visit: patient bedridden, KZZ left at the pharmacy"

# the seed's eight reasons, in its order ("ZZZS lahko po uradni dolžnosti odvzame pooblastila")
SEED_REASONS = [
    pb.WITHDRAWAL_REASON_LICENCE_WITHDRAWN,
    pb.WITHDRAWAL_REASON_CONTRACT_EXPIRED,
    pb.WITHDRAWAL_REASON_WRONG_PROFESSIONAL_GROUP,
    pb.WITHDRAWAL_REASON_COURT_ORDER,
    pb.WITHDRAWAL_REASON_MISUSE,
    pb.WITHDRAWAL_REASON_IRREGULAR_DATA_ACCESS,
    pb.WITHDRAWAL_REASON_NO_LONGER_ENTITLED,
    pb.WITHDRAWAL_REASON_HOLDER_REQUEST,
]


def md(client: str) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_METADATA_KEY, client),)


def error_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == ERROR_DOMAIN
    return error.code(), info.reason, dict(info.metadata)


@dataclasses.dataclass
class Backend:
    """One backend over gRPC, its holder enrolled, and a way to read its audit."""

    session: pb_grpc.SessionServiceStub
    admin: pb_grpc.RegistryAdminServiceStub
    pki: Pki
    now: Callable[[], datetime]
    audit: Callable[[], list[tuple[AuditEvent, str | None, str | None]]]

    def token(self, **kwargs: object) -> str:
        nonce = self.session.IssueChallenge(pb.IssueChallengeRequest(), metadata=md(CLIENT),
                                            timeout=30).nonce
        return make_token(self.pki, self.pki.regular, nonce, now=self.now(), **kwargs)

    def redeem(self, token: str) -> pb.RedeemTokenResponse:
        reply: pb.RedeemTokenResponse = self.session.RedeemToken(
            pb.RedeemTokenRequest(token=token), metadata=md(CLIENT), timeout=30)
        return reply

    def withdraw(self, code: str, reason: int) -> None:
        self.admin.WithdrawAuthorization(pb.WithdrawAuthorizationRequest(
            holder_id=HOLDER, code=code, reason=reason), metadata=md(ADMIN), timeout=30)

    def order(self, changed: datetime | int, *changes: tuple[str, int],
              client: str = ADMIN) -> pb.ChangeAuthorizationsResponse:
        unix = changed if isinstance(changed, int) else int(changed.timestamp())
        reply: pb.ChangeAuthorizationsResponse = self.admin.ChangeAuthorizations(
            pb.ChangeAuthorizationsRequest(
                employer_id=EMPLOYER, holder_id=HOLDER, changed_unix=unix,
                changes=[pb.AuthorizationChange(code=c, action=a) for c, a in changes]),
            metadata=md(client), timeout=30)
        return reply


def _enroll(admin: pb_grpc.RegistryAdminServiceStub, pki: Pki) -> None:
    admin.AddHolder(pb.AddHolderRequest(holder_id=HOLDER, name="Dr Ana Test"),
                    metadata=md(ADMIN), timeout=30)
    admin.AddCard(pb.AddCardRequest(card_serial=REGULAR_SERIAL, holder_id=HOLDER,
                                    role=pb.CARD_ROLE_REGULAR, auth_cert_der=pki.regular.cert_der,
                                    reactivation_password=PASSWORD), metadata=md(ADMIN),
                  timeout=30)
    admin.AddCard(pb.AddCardRequest(card_serial=BACKUP_SERIAL, holder_id=HOLDER,
                                    role=pb.CARD_ROLE_BACKUP, auth_cert_der=pki.backup.cert_der),
                  metadata=md(ADMIN), timeout=30)
    for code in ("I002", "I003"):
        admin.GrantAuthorization(pb.GrantAuthorizationRequest(holder_id=HOLDER, code=code),
                                 metadata=md(ADMIN), timeout=30)


def _audit_of(registry: Registry) -> Callable[[], list[tuple[AuditEvent, str | None,
                                                                 str | None]]]:
    return lambda: [(r.event, r.client_id, r.detail) for r in registry.audit_records()]


def _sqlite(test_pki: Pki, tmp_path: Path) -> Iterator[Backend]:
    clock = FakeClock(NOW)
    registry = Registry(tmp_path / "backend.sqlite", scrypt_n=2**10)
    backend = SessionBackend(registry, test_pki.anchors(), clock, environment=test_pki.environment,
                             restricted_authorizations={"I002"})
    server = build_server(backend, registry, clock, identity=ClientIdentity.METADATA,
                          admins=frozenset({ADMIN}), max_workers=4)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        admin = pb_grpc.RegistryAdminServiceStub(channel)
        _enroll(admin, test_pki)
        yield Backend(pb_grpc.SessionServiceStub(channel), admin, test_pki, clock,
                      _audit_of(registry))
    finally:
        channel.close()
        server.stop(None).wait()
        registry.close()


def _postgres(test_pki: Pki, tmp_path: Path, url: str) -> Iterator[Backend]:
    registry = Registry(url, scrypt_n=2**10)  # the test's window on the shared audit
    (instance,) = start_backends(url, write_anchors(test_pki, tmp_path), tmp_path, 1)
    try:
        _enroll(instance.admin, test_pki)
        yield Backend(instance.session, instance.admin, test_pki, lambda: datetime.now(UTC),
                      _audit_of(registry))
    finally:
        instance.stop()
        registry.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, test_pki: Pki, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield from _sqlite(test_pki, tmp_path)
    else:
        yield from _postgres(test_pki, tmp_path, request.getfixturevalue("pg_database"))


# --- withdrawal reasons, per code ---------------------------------------------------------


def test_the_seed_lists_eight_reasons_and_each_has_a_code() -> None:
    assert len(SEED_REASONS) == len(set(SEED_REASONS)) == 8
    assert {WithdrawalReason(r) for r in SEED_REASONS} == set(WithdrawalReason) - {
        WithdrawalReason.EMPLOYER_ORDER}
    for reason in WithdrawalReason:  # the IntEnum and the proto enum agree
        assert pb.WithdrawalReason.Value(f"WITHDRAWAL_REASON_{reason.name}") == reason


@pytest.mark.parametrize("reason", SEED_REASONS, ids=pb.WithdrawalReason.Name)
def test_each_withdrawal_reason_reaches_the_clinic(backend: Backend, reason: int) -> None:
    backend.withdraw("I003", reason)
    reply = backend.redeem(backend.token())
    assert list(reply.granted_authorizations) == ["I002"]
    granted, refused = reply.authorizations
    assert (granted.code, granted.granted, granted.refusal) == (
        "I002", True, pb.AUTHORIZATION_REFUSAL_UNSPECIFIED)
    assert (refused.code, refused.granted, refused.refusal, refused.withdrawal_reason) == (
        "I003", False, pb.AUTHORIZATION_REFUSAL_WITHDRAWN, reason)
    assert refused.withdrawn_unix > 0
    name = pb.WithdrawalReason.Name(reason).removeprefix("WITHDRAWAL_REASON_")
    withdrawn = [d for e, _c, d in backend.audit() if e is AuditEvent.AUTHORIZATION_WITHDRAWN]
    assert withdrawn == [f"I003 {name}"]
    redeemed = [d for e, _c, d in backend.audit() if e is AuditEvent.REDEEMED]
    assert redeemed == [f"FULL I002; refused I003 WITHDRAWN:{name}"]


def test_nothing_granted_names_each_code_and_why(backend: Backend) -> None:
    backend.withdraw("I002", pb.WITHDRAWAL_REASON_COURT_ORDER)
    backend.withdraw("I003", pb.WITHDRAWAL_REASON_NO_LONGER_ENTITLED)
    token = backend.token(authorizations=("I003", "X999", "I002"))
    with pytest.raises(grpc.RpcError) as refused:
        backend.redeem(token)
    code, reason, why = error_of(refused.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_AUTHORIZATION")
    assert why == {"authorization_I002": "WITHDRAWN:COURT_ORDER",
                   "authorization_I003": "WITHDRAWN:NO_LONGER_ENTITLED",
                   "authorization_X999": "NOT_HELD"}
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9_-]{1,63}", key) for key in why)  # ErrorInfo rule
    assert "I002 WITHDRAWN:COURT_ORDER" in (refused.value.details() or "")
    detail = [d for e, _c, d in backend.audit() if e is AuditEvent.REFUSED][-1]
    assert detail is not None
    assert "I003 WITHDRAWN:NO_LONGER_ENTITLED, X999 NOT_HELD, I002 WITHDRAWN:COURT_ORDER" in detail


def test_employer_order_is_not_a_zzzs_withdrawal_reason(backend: Backend) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        backend.withdraw("I003", pb.WITHDRAWAL_REASON_EMPLOYER_ORDER)
    assert error_of(refused.value)[0] == grpc.StatusCode.INVALID_ARGUMENT


# --- restricted mode: OTHER ---------------------------------------------------------------


def test_restricted_other_reason_in_the_reply_and_the_audit(backend: Backend) -> None:
    token = backend.token(restricted=ProofMethod.RESTRICTED_OTHER, restricted_reason=OTHER_TEXT)
    reply = backend.redeem(token)
    assert reply.scope == pb.SCOPE_RESTRICTED
    assert reply.restricted_reason == pb.RESTRICTED_REASON_OTHER
    assert reply.restricted_note == OTHER_TEXT
    assert [(a.code, a.granted, a.refusal) for a in reply.authorizations] == [
        ("I002", True, pb.AUTHORIZATION_REFUSAL_UNSPECIFIED),
        ("I003", False, pb.AUTHORIZATION_REFUSAL_NOT_IN_RESTRICTED_SET)]
    redeemed = [(c, d) for e, c, d in backend.audit() if e is AuditEvent.REDEEMED]
    assert redeemed == [(CLIENT, f"RESTRICTED I002; restricted-other: {OTHER_TEXT}; "
                                 "refused I003 NOT_IN_RESTRICTED_SET")]


def test_full_sessions_carry_no_restricted_reason(backend: Backend) -> None:
    reply = backend.redeem(backend.token())
    assert reply.restricted_reason == pb.RESTRICTED_REASON_UNSPECIFIED
    assert reply.restricted_note == ""
    assert [(a.code, a.granted) for a in reply.authorizations] == [("I002", True),
                                                                    ("I003", True)]


# --- the employer's side ------------------------------------------------------------------


def test_the_catalogue_is_seeded_and_extended(backend: Backend) -> None:
    codes = backend.admin.ListAuthorizationCodes(pb.ListAuthorizationCodesRequest(),
                                                 metadata=md(ADMIN), timeout=30).codes
    assert ("I002", "Urejevalec pooblastil in PK za imetnike PK") in [
        (c.code, c.name) for c in codes]
    backend.admin.AddAuthorizationCode(pb.AddAuthorizationCodeRequest(
        code="I010", name="pkcard test: reading prescriptions"), metadata=md(ADMIN), timeout=30)
    with pytest.raises(grpc.RpcError) as again:
        backend.admin.AddAuthorizationCode(pb.AddAuthorizationCodeRequest(
            code="I010", name="again"), metadata=md(ADMIN), timeout=30)
    assert error_of(again.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "CONFLICT")
    with pytest.raises(grpc.RpcError) as bad:
        backend.admin.AddAuthorizationCode(pb.AddAuthorizationCodeRequest(
            code="i010", name="lower case"), metadata=md(ADMIN), timeout=30)
    assert error_of(bad.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert [d for e, c, d in backend.audit() if e is AuditEvent.AUTHORIZATION_CODE_ADDED] == [
        "I010"]


def test_employer_orders_change_what_redemptions_grant(backend: Backend) -> None:
    backend.admin.AddAuthorizationCode(pb.AddAuthorizationCodeRequest(
        code="I010", name="pkcard test code"), metadata=md(ADMIN), timeout=30)
    changed = backend.now() - timedelta(days=2)
    reply = backend.order(changed, ("I010", pb.CHANGE_ACTION_GRANT),
                          ("I003", pb.CHANGE_ACTION_WITHDRAW))
    assert (reply.late, reply.days_after_change) == (False, 2)
    redeemed = backend.redeem(backend.token(authorizations=("I002", "I003", "I010")))
    assert list(redeemed.granted_authorizations) == ["I002", "I010"]
    refused = redeemed.authorizations[1]
    assert (refused.code, refused.refusal, refused.withdrawal_reason) == (
        "I003", pb.AUTHORIZATION_REFUSAL_WITHDRAWN, pb.WITHDRAWAL_REASON_EMPLOYER_ORDER)
    orders = [(c, d) for e, c, d in backend.audit() if e is AuditEvent.AUTHORIZATIONS_ORDERED]
    assert len(orders) == 1
    assert orders[0][0] == ADMIN
    assert orders[0][1] is not None
    assert orders[0][1].startswith(f"employer {EMPLOYER}: GRANT I010, WITHDRAW I003;")
    assert "LATE" not in orders[0][1]


def test_changes_reported_after_eight_days_are_listed_as_late(backend: Backend) -> None:
    now = backend.now()
    backend.order(now - timedelta(days=8) + timedelta(hours=1), ("I003", pb.CHANGE_ACTION_WITHDRAW))
    late = backend.order(now - timedelta(days=10), ("I003", pb.CHANGE_ACTION_GRANT))
    assert (late.late, late.days_after_change) == (True, 10)
    listed = backend.admin.ListAuthorizationChanges(pb.ListAuthorizationChangesRequest(
        late_only=True), metadata=md(ADMIN), timeout=30).changes
    assert [(c.code, c.action, c.late, c.days_after_change, c.employer_id, c.client_id)
            for c in listed] == [("I003", pb.CHANGE_ACTION_GRANT, True, 10, EMPLOYER, ADMIN)]
    assert listed[0].reported_unix - listed[0].changed_unix > REPORTING_DEADLINE.total_seconds()
    everything = backend.admin.ListAuthorizationChanges(pb.ListAuthorizationChangesRequest(
        holder_id=HOLDER), metadata=md(ADMIN), timeout=30).changes
    assert [(c.action, c.late) for c in everything] == [
        (pb.CHANGE_ACTION_WITHDRAW, False), (pb.CHANGE_ACTION_GRANT, True)]
    orders = [d or "" for e, _c, d in backend.audit() if e is AuditEvent.AUTHORIZATIONS_ORDERED]
    assert ["LATE" in d for d in orders] == [False, True]


@pytest.mark.parametrize(("changes", "days", "status"), [
    ([("I999", pb.CHANGE_ACTION_GRANT)], 1, grpc.StatusCode.NOT_FOUND),  # not in the catalogue
    ([("I002", pb.CHANGE_ACTION_GRANT), ("I999", pb.CHANGE_ACTION_GRANT)], 1,
     grpc.StatusCode.NOT_FOUND),
    ([("I002", pb.CHANGE_ACTION_WITHDRAW), ("I002", pb.CHANGE_ACTION_GRANT)], 1,
     grpc.StatusCode.INVALID_ARGUMENT),  # a code twice
    ([("I002", pb.CHANGE_ACTION_UNSPECIFIED)], 1, grpc.StatusCode.INVALID_ARGUMENT),
    ([], 1, grpc.StatusCode.INVALID_ARGUMENT),
    ([("I002", pb.CHANGE_ACTION_WITHDRAW)], -3, grpc.StatusCode.INVALID_ARGUMENT),  # future
    ([("I002", pb.CHANGE_ACTION_WITHDRAW)], None, grpc.StatusCode.INVALID_ARGUMENT),  # 2**62
])
def test_bad_orders_change_nothing(backend: Backend, changes: list[tuple[str, int]],
                                   days: int | None, status: grpc.StatusCode) -> None:
    before = backend.audit()
    with pytest.raises(grpc.RpcError) as refused:
        backend.order(2**62 if days is None else backend.now() - timedelta(days=days), *changes)
    assert error_of(refused.value)[0] == status
    assert backend.audit() == before
    reply = backend.redeem(backend.token())
    assert list(reply.granted_authorizations) == ["I002", "I003"]


def test_withdrawing_a_code_not_held_changes_nothing(backend: Backend) -> None:
    backend.withdraw("I003", pb.WITHDRAWAL_REASON_HOLDER_REQUEST)
    with pytest.raises(grpc.RpcError) as refused:
        backend.order(backend.now(), ("I002", pb.CHANGE_ACTION_WITHDRAW),
                      ("I003", pb.CHANGE_ACTION_WITHDRAW))
    assert error_of(refused.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "CONFLICT")
    assert list(backend.redeem(backend.token()).granted_authorizations) == ["I002"]


def test_only_admins_order_or_list(backend: Backend) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        backend.order(backend.now(), ("I002", pb.CHANGE_ACTION_WITHDRAW), client=CLIENT)
    assert error_of(refused.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ADMIN")
    for call, request in [
        (backend.admin.ListAuthorizationChanges, pb.ListAuthorizationChangesRequest()),
        (backend.admin.ListAuthorizationCodes, pb.ListAuthorizationCodesRequest()),
        (backend.admin.AddAuthorizationCode, pb.AddAuthorizationCodeRequest(code="I011",
                                                                           name="x")),
    ]:
        with pytest.raises(grpc.RpcError) as denied:
            call(request, metadata=md(CLIENT), timeout=30)
        assert error_of(denied.value)[1] == "NOT_AN_ADMIN"


def test_the_schema_migration_upgrades_a_version_3_database(tmp_path: Path) -> None:
    """A registry made before the catalogue (schema 3) gains it, keeping its rows."""
    path = tmp_path / "old.sqlite"
    database = open_database(path)
    database.migrate([m for m in MIGRATIONS if m[0] <= 3])
    with database.transaction() as conn:
        conn.execute("INSERT INTO holders VALUES ('H1', 'Old Holder', 0)")
        conn.execute("INSERT INTO authorizations VALUES ('H1', 'I002', 0, NULL, NULL)")
    database.close()
    registry = Registry(path, scrypt_n=2**10)
    try:
        assert registry.schema_version() == len(MIGRATIONS) >= 4
        assert registry.granted_authorizations("H1") == frozenset({"I002"})
        assert "I002" in {c.code for c in registry.catalogue()}
        registry.order_authorizations("E1", "H1", (("I002", ChangeAction.WITHDRAW),),
                                      NOW - timedelta(days=9), NOW)
        assert [c.late for c in registry.authorization_changes(late_only=True)] == [True]
    finally:
        registry.close()

