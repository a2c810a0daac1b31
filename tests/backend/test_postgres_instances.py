"""Three real ``pkcard-backend`` processes on one PostgreSQL behave exactly like one.

Each invariant has its race here, and the database guarantee that carries it
(docs/scaling.md): a challenge is redeemed once (the conditional UPDATE of
the nonce under its row lock), the backup switch happens once (the card row
``FOR UPDATE``), reactivation tries are counted exactly (the counter row
``FOR UPDATE``), the audit is one hash chain (the chain head row ``FOR
UPDATE``). Then the faults: an instance SIGKILLed mid-transaction, PostgreSQL
restarted under load, a database that cannot be reached at start.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest
from pgrig import Holder, enroll, race, reason, token, write_anchors
from pgserver import BackendProcess, backend_command, md, start_backends
from tokenrig import FAST_SCRYPT_N, PASSWORD, Pki

from pkcard.backend.pg_harness import PostgresServer
from pkcard.backend.registry import REACTIVATION_TRIES, AuditEvent, Registry
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.errors import tries_left_text
from pkcard.verify import CardStatus

WRONG = "Wrong-pass-123"
ADMIN = "registry-admin"
_holders = itertools.count(1)


class Rig:
    """The shared database, an admin registry on it, and three backend instances."""

    def __init__(self, url: str, registry: Registry, pki: Pki, anchors: tuple[Path, Path],
                 log_dir: Path, instances: list[BackendProcess]) -> None:
        self.url = url
        self.registry = registry
        self.pki = pki
        self.anchors = anchors
        self.log_dir = log_dir
        self.instances = instances

    def holder(self) -> Holder:
        return enroll(self.registry, self.pki, f"7{next(_holders):05d}")

    def challenge(self, instance: int, client: str) -> bytes:
        reply = self.instances[instance].session.IssueChallenge(
            pb.IssueChallengeRequest(), metadata=md(client), timeout=30)
        return bytes(reply.nonce)

    def redeem(self, instance: int, client: str, signed: str) -> pb.RedeemTokenResponse:
        reply: pb.RedeemTokenResponse = self.instances[instance].session.RedeemToken(
            pb.RedeemTokenRequest(token=signed), metadata=md(client), timeout=60)
        return reply

    def events(self, event: AuditEvent, holder: Holder) -> int:
        return sum(1 for r in self.registry.audit_records()
                   if r.event is event and r.holder_id == holder.holder_id)


@pytest.fixture(scope="module")
def rig(pg_server: PostgresServer, test_pki: Pki,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    url = pg_server.create_database("instances")
    registry = Registry(url, scrypt_n=FAST_SCRYPT_N)
    directory = tmp_path_factory.mktemp("instances")
    anchors = write_anchors(test_pki, directory)
    instances = start_backends(url, anchors, directory, 3)
    try:
        yield Rig(url, registry, test_pki, anchors, directory, instances)
    finally:
        for instance in instances:
            instance.stop()
        registry.close()


def test_a_challenge_is_redeemed_once_across_instances(rig: Rig) -> None:
    holder = rig.holder()
    client = "ws-once"
    signed = [token(rig.pki, holder, holder.regular, rig.challenge(i % 3, client))
              for i in range(12)]
    for one in signed:  # each token at all three instances at once
        results = race([lambda i=i, one=one: rig.redeem(i, client, one) for i in range(3)])
        accepted = [r for r in results if isinstance(r, pb.RedeemTokenResponse)]
        refused = [reason(r) for r in results if isinstance(r, grpc.RpcError)]
        assert len(accepted) == 1, refused
        assert refused == ["NONCE_REUSED", "NONCE_REUSED"]
    assert rig.events(AuditEvent.REDEEMED, holder) == 12
    assert rig.registry.verify_audit() > 0


def test_the_backup_switch_happens_once(rig: Rig) -> None:
    holders = [rig.holder() for _ in range(4)]
    client = "ws-backup"
    calls = []
    for holder in holders:  # three first tokens of each backup card, one per instance
        for i in range(3):
            signed = token(rig.pki, holder, holder.backup, rig.challenge(i, client))
            calls.append(lambda i=i, signed=signed: rig.redeem(i, client, signed))
    results = race(calls)
    assert all(isinstance(r, pb.RedeemTokenResponse) for r in results), \
        [reason(r) for r in results if isinstance(r, grpc.RpcError)]
    for index, holder in enumerate(holders):
        mine = results[3 * index:3 * index + 3]
        assert sum(r.backup_activated for r in mine) == 1
        assert rig.events(AuditEvent.BACKUP_ACTIVATED, holder) == 1
        assert rig.events(AuditEvent.REDEEMED, holder) == 3
        backup, regular = rig.registry.card(holder.backup.serial), \
            rig.registry.card(holder.regular.serial)
        assert backup is not None
        assert backup.status is CardStatus.ACTIVE
        assert regular is not None
        assert regular.status is CardStatus.INACTIVE


def _reactivate(rig: Rig, instance: int, serial: str, password: str) -> pb.ReactivateCardResponse:
    reply: pb.ReactivateCardResponse = rig.instances[instance].admin.ReactivateCard(
        pb.ReactivateCardRequest(card_serial=serial, reactivation_password=password),
        metadata=md(ADMIN), timeout=60)
    return reply


def test_reactivation_tries_are_counted_exactly(rig: Rig) -> None:
    holders = [rig.holder() for _ in range(4)]
    for _ in range(2):  # two rounds of three wrong passwords per holder, one per instance
        results = race([lambda i=i, h=h: _reactivate(rig, i, h.regular.serial, WRONG)
                        for h in holders for i in range(3)])
        assert all(isinstance(r, grpc.RpcError) for r in results)
    for holder in holders:
        refused = [r for r in rig.registry.audit_records()
                   if r.event is AuditEvent.REACTIVATION_REFUSED
                   and r.card_serial == holder.regular.serial]
        # five tries counted, each once (4, 3, 2, 1, 0 left); the sixth met a blocked counter
        assert sorted(r.detail for r in refused) == sorted(
            tries_left_text(n) for n in range(REACTIVATION_TRIES))
        with pytest.raises(grpc.RpcError) as blocked:
            _reactivate(rig, 0, holder.regular.serial, PASSWORD)
        assert reason(blocked.value) == "REACTIVATION_PASSWORD_BLOCKED"


def test_the_audit_is_one_chain_across_instances(rig: Rig) -> None:
    holder = rig.holder()
    clients = [f"ws-chain-{n}" for n in range(6)]
    work = {client: [token(rig.pki, holder, holder.regular, rig.challenge(n % 3, client))
                     for _ in range(10)] for n, client in enumerate(clients)}
    before = len(rig.registry.audit_records())

    def client_run(n: int, client: str) -> int:
        done = 0
        for signed in work[client]:
            rig.redeem(n % 3, client, signed)
            done += 1
        with pytest.raises(grpc.RpcError):  # a replay: one audited refusal per client
            rig.redeem((n + 1) % 3, client, work[client][0])
        return done

    with ThreadPoolExecutor(len(clients)) as pool:
        done = sum(pool.map(client_run, range(len(clients)), clients))
    assert done == 60
    records = rig.registry.audit_records()
    assert [r.id for r in records] == list(range(1, len(records) + 1))
    added = records[before:]
    assert sum(r.event is AuditEvent.REDEEMED for r in added) >= 60
    assert sum(r.event is AuditEvent.REFUSED and r.client_id in clients for r in added) == 6
    assert rig.registry.verify_audit() == len(records)


def _wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    give_up = time.monotonic() + limit
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"gave up waiting for {what}")


def test_an_instance_killed_mid_transaction_leaves_nothing_half_done(rig: Rig) -> None:
    holder = rig.holder()
    client = "ws-kill"
    nonce = rig.challenge(0, client)
    signed = token(rig.pki, holder, holder.backup, nonce)
    audit_before = len(rig.registry.audit_records())
    victim = start_backends(rig.url, rig.anchors, rig.log_dir, 1)[0]
    app = f"pkcard-backend:{victim.process.pid}"
    with psycopg.connect(rig.url, autocommit=True) as blocker, \
            psycopg.connect(rig.url, autocommit=True) as watcher:
        # hold the audit chain head: the victim's redemption gets as far as the backup
        # switch (nonce used, backup ACTIVE, regular INACTIVE) and waits there for it
        blocker.execute("BEGIN")
        blocker.execute("SELECT last_id FROM audit_head FOR UPDATE")
        call = victim.session.RedeemToken.future(pb.RedeemTokenRequest(token=signed),
                                                 metadata=md(client), timeout=60)

        def waiting() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", (app,)).fetchone()
            return row is not None and row[0] == 1

        _wait_for(waiting, "the victim's transaction to wait on the audit head")
        victim.kill()
        blocker.execute("ROLLBACK")

        def gone() -> bool:
            row = watcher.execute("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE application_name = %s", (app,)).fetchone()
            return row is not None and row[0] == 0

        _wait_for(gone, "the killed instance's sessions to end")
    with pytest.raises(grpc.RpcError):
        call.result()
    regular, backup = rig.registry.card(holder.regular.serial), \
        rig.registry.card(holder.backup.serial)
    assert regular is not None
    assert regular.status is CardStatus.ACTIVE
    assert backup is not None
    assert backup.status is CardStatus.STANDBY
    assert len(rig.registry.audit_records()) == audit_before
    rig.registry.verify_audit()
    reply = rig.redeem(1, client, signed)  # the nonce was never consumed: it still redeems
    assert reply.backup_activated


def test_postgres_restart_under_load_loses_and_doubles_nothing(
        rig: Rig, pg_server: PostgresServer) -> None:
    holder = rig.holder()
    clients = [f"ws-restart-{n}" for n in range(6)]
    rounds = 16
    acknowledged: list[bytes] = []
    typed_errors: list[str] = []
    replays: list[str] = []
    progress = threading.Semaphore(0)
    lock = threading.Lock()

    def call(fn: object) -> object:
        for _ in range(200):  # bounded: a typed UNAVAILABLE/ABORTED is retried
            try:
                return fn()  # type: ignore[operator]
            except grpc.RpcError as error:
                why = reason(error)
                if why not in ("REGISTRY_UNAVAILABLE", "REGISTRY_BUSY"):
                    raise
                with lock:
                    typed_errors.append(why)
        raise AssertionError("the backend never came back")

    def client_run(n: int, client: str) -> None:
        for _ in range(rounds):
            nonce: bytes = call(lambda: rig.challenge(n % 3, client))  # type: ignore[assignment]
            signed = token(rig.pki, holder, holder.regular, nonce)
            try:
                call(lambda signed=signed: rig.redeem(n % 3, client, signed))
            except grpc.RpcError as error:
                # only after an unknown-outcome UNAVAILABLE: the first attempt had landed
                with lock:
                    replays.append(reason(error))
            else:
                with lock:
                    acknowledged.append(nonce)
            progress.release()

    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(client_run, n, c) for n, c in enumerate(clients)]
        for _ in range(len(clients) * 4):  # a quarter of the load done
            progress.acquire(timeout=60)
        pg_server.restart(mode="immediate")  # a crash: every connection cut mid-flight
        for future in futures:
            future.result(timeout=120)
    with psycopg.connect(rig.url, autocommit=True) as conn:
        used = {bytes(row[0]) for row in conn.execute(
            "SELECT nonce FROM challenges WHERE used IS NOT NULL AND client_id LIKE %s",
            ("ws-restart-%",))}
    assert set(replays) <= {"NONCE_REUSED"}
    assert set(acknowledged) <= used  # nothing acknowledged was lost
    assert len(acknowledged) >= len(clients) * rounds - len(typed_errors)
    # nothing doubled: one REDEEMED row per used nonce of these clients
    assert rig.events(AuditEvent.REDEEMED, holder) == len(used)
    rig.registry.verify_audit()


def test_an_unreachable_database_at_start_is_a_clear_error(rig: Rig, tmp_path: Path) -> None:
    missing = tmp_path / "no-server"
    result = subprocess.run(
        backend_command(f"postgresql://pkcard@/registry?host={missing}&port=5999", rig.anchors),
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"cannot reach PostgreSQL at host {missing} port 5999 database registry " \
           "user pkcard" in result.stderr
    assert "pg_hba.conf" in result.stderr
    wrong_db = rig.url.replace("/instances?", "/no_such_database?")
    result = subprocess.run(backend_command(wrong_db, rig.anchors), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert 'database "no_such_database" does not exist' in result.stderr
