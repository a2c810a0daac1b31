"""Numbered schema migrations of the backend database. Append; never edit a released one.

Written in SQLite's dialect; on PostgreSQL :func:`pkcard.backend.database.postgres_ddl`
translates the type names (``BLOB`` → ``BYTEA``, ``INTEGER`` → ``BIGINT``), so one
list serves both engines. Keep to SQL both understand.
"""

from __future__ import annotations

Migration = tuple[int, tuple[str, ...]]

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            "CREATE TABLE holders ("
            " holder_id TEXT PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " created INTEGER NOT NULL)",
            "CREATE TABLE cards ("
            " serial TEXT PRIMARY KEY,"
            " holder_id TEXT NOT NULL REFERENCES holders (holder_id),"
            " role INTEGER NOT NULL CHECK (role IN (1, 2)),"
            " status INTEGER NOT NULL CHECK (status BETWEEN 1 AND 4),"
            " auth_cert_sha256 BLOB,"
            " updated INTEGER NOT NULL)",
            "CREATE INDEX cards_by_holder ON cards (holder_id, role, status)",
            "CREATE TABLE reactivation ("
            " serial TEXT PRIMARY KEY REFERENCES cards (serial),"
            " salt BLOB NOT NULL,"
            " hash BLOB NOT NULL,"
            " tries_left INTEGER NOT NULL CHECK (tries_left >= 0))",
            "CREATE TABLE authorizations ("
            " holder_id TEXT NOT NULL REFERENCES holders (holder_id),"
            " code TEXT NOT NULL,"
            " granted INTEGER NOT NULL,"
            " withdrawn INTEGER,"
            " reason INTEGER,"
            " PRIMARY KEY (holder_id, code))",
            "CREATE TABLE challenges ("
            " nonce BLOB PRIMARY KEY,"
            " client_id TEXT NOT NULL,"
            " expires INTEGER NOT NULL,"
            " used INTEGER)",
            "CREATE INDEX challenges_by_expiry ON challenges (expires)",
            "CREATE TABLE audit ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " time INTEGER NOT NULL,"
            " event INTEGER NOT NULL,"
            " client_id TEXT,"
            " card_serial TEXT,"
            " holder_id TEXT,"
            " reason INTEGER,"
            " detail TEXT)",
        ),
    ),
    (
        2,
        (
            # the scrypt cost of each reactivation password hash, so the cost can grow
            "ALTER TABLE reactivation ADD COLUMN scrypt_n INTEGER NOT NULL DEFAULT 16384",
        ),
    ),
    (
        3,
        (
            # the audit rows become one hash chain: each row's hash covers the previous
            # row's; the head row (locked by every audited transaction) names the last
            "ALTER TABLE audit ADD COLUMN hash BLOB",
            "CREATE TABLE audit_head ("
            " one INTEGER PRIMARY KEY CHECK (one = 1),"
            " last_id INTEGER NOT NULL,"
            " hash BLOB)",
            "INSERT INTO audit_head (one, last_id, hash) SELECT 1, COALESCE(MAX(id), 0), NULL"
            " FROM audit",
        ),
    ),
    (
        4,
        (
            # the catalogue of authorization codes an employer may order (the annex of the
            # Pravilnik o KZZ); seeded with the codes pkcard knows, extended by the admin call
            "CREATE TABLE authorization_codes ("
            " code TEXT PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " added INTEGER NOT NULL)",
            "INSERT INTO authorization_codes (code, name, added) VALUES"
            " ('I002', 'Urejevalec pooblastil in PK za imetnike PK', 0),"
            " ('I003', 'pkcard test authorization (not from the ZZZS annex)', 0)",
            # every code of every employer's order: when the change took effect at the
            # employer and when it was reported here (the eight-day rule compares the two)
            "CREATE TABLE authorization_changes ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " employer_id TEXT NOT NULL,"
            " holder_id TEXT NOT NULL REFERENCES holders (holder_id),"
            " code TEXT NOT NULL REFERENCES authorization_codes (code),"
            " action INTEGER NOT NULL CHECK (action IN (1, 2)),"
            " changed INTEGER NOT NULL,"
            " reported INTEGER NOT NULL,"
            " client_id TEXT)",
            "CREATE INDEX authorization_changes_by_holder ON authorization_changes (holder_id)",
            "CREATE INDEX authorization_changes_by_lateness ON authorization_changes"
            " ((reported - changed))",
        ),
    ),
    (
        5,
        (
            # issue 15: a card's KPEP revoked (when), a card reported lost/stolen/misused
            # (why), and the holder's switches read from the audit table by holder
            "ALTER TABLE cards ADD COLUMN signature_revoked INTEGER",
            "ALTER TABLE cards ADD COLUMN loss_reason INTEGER",
            "CREATE INDEX audit_by_holder ON audit (holder_id, event)",
        ),
    ),
)
