"""The backend's audit rows are one hash chain on both engines, and a tampered row is found."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from tokenrig import FAST_SCRYPT_N

from pkcard.backend.registry import Registry
from pkcard.errors import RefusalReason, RegistryCorrupt, TokenRefused

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "audit.sqlite")
    return str(request.getfixturevalue("pg_database"))


def tamper(target: str, statement: str) -> None:
    if target.startswith("postgresql://"):
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(statement)
    else:
        with sqlite3.connect(target) as conn:
            conn.execute(statement)


def filled(target: str) -> Registry:
    registry = Registry(target if target.startswith("postgresql://") else Path(target),
                        scrypt_n=FAST_SCRYPT_N)
    for n in range(5):
        registry.add_holder(f"9000{n}", "Dr Chain", NOW)
        registry.record_refusal(NOW, "ws-chain", TokenRefused(RefusalReason.NONCE_UNKNOWN))
    return registry


@pytest.mark.parametrize("statement", [
    "UPDATE audit SET detail = 'edited' WHERE id = 4",  # a changed row
    "DELETE FROM audit WHERE id = 5",  # a missing row
    "UPDATE audit SET client_id = 'ws-other' WHERE id = 7",
])
def test_a_tampered_audit_row_breaks_the_chain(target: str, statement: str) -> None:
    registry = filled(target)
    assert registry.verify_audit() == 10
    assert [r.id for r in registry.audit_records()] == list(range(1, 11))
    tamper(target, statement)
    with pytest.raises(RegistryCorrupt):
        registry.verify_audit()
    registry.close()
