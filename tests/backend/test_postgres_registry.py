"""The registry on a real PostgreSQL, in process: migrations, bounded retries, the purge."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pgrig import enroll, token
from tokenrig import FAST_SCRYPT_N, Pki

from pkcard.backend.core import SessionBackend
from pkcard.backend.database import CONFLICT_ATTEMPTS, Engine
from pkcard.backend.main import main as backend_main
from pkcard.backend.migrations import MIGRATIONS
from pkcard.backend.registry import (
    CHALLENGE_RETENTION,
    PURGE_BATCH,
    PURGE_EVERY,
    AuditEvent,
    Registry,
)
from pkcard.errors import RegistryBusy, RegistryUnavailable
from pkcard.token import Environment
from pkcard.verify import NonceOutcome

LIFETIME = timedelta(seconds=120)


def test_migrations_run_on_postgres_and_concurrent_starts_migrate_once(pg_database: str) -> None:
    registries: list[Registry] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            registries.append(Registry(pg_database, scrypt_n=FAST_SCRYPT_N))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {r.engine for r in registries} == {Engine.POSTGRESQL}
    assert {r.schema_version() for r in registries} == {len(MIGRATIONS)}
    with psycopg.connect(pg_database) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None
        assert row[0] == len(MIGRATIONS)
    for registry in registries:
        registry.close()


def _fail_updates_of_challenges(url: str, times: int) -> None:
    """A real server-side serialization failure on the next ``times`` UPDATEs of challenges
    (the budget is a sequence: nextval survives the rollback of the failing transaction)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE fault_budget")
        conn.execute(
            "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF nextval('fault_budget') <= {int(times)} THEN "
            "RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure'; END IF; "
            "RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER fault BEFORE UPDATE ON challenges "
                     "FOR EACH ROW EXECUTE FUNCTION fault()")


@pytest.mark.parametrize("failures", [CONFLICT_ATTEMPTS - 1, CONFLICT_ATTEMPTS])
def test_serialization_failures_are_retried_within_a_bound(
        pg_database: str, test_pki: Pki, failures: int) -> None:
    registry = Registry(pg_database, scrypt_n=FAST_SCRYPT_N)
    holder = enroll(registry, test_pki, "810001")
    backend = SessionBackend(registry, test_pki.anchors(), lambda: datetime.now(UTC),
                             environment=Environment.TEST)
    challenge = backend.issue_challenge("ws-retry")
    signed = token(test_pki, holder, holder.regular, challenge.nonce)
    _fail_updates_of_challenges(pg_database, failures)
    if failures < CONFLICT_ATTEMPTS:  # retried until it went through, applied once
        assert backend.redeem(signed, "ws-retry").session.card.serial == holder.regular.serial
        assert registry.check_nonce(challenge.nonce, "ws-retry", datetime.now(UTC)) \
            is NonceOutcome.REUSED
        redeemed = 1
    else:  # the bound: a typed error, nothing applied
        with pytest.raises(RegistryBusy, match=f"{CONFLICT_ATTEMPTS} times"):
            backend.redeem(signed, "ws-retry")
        assert registry.check_nonce(challenge.nonce, "ws-retry", datetime.now(UTC)) \
            is NonceOutcome.ACCEPTED
        redeemed = 0
    assert sum(r.event is AuditEvent.REDEEMED for r in registry.audit_records()) == redeemed
    registry.verify_audit()
    registry.close()


def test_the_challenge_table_stays_bounded_under_steady_load(pg_database: str) -> None:
    registry = Registry(pg_database, scrypt_n=FAST_SCRYPT_N)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    per_minute = 32  # a steady load over four simulated hours
    for minute in range(4 * 60):
        now = start + timedelta(minutes=minute)
        for _ in range(per_minute):
            registry.issue_challenge("ws-steady", now, LIFETIME)
    # what must be kept: challenges that could still back a token (lifetime + retention),
    # plus at most one purge interval of slack
    kept_minutes = (LIFETIME + CHALLENGE_RETENTION).total_seconds() / 60 + 1
    assert registry.challenge_count() <= per_minute * kept_minutes + PURGE_EVERY + PURGE_BATCH
    assert registry.challenge_count() < per_minute * 4 * 60 / 2
    registry.close()


def test_the_purge_passes_over_rows_a_transaction_holds(pg_database: str) -> None:
    registry = Registry(pg_database, scrypt_n=FAST_SCRYPT_N)
    old = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    held = registry.issue_challenge("ws-held", old, LIFETIME)
    for _ in range(5):
        registry.issue_challenge("ws-old", old, LIFETIME)
    purged: list[int] = []
    with psycopg.connect(pg_database, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM challenges WHERE nonce = %s FOR UPDATE", (held.nonce,))
        # never waits for the held row: it purges the five others and leaves that one
        # (without SKIP LOCKED it would wait for this transaction, which ends only below)
        purge = threading.Thread(
            target=lambda: purged.append(registry.purge_expired(old + timedelta(hours=2))))
        purge.start()
        purge.join(timeout=60)
        blocked = purge.is_alive()
        other.execute("ROLLBACK")
        purge.join()
    assert not blocked, "the purge waited for a row another transaction holds"
    assert purged == [5]
    assert registry.challenge_count() == 1
    assert registry.purge_expired(old + timedelta(hours=2)) == 1
    registry.close()


def test_an_unreachable_server_is_a_typed_error_naming_it() -> None:
    with pytest.raises(RegistryUnavailable, match=r"cannot reach PostgreSQL at host "
                       r"/nonexistent/pkcard port 5433 database reg user pk\b.*pg_hba\.conf"
                       ) as refused:
        Registry("postgresql://pk:secret-password@/reg?host=/nonexistent/pkcard&port=5433")
    assert "secret-password" not in str(refused.value)


def test_the_configuration_file_is_checked(tmp_path: Path) -> None:
    anchors = ["--environment", "test", "--pk-anchor", str(tmp_path / "pk.pem"),
               "--kzz-anchor", str(tmp_path / "kzz.pem"), "--dev-metadata-identity"]
    config = tmp_path / "backend.toml"
    config.write_text('database = "postgresql://x@/y"\n')
    assert backend_main(["--config", str(config), *anchors]) == 2
    config.write_text("pool_size = \"many\"\n")
    assert backend_main(["--config", str(config), *anchors]) == 2
    config.write_text("listen = \"127.0.0.1:0\"\n")  # no db anywhere
    assert backend_main(["--config", str(config), *anchors]) == 2
