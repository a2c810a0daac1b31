"""The SQLite backend: registry, challenges, backup activation, reactivation, audit."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tokenrig import (
    BACKUP_SERIAL,
    FAST_SCRYPT_N,
    HOLDER,
    NOW,
    PASSWORD,
    REGULAR_SERIAL,
    FakeClock,
    Pki,
    make_token,
)

from pkcard.backend.core import SessionBackend
from pkcard.backend.migrations import MIGRATIONS
from pkcard.backend.registry import AuditEvent, Registry, WithdrawalReason
from pkcard.errors import (
    MalformedPin,
    PinBlocked,
    RefusalReason,
    RegistryConflict,
    RegistryNotFound,
    TokenRefused,
    WrongPin,
)
from pkcard.secret import Secret
from pkcard.token import CardRole, Environment
from pkcard.verify import CardStatus, SessionScope

CLIENT = "ws-ljubljana-01"


def enroll(registry: Registry, pki: Pki) -> None:
    registry.add_holder(HOLDER, "Dr Ana Test", NOW)
    registry.add_card(REGULAR_SERIAL, HOLDER, CardRole.REGULAR, NOW,
                      auth_cert_sha256=hashlib.sha256(pki.regular.cert_der).digest(),
                      reactivation_password=Secret(PASSWORD))
    registry.add_card(BACKUP_SERIAL, HOLDER, CardRole.BACKUP, NOW,
                      auth_cert_sha256=hashlib.sha256(pki.backup.cert_der).digest())
    registry.grant(HOLDER, "I002", NOW)
    registry.grant(HOLDER, "I003", NOW)


@pytest.fixture
def enrolled(registry: Registry, test_pki: Pki) -> Registry:
    enroll(registry, test_pki)
    return registry


def redeem(backend: SessionBackend, pki: Pki, card_name: str, clock: FakeClock,
           client: str = CLIENT, **claims: Any):
    challenge = backend.issue_challenge(client)
    token = make_token(pki, getattr(pki, card_name), challenge.nonce, now=clock.now, **claims)
    return backend.redeem(token, client)


def refusal(backend: SessionBackend, pki: Pki, card_name: str, clock: FakeClock,
            **claims: Any) -> TokenRefused:
    with pytest.raises(TokenRefused) as info:
        redeem(backend, pki, card_name, clock, **claims)
    return info.value


def test_schema_is_migrated_once_and_uses_wal(tmp_path: Path):
    path = tmp_path / "db.sqlite"
    first = Registry(path, scrypt_n=FAST_SCRYPT_N)
    assert first.schema_version() == len(MIGRATIONS)
    first.close()
    second = Registry(path, scrypt_n=FAST_SCRYPT_N)
    assert second.schema_version() == len(MIGRATIONS)
    second.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_version_1_database_is_upgraded_and_keeps_its_passwords(tmp_path: Path):
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "applied INTEGER NOT NULL)")
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute("INSERT INTO holders VALUES (?, 'Dr Ana Test', 0)", (HOLDER,))
    conn.execute("INSERT INTO cards VALUES (?, ?, 1, 3, NULL, 0)", (REGULAR_SERIAL, HOLDER))
    salt = b"\x01" * 16
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    conn.execute("INSERT INTO reactivation VALUES (?, ?, ?, 5)", (REGULAR_SERIAL, salt, digest))
    conn.commit()
    conn.close()
    registry = Registry(path, scrypt_n=2**10)
    assert registry.schema_version() == len(MIGRATIONS)  # every later migration applied
    assert registry.card(REGULAR_SERIAL).status is CardStatus.INACTIVE
    assert registry.reactivate(REGULAR_SERIAL, Secret(PASSWORD), NOW) == 5
    assert registry.card(REGULAR_SERIAL).status is CardStatus.ACTIVE
    registry.close()


def test_regular_card_redeems_with_granted_scope(backend, enrolled, test_pki, clock):
    redemption = redeem(backend, test_pki, "regular", clock)
    assert redemption.session.scope is SessionScope.FULL
    assert redemption.session.granted == {"I002", "I003"}
    assert not redemption.backup_activated
    events = [r.event for r in enrolled.audit_records()]
    assert events[-1] is AuditEvent.REDEEMED


def test_sqlite_nonce_is_single_use_and_client_bound(backend, enrolled, test_pki, clock):
    challenge = backend.issue_challenge(CLIENT)
    token = make_token(test_pki, test_pki.regular, challenge.nonce)
    with pytest.raises(TokenRefused) as foreign:
        backend.redeem(token, "ws-maribor-07")
    assert foreign.value.reason is RefusalReason.NONCE_FOREIGN_CLIENT
    backend.redeem(token, CLIENT)
    with pytest.raises(TokenRefused) as again:
        backend.redeem(token, CLIENT)
    assert again.value.reason is RefusalReason.NONCE_REUSED


def test_sqlite_nonce_expires(backend, enrolled, test_pki, clock):
    challenge = backend.issue_challenge(CLIENT)
    clock.advance(120)
    token = make_token(test_pki, test_pki.regular, challenge.nonce, now=clock.now)
    with pytest.raises(TokenRefused) as info:
        backend.redeem(token, CLIENT)
    assert info.value.reason is RefusalReason.NONCE_EXPIRED


def test_withdrawn_authorization_is_not_granted(backend, enrolled, test_pki, clock):
    enrolled.withdraw(HOLDER, "I003", WithdrawalReason.CONTRACT_EXPIRED, NOW)
    assert redeem(backend, test_pki, "regular", clock).session.granted == {"I002"}
    enrolled.withdraw(HOLDER, "I002", WithdrawalReason.LICENCE_WITHDRAWN, NOW)
    assert refusal(backend, test_pki, "regular", clock).reason is RefusalReason.NO_AUTHORIZATION
    with pytest.raises(RegistryNotFound):
        enrolled.withdraw(HOLDER, "I002", WithdrawalReason.MISUSE, NOW)
    enrolled.grant(HOLDER, "I002", NOW)
    assert redeem(backend, test_pki, "regular", clock).session.granted == {"I002"}


def test_revoked_card_is_refused(backend, enrolled, test_pki, clock):
    enrolled.revoke_card(REGULAR_SERIAL, NOW)
    assert refusal(backend, test_pki, "regular", clock).reason is RefusalReason.CARD_REVOKED
    with pytest.raises(RegistryConflict):
        enrolled.reactivate(REGULAR_SERIAL, Secret(PASSWORD), NOW)


def test_backup_activation_and_reactivation(backend, enrolled, test_pki, clock):
    first = redeem(backend, test_pki, "backup", clock)
    assert first.backup_activated
    assert enrolled.card(BACKUP_SERIAL).status is CardStatus.ACTIVE
    assert enrolled.card(REGULAR_SERIAL).status is CardStatus.INACTIVE
    assert not redeem(backend, test_pki, "backup", clock).backup_activated

    refused_regular = refusal(backend, test_pki, "regular", clock)
    assert refused_regular.reason is RefusalReason.REGULAR_CARD_DEACTIVATED
    assert "pkpin reactivate" in refused_regular.detail

    with pytest.raises(WrongPin) as wrong:
        enrolled.reactivate(REGULAR_SERIAL, Secret("Wrong-pass-1"), NOW)
    assert wrong.value.tries_left == 4
    assert enrolled.card(REGULAR_SERIAL).status is CardStatus.INACTIVE

    assert enrolled.reactivate(REGULAR_SERIAL, Secret(PASSWORD), NOW) == 5
    assert enrolled.card(REGULAR_SERIAL).status is CardStatus.ACTIVE
    assert enrolled.card(BACKUP_SERIAL).status is CardStatus.INACTIVE
    assert redeem(backend, test_pki, "regular", clock).session.granted
    # issue 15: the backup is inactive, not dead; without the holder's confirmed switch it is
    # refused (the reason saying what confirming does), with it the cards switch again
    unconfirmed = refusal(backend, test_pki, "backup", clock, backup_switch=None)
    assert unconfirmed.reason is RefusalReason.BACKUP_SWITCH_NOT_CONFIRMED
    assert "deactivates your regular card" in unconfirmed.detail
    assert enrolled.card(BACKUP_SERIAL).status is CardStatus.INACTIVE


def test_reactivation_password_tries_are_limited(enrolled):
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(WrongPin) as info:
            enrolled.reactivate(REGULAR_SERIAL, Secret("Wrong-pass-1"), NOW)
        assert info.value.tries_left == tries_left
    with pytest.raises(PinBlocked):
        enrolled.reactivate(REGULAR_SERIAL, Secret("Wrong-pass-1"), NOW)
    with pytest.raises(PinBlocked):  # blocked: the right password no longer helps
        enrolled.reactivate(REGULAR_SERIAL, Secret(PASSWORD), NOW)


@pytest.mark.parametrize("password", ["short", "x" * 17, "with space1", "naïve-pass"])
def test_malformed_reactivation_passwords_spend_no_try(enrolled, password):
    with pytest.raises(MalformedPin):
        enrolled.reactivate(REGULAR_SERIAL, Secret(password), NOW)
    with pytest.raises(WrongPin) as info:
        enrolled.reactivate(REGULAR_SERIAL, Secret("Wrong-pass-1"), NOW)
    assert info.value.tries_left == 4


def test_registry_admin_errors(enrolled):
    with pytest.raises(RegistryConflict):
        enrolled.add_holder(HOLDER, "again", NOW)
    with pytest.raises(RegistryConflict):
        enrolled.add_card(BACKUP_SERIAL, HOLDER, CardRole.BACKUP, NOW)
    with pytest.raises(RegistryNotFound):
        enrolled.add_card("PK9", "99999", CardRole.BACKUP, NOW)
    with pytest.raises(MalformedPin):
        enrolled.add_card("PK9", HOLDER, CardRole.REGULAR, NOW)
    with pytest.raises(RegistryNotFound):
        enrolled.revoke_card("PK9", NOW)


def test_concurrent_first_use_of_the_backup_activates_once(tmp_path, test_pki):
    path = tmp_path / "race.sqlite"
    setup = Registry(path, scrypt_n=FAST_SCRYPT_N)
    enroll(setup, test_pki)
    workers = 8
    clock = FakeClock(NOW)
    registries = [Registry(path, scrypt_n=FAST_SCRYPT_N) for _ in range(workers)]
    backends = [
        SessionBackend(reg, test_pki.anchors(), clock, environment=Environment.TEST)
        for reg in registries
    ]
    tokens = []
    for i, backend in enumerate(backends):
        challenge = backend.issue_challenge(f"ws-{i}")
        tokens.append(make_token(test_pki, test_pki.backup, challenge.nonce))
    barrier = threading.Barrier(workers)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            activated = backends[i].redeem(tokens[i], f"ws-{i}").backup_activated
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(activated)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False] * (workers - 1) + [True]
    activations = [r for r in setup.audit_records() if r.event is AuditEvent.BACKUP_ACTIVATED]
    assert len(activations) == 1
    assert setup.card(REGULAR_SERIAL).status is CardStatus.INACTIVE
    for reg in [setup, *registries]:
        reg.close()


def test_concurrent_redemptions_of_one_token_succeed_once(tmp_path, test_pki):
    path = tmp_path / "replay.sqlite"
    setup = Registry(path, scrypt_n=FAST_SCRYPT_N)
    enroll(setup, test_pki)
    clock = FakeClock(NOW)
    workers = 6
    registries = [Registry(path, scrypt_n=FAST_SCRYPT_N) for _ in range(workers)]
    backends = [SessionBackend(reg, test_pki.anchors(), clock, environment=Environment.TEST)
                for reg in registries]
    token = make_token(test_pki, test_pki.regular, backends[0].issue_challenge(CLIENT).nonce)
    barrier = threading.Barrier(workers)
    outcomes: list[RefusalReason | None] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            backends[i].redeem(token, CLIENT)
            outcome = None
        except TokenRefused as exc:
            outcome = exc.reason
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(None) == 1
    assert sorted(o for o in outcomes if o is not None) == [RefusalReason.NONCE_REUSED] * 5
    redeemed = [r for r in setup.audit_records() if r.event is AuditEvent.REDEEMED]
    assert len(redeemed) == 1
    for reg in [setup, *registries]:
        reg.close()


def test_redemption_rechecks_card_state_in_its_transaction(backend, enrolled, test_pki, clock):
    challenge = backend.issue_challenge(CLIENT)
    token = make_token(test_pki, test_pki.regular, challenge.nonce)
    session = backend.verifier.verify(token, CLIENT)  # verified while ACTIVE
    enrolled.revoke_card(REGULAR_SERIAL, NOW)
    with pytest.raises(TokenRefused) as info:
        enrolled.commit_redemption(session, CLIENT, NOW)
    assert info.value.reason is RefusalReason.CARD_REVOKED


def test_audit_records_refusals_without_secrets(backend, enrolled, test_pki, clock, tmp_path):
    challenge = backend.issue_challenge(CLIENT)
    token = make_token(test_pki, test_pki.regular, challenge.nonce)
    backend.redeem(token, CLIENT)
    with pytest.raises(TokenRefused):
        backend.redeem(token, CLIENT)
    with pytest.raises(WrongPin):
        enrolled.reactivate(REGULAR_SERIAL, Secret("Wrong-pass-1"), NOW)
    records = enrolled.audit_records()
    refusals = [r for r in records if r.event is AuditEvent.REFUSED]
    assert [r.reason for r in refusals] == [RefusalReason.NONCE_REUSED]
    assert refusals[0].client_id == CLIENT
    assert any(r.event is AuditEvent.REACTIVATION_REFUSED for r in records)
    enrolled.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("backend.sqlite*"))
    for secret in (PASSWORD.encode(), b"Wrong-pass-1", token.split(".")[2][:24].encode(),
                   token.split(".")[1][:24].encode()):
        assert secret not in blob


def test_challenges_expire_after_two_minutes(backend, enrolled, clock):
    challenge = backend.issue_challenge(CLIENT)
    assert challenge.expires - clock.now == timedelta(seconds=120)
    assert len(challenge.nonce) == 32
    assert backend.issue_challenge(CLIENT).nonce != challenge.nonce


def _redeem_in_process(path: str, anchors_env: tuple, token: str, client: str, queue) -> None:
    pki_anchors, environment = anchors_env
    registry = Registry(path, scrypt_n=FAST_SCRYPT_N)
    backend = SessionBackend(registry, pki_anchors, lambda: NOW, environment=environment)
    try:
        queue.put(("ok", backend.redeem(token, client).backup_activated))
    except TokenRefused as exc:
        queue.put(("refused", exc.reason.name))
    finally:
        registry.close()


def test_concurrent_first_use_of_the_backup_across_processes(tmp_path, test_pki):
    context = multiprocessing.get_context("fork")
    path = tmp_path / "processes.sqlite"
    setup = Registry(path, scrypt_n=FAST_SCRYPT_N)
    enroll(setup, test_pki)
    workers = 4
    tokens = [make_token(test_pki, test_pki.backup,
                         setup.issue_challenge(f"ws-{i}", NOW, timedelta(seconds=120)).nonce)
              for i in range(workers)]
    queue = context.Queue()
    processes = [
        context.Process(target=_redeem_in_process,
                        args=(str(path), (test_pki.anchors(), Environment.TEST), tokens[i],
                              f"ws-{i}", queue))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=60) for _ in range(workers)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sorted(results) == [("ok", False)] * (workers - 1) + [("ok", True)]
    activations = [r for r in setup.audit_records() if r.event is AuditEvent.BACKUP_ACTIVATED]
    assert len(activations) == 1
    setup.close()
