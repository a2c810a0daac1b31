"""The backend's store: card registry, issued challenges and the audit table.

On SQLite (one file, WAL mode, ``synchronous=FULL``; the embedded default) or
PostgreSQL (``postgresql://`` URL; several backend instances on one
database): :mod:`pkcard.backend.database` holds the engine differences. On
SQLite every write runs in ``BEGIN IMMEDIATE``, so writers serialize on the
database lock. On PostgreSQL writes run at READ COMMITTED, and the same
statements decide races with conditional UPDATEs and row locks (``lock=``):
a nonce is consumed once, a backup card's confirmed token activates it
exactly once, a reactivation try is counted once, and the audit rows form one
hash chain in commit order (docs/scaling.md names each guarantee).

The SQLite file is created mode 0600 and checked before SQLite opens it
(:func:`pkcard.safefile.prepare_sqlite_files`: no symbolic link, ours, not
group/other writable); SQLite gives its -wal and -shm files the same mode.

Nothing secret is stored in clear: the reactivation password is kept as a
salted scrypt hash, and the audit table records rules and identifiers, never
a token, signature or password.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from pkcard.backend.authorizations import (
    REPORTING_DEADLINE,
    AuthorizationOutcome,
    CatalogueCode,
    ChangeAction,
    ChangeRecord,
    HeldAuthorization,
    WithdrawalReason,
    explain_all,
    is_late,
)
from pkcard.backend.database import (
    Connection,
    Engine,
    IntegrityViolation,
    RowLock,
    open_database,
)
from pkcard.backend.migrations import MIGRATIONS
from pkcard.errors import (
    MalformedPin,
    PinBlocked,
    RefusalReason,
    RegistryConflict,
    RegistryCorrupt,
    RegistryNotFound,
    TokenRefused,
    WrongPin,
    tries_left_text,
)
from pkcard.holder import LossReason, SwitchKind
from pkcard.secret import Secret
from pkcard.token import NONCE_LENGTH, BackupSwitchReason, CardRole, wire_name
from pkcard.verify import (
    NONCE_REFUSALS,
    CardRecord,
    CardStatus,
    NonceOutcome,
    ProvenKey,
    VerifiedSession,
)

REACTIVATION_TRIES = 5
PASSWORD_MIN, PASSWORD_MAX = 8, 16
SCRYPT_N = 2**14  # the default cost; each hash row stores the cost it was made with
_SCRYPT_R, _SCRYPT_P = 8, 1
# used challenges are kept as long as a token over them could still be valid
CHALLENGE_RETENTION = timedelta(hours=1)
PURGE_EVERY = 32  # every PURGE_EVERY-th issued challenge purges up to PURGE_BATCH expired ones
PURGE_BATCH = 256
_GENESIS = bytes(32)  # the chain hash before the first chained audit row

_P = ParamSpec("_P")
_T = TypeVar("_T")


class AuditEvent(IntEnum):
    """What an audit row records."""

    REDEEMED = 1
    REFUSED = 2
    BACKUP_ACTIVATED = 3
    HOLDER_ADDED = 4
    CARD_ADDED = 5
    CARD_REVOKED = 6
    AUTHORIZATION_GRANTED = 7
    AUTHORIZATION_WITHDRAWN = 8
    REACTIVATED = 9
    REACTIVATION_REFUSED = 10
    CHALLENGE_ISSUED = 11
    SIGNATURE_REVOKED = 12  # the holder revoked a card's KPEP with the reactivation password
    CARD_REPORTED_LOST = 13  # detail: LOST, STOLEN or MISUSED
    REACTIVATION_PASSWORD_CHANGED = 14
    # 21 on: authorizations (issue 15 point 4); numbered apart from other additions
    AUTHORIZATIONS_ORDERED = 21  # an employer's order (ChangeAuthorizations)
    AUTHORIZATION_CODE_ADDED = 22  # a code added to the catalogue


MAX_SWITCHES_SHOWN = 20


@dataclass(frozen=True)
class CardSwitch:
    """One switch: when, which way, the card that became active and (backup) the reason."""

    time: int
    kind: SwitchKind
    card_serial: str
    reason: BackupSwitchReason | None


@dataclass(frozen=True)
class CardState:
    """What the registry tells a holder about one card (GetCardStatus)."""

    serial: str
    role: CardRole
    status: CardStatus
    reactivation_tries_left: int  # of the holder's password; 0 when none is registered
    signature_revoked: bool
    loss_reason: LossReason | None
    switches: tuple[CardSwitch, ...]  # newest first


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit table."""

    id: int
    time: int
    event: AuditEvent
    client_id: str | None
    card_serial: str | None
    holder_id: str | None
    reason: RefusalReason | None
    detail: str | None


@dataclass(frozen=True)
class Challenge:
    """A nonce issued to one client, valid until ``expires``."""

    nonce: bytes
    client_id: str
    expires: datetime


def _unix(t: datetime) -> int:
    return int(t.timestamp())


def _chain_hash(previous: bytes, row: tuple[Any, ...]) -> bytes:
    """The audit chain: SHA-256 of the previous row's hash and this row's canonical JSON."""
    return hashlib.sha256(previous + json.dumps(list(row), separators=(",", ":"))
                          .encode("utf-8")).digest()


def _retried(method: Callable[Concatenate[Registry, _P], _T]
             ) -> Callable[Concatenate[Registry, _P], _T]:
    """Run the whole method again when its transaction was rolled back for a conflict or a
    lost connection (PostgreSQL), within the database's bound."""

    @functools.wraps(method)
    def wrapper(self: Registry, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return self._db.retry(lambda: method(self, *args, **kwargs))

    return wrapper


def _scrypt(password: bytes, salt: bytes, n: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32,
                          maxmem=256 * 1024 * 1024)


NOT_THIS_CARD = "no valid proof of possession of this regular card"
"""The one answer for an unknown serial, a backup's serial and another card's proof."""


@dataclass(frozen=True)
class HolderProof:
    """A verified proof of possession: the challenge it signed and the key that signed it."""

    nonce: bytes
    key: ProvenKey


def proof_binds(card: tuple[str, CardRole, bytes | None] | None, key: ProvenKey,
                key_of_another_card: bool, role: CardRole = CardRole.REGULAR) -> bool:
    """Whether a proven key is the card's (a ``role`` card): the store-independent rule.

    ``card`` is (holder id, role, registered certificate SHA-256) of the
    serial asked for, None when unknown. A registered certificate decides;
    without one, the key must be the holder's and registered to no other card.
    """
    if card is None or card[1] is not role:
        return False
    holder_id, _role, pinned = card
    if pinned is not None:
        return hmac.compare_digest(pinned, key.leaf_sha256)
    return hmac.compare_digest(holder_id.encode(), key.holder_id.encode()) \
        and not key_of_another_card


def _check_password(password: Secret) -> bytes:
    value = password.reveal()
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX or not all(0x21 <= b <= 0x7E for b in value):
        raise MalformedPin(
            f"the reactivation password must be {PASSWORD_MIN}-{PASSWORD_MAX} printable ASCII "
            "characters"
        )
    return value


class Registry:
    """The registry on SQLite (a path) or PostgreSQL (a ``postgresql://`` URL); implements
    :class:`pkcard.verify.RegistryView`.

    A PostgreSQL database that cannot be reached raises
    :class:`~pkcard.errors.RegistryUnavailable` naming the server. ``close()``
    closes every connection the registry opened. Thread-safe.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: timedelta = timedelta(seconds=10),
        scrypt_n: int = SCRYPT_N,
        pool_size: int = 20,
    ) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of two")
        self._scrypt_n = scrypt_n
        self._issued = itertools.count(1)
        self._db = open_database(path, busy_timeout=busy_timeout, pool_size=pool_size)
        try:
            self._db.migrate(MIGRATIONS)
        except BaseException:
            self._db.close()
            raise

    # --- connections and transactions --------------------------------------

    @property
    def engine(self) -> Engine:
        return self._db.engine

    def _connection(self) -> Connection:
        """Reads outside a write transaction (autocommit)."""
        return self._db.reader()

    def _write(self) -> Any:
        """A write transaction (a context manager yielding a Connection): committed on
        success, rolled back on error. Methods using it are ``@_retried``."""
        return self._db.transaction()

    def close(self) -> None:
        self._db.close()

    def schema_version(self) -> int:
        row = self._connection().execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0

    # --- the audit table -----------------------------------------------------

    @staticmethod
    def _audit(
        conn: Connection,
        now: datetime,
        event: AuditEvent,
        *,
        client_id: str | None = None,
        card_serial: str | None = None,
        holder_id: str | None = None,
        reason: RefusalReason | None = None,
        detail: str | None = None,
    ) -> None:
        # The chain head row, locked until COMMIT: audit rows get consecutive ids in commit
        # order and each hash covers the previous one, across every backend instance.
        head = conn.execute("SELECT last_id, hash FROM audit_head WHERE one = 1",
                            lock=RowLock.UPDATE).fetchone()
        if head is None:
            raise RegistryCorrupt("the audit chain head is missing")
        row = (int(head[0]) + 1, _unix(now), int(event), client_id, card_serial, holder_id,
               None if reason is None else int(reason), detail)
        digest = _chain_hash(head[1] or _GENESIS, row)
        conn.execute(
            "INSERT INTO audit (id, time, event, client_id, card_serial, holder_id, reason, "
            "detail, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, digest))
        conn.execute("UPDATE audit_head SET last_id = ?, hash = ? WHERE one = 1",
                     (row[0], digest))

    def verify_audit(self) -> int:
        """Check the audit chain; returns the number of chained rows.

        Rows written before the chain existed (schema version 2) come first and
        carry no hash; every later row has the next id and the hash over the
        previous one, and the head names the last. Raises
        :class:`~pkcard.errors.RegistryCorrupt` at the first break.
        """
        rows = self._connection().execute(
            "SELECT id, time, event, client_id, card_serial, holder_id, reason, detail, hash "
            "FROM audit ORDER BY id").fetchall()
        head = self._connection().execute(
            "SELECT last_id, hash FROM audit_head WHERE one = 1").fetchone()
        previous: bytes | None = None
        last_id: int | None = None
        chained = 0
        for row in rows:
            fields, digest = tuple(row[:8]), row[8]
            if digest is None:
                if previous is not None:
                    raise RegistryCorrupt(f"audit row {row[0]} has no hash inside the chain")
                last_id = int(row[0])
                continue
            if last_id is not None and row[0] != last_id + 1:
                raise RegistryCorrupt(f"audit row {row[0]} follows row {last_id}")
            if _chain_hash(previous or _GENESIS, fields) != bytes(digest):
                raise RegistryCorrupt(f"audit row {row[0]} does not match its chain hash")
            previous, last_id, chained = bytes(digest), int(row[0]), chained + 1
        if head is None or (previous is not None and
                            (head[0] != last_id or bytes(head[1]) != previous)):
            raise RegistryCorrupt("the audit chain head does not name the last row")
        return chained

    @_retried
    def record_refusal(self, now: datetime, client_id: str, refusal: TokenRefused,
                       card_serial: str | None = None) -> None:
        with self._write() as conn:
            self._audit(conn, now, AuditEvent.REFUSED, client_id=client_id,
                        card_serial=card_serial, reason=refusal.reason, detail=refusal.detail)

    def audit_records(self) -> tuple[AuditRecord, ...]:
        rows = self._connection().execute(
            "SELECT id, time, event, client_id, card_serial, holder_id, reason, detail "
            "FROM audit ORDER BY id").fetchall()
        return tuple(
            AuditRecord(row[0], row[1], AuditEvent(row[2]), row[3], row[4], row[5],
                        None if row[6] is None else RefusalReason(row[6]), row[7])
            for row in rows
        )

    # --- holders, cards, authorizations (admin) ------------------------------

    @_retried
    def add_holder(self, holder_id: str, name: str, now: datetime) -> None:
        with self._write() as conn:
            try:
                conn.execute("INSERT INTO holders (holder_id, name, created) VALUES (?, ?, ?)",
                             (holder_id, name, _unix(now)))
            except IntegrityViolation as exc:
                raise RegistryConflict("the holder is already registered") from exc
            self._audit(conn, now, AuditEvent.HOLDER_ADDED, holder_id=holder_id)

    @_retried
    def add_card(
        self,
        serial: str,
        holder_id: str,
        role: CardRole,
        now: datetime,
        *,
        auth_cert_sha256: bytes | None = None,
        reactivation_password: Secret | None = None,
    ) -> None:
        """Register a card: a regular card ACTIVE (with its reactivation password), a backup
        card on STANDBY until its first token."""
        salt = secrets.token_bytes(16)
        digest: bytes | None = None
        if role is CardRole.REGULAR:
            if reactivation_password is None:
                raise MalformedPin("a regular card needs a reactivation password")
            digest = _scrypt(_check_password(reactivation_password), salt, self._scrypt_n)
        status = CardStatus.ACTIVE if role is CardRole.REGULAR else CardStatus.STANDBY
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM holders WHERE holder_id = ?",
                            (holder_id,)).fetchone() is None:
                raise RegistryNotFound("no such holder")
            try:
                conn.execute(
                    "INSERT INTO cards (serial, holder_id, role, status, auth_cert_sha256, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (serial, holder_id, int(role), int(status), auth_cert_sha256, _unix(now)),
                )
            except IntegrityViolation as exc:
                raise RegistryConflict("the card is already registered") from exc
            if digest is not None:
                conn.execute(
                    "INSERT INTO reactivation (serial, salt, hash, tries_left, scrypt_n) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (serial, salt, digest, REACTIVATION_TRIES, self._scrypt_n),
                )
            self._audit(conn, now, AuditEvent.CARD_ADDED, card_serial=serial,
                        holder_id=holder_id)

    @_retried
    def grant(self, holder_id: str, code: str, now: datetime) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM holders WHERE holder_id = ?",
                            (holder_id,)).fetchone() is None:
                raise RegistryNotFound("no such holder")
            conn.execute(
                "INSERT INTO authorizations (holder_id, code, granted, withdrawn, reason) "
                "VALUES (?, ?, ?, NULL, NULL) ON CONFLICT (holder_id, code) DO UPDATE SET "
                "granted = excluded.granted, withdrawn = NULL, reason = NULL",
                (holder_id, code, _unix(now)),
            )
            self._audit(conn, now, AuditEvent.AUTHORIZATION_GRANTED, holder_id=holder_id,
                        detail=code)

    @_retried
    def withdraw(self, holder_id: str, code: str, reason: WithdrawalReason, now: datetime) -> None:
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE authorizations SET withdrawn = ?, reason = ? "
                "WHERE holder_id = ? AND code = ? AND withdrawn IS NULL",
                (_unix(now), int(reason), holder_id, code),
            ).rowcount
            if updated != 1:
                raise RegistryNotFound("no such granted authorization")
            self._audit(conn, now, AuditEvent.AUTHORIZATION_WITHDRAWN, holder_id=holder_id,
                        detail=f"{code} {reason.name}")

    @_retried
    def revoke_card(self, serial: str, now: datetime) -> None:
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE cards SET status = ?, updated = ? WHERE serial = ? AND status != ?",
                (int(CardStatus.REVOKED), _unix(now), serial, int(CardStatus.REVOKED)),
            ).rowcount
            if updated != 1:
                raise RegistryNotFound("no such unrevoked card")
            self._audit(conn, now, AuditEvent.CARD_REVOKED, card_serial=serial)

    @_retried
    def record_reactivation_refusal(self, now: datetime, client_id: str, card_serial: str,
                                    refusal: TokenRefused) -> None:
        """Audit a holder's reactivation attempt refused before its password was looked at."""
        with self._write() as conn:
            self._audit(conn, now, AuditEvent.REACTIVATION_REFUSED, client_id=client_id,
                        card_serial=card_serial[:64], reason=refusal.reason,
                        detail=refusal.detail)

    def _bind_proof(self, conn: Connection, serial: str, proof: HolderProof,
                    client_id: str, now: datetime, *,
                    role: CardRole = CardRole.REGULAR) -> TokenRefused | None:
        """Consume the proof's challenge and bind its key to the regular card ``serial``.

        Inside a write transaction; returns the refusal (audited) or None. An
        unknown serial, a backup's serial and a key of another card give the
        same refusal, so the answer does not tell which serials exist.
        """
        outcome = self._nonce_outcome(conn, proof.nonce, client_id, now)
        refusal: TokenRefused | None = None
        if outcome is not NonceOutcome.ACCEPTED:
            refusal = TokenRefused(NONCE_REFUSALS[outcome], "the challenge of the proof is "
                                   f"{outcome.name.lower().replace('_', ' ')}")
        else:
            consumed = conn.execute("UPDATE challenges SET used = ? WHERE nonce = ? AND "
                                    "used IS NULL", (_unix(now), proof.nonce)).rowcount
            if consumed != 1:  # a concurrent attempt used it first
                refusal = TokenRefused(RefusalReason.NONCE_REUSED, "the challenge of the proof "
                                       "was used concurrently")
            row = conn.execute("SELECT holder_id, role, auth_cert_sha256 FROM cards "
                               "WHERE serial = ?", (serial,)).fetchone()
            elsewhere = conn.execute("SELECT 1 FROM cards WHERE auth_cert_sha256 = ? AND "
                                     "serial != ?", (proof.key.leaf_sha256, serial)).fetchone()
            record = None if row is None else (row[0], CardRole(row[1]), row[2])
            if refusal is None and not proof_binds(record, proof.key, elsewhere is not None,
                                                   role):
                refusal = TokenRefused(RefusalReason.REACTIVATION_PROOF_INVALID, NOT_THIS_CARD)
        if refusal is not None:
            self._audit(conn, now, AuditEvent.REACTIVATION_REFUSED, client_id=client_id,
                        card_serial=serial[:64], reason=refusal.reason, detail=refusal.detail)
        return refusal

    @_retried
    def reactivate(self, serial: str, password: Secret, now: datetime, *,
                   client_id: str | None = None, proof: HolderProof | None = None) -> int:
        """Make the regular card ``serial`` active again and its holder's backup inactive.

        ``proof`` (the holder-facing call; None for an admin call) is a proof
        of possession already verified (:meth:`pkcard.verify.TokenVerifier.verify_possession`):
        its challenge must be ``client_id``'s, unused and unexpired (it is
        consumed), and its key the registered certificate of this regular card
        (without one: a certificate of the card's holder that is no other
        card's). Otherwise :class:`TokenRefused` is raised and no try counts.

        Checks the reactivation password (scrypt, constant-time compare);
        returns the tries left (the maximum). A wrong password raises
        :class:`WrongPin` with the tries left, an exhausted counter
        :class:`PinBlocked`. Both outcomes are audited with ``client_id`` (the
        calling workstation; None for an admin call). The password never
        reaches a log or the audit.
        """
        value = _check_password(password)
        if proof is not None:
            with self._write() as conn:
                refused = self._bind_proof(conn, serial, proof, client_id or "", now)
            if refused is not None:
                raise refused

        def reactivated(conn: Connection, holder_id: str) -> None:
            conn.execute("UPDATE cards SET status = ?, updated = ? WHERE serial = ?",
                         (int(CardStatus.ACTIVE), _unix(now), serial))
            conn.execute(
                "UPDATE cards SET status = ?, updated = ? "
                "WHERE holder_id = ? AND role = ? AND status = ?",
                (int(CardStatus.INACTIVE), _unix(now), holder_id, int(CardRole.BACKUP),
                 int(CardStatus.ACTIVE)),
            )
            self._audit(conn, now, AuditEvent.REACTIVATED, client_id=client_id,
                        card_serial=serial, holder_id=holder_id)

        return self._password_attempt(serial, value, now, client_id=client_id,
                                      audit_serial=serial, refuse_revoked=True,
                                      on_success=reactivated)

    _CARD_ROW_QUERY = (
        "SELECT c.holder_id, c.status, r.salt, r.hash, r.tries_left, r.scrypt_n FROM cards c "
        "JOIN reactivation r ON r.serial = c.serial WHERE c.serial = ? AND c.role = ?"
    )

    def _password_attempt(
        self, regular: str, value: bytes, now: datetime, *, client_id: str | None,
        audit_serial: str, refuse_revoked: bool,
        on_success: Callable[[Connection, str], None],
    ) -> int:
        """Check the reactivation password of the regular card ``regular``; on a match run
        ``on_success(conn, holder_id)`` in the same transaction and return the tries left
        (the maximum). A wrong password counts a try (committed, audited against
        ``audit_serial``) and raises :class:`WrongPin`, an exhausted counter :class:`PinBlocked`.
        """
        query = self._CARD_ROW_QUERY
        # scrypt runs before the write transaction, so it does not hold the database lock
        first = self._connection().execute(query, (regular, int(CardRole.REGULAR))).fetchone()
        if first is None:
            raise RegistryNotFound("no such regular card")
        presented = _scrypt(value, first[2], first[5])
        failure: WrongPin | PinBlocked | None = None
        with self._write() as conn:
            row = conn.execute(query, (regular, int(CardRole.REGULAR)),
                               lock=RowLock.UPDATE).fetchone()
            if row is None or row[2] != first[2]:
                raise RegistryConflict("the reactivation password changed meanwhile; try again")
            holder_id, status, _salt, digest, tries_left, _cost = row
            if refuse_revoked and CardStatus(status) is CardStatus.REVOKED:
                raise RegistryConflict("a revoked card cannot be reactivated")
            if tries_left <= 0:
                raise PinBlocked("the reactivation password is blocked; ask the registry")
            if hmac.compare_digest(presented, digest):
                conn.execute("UPDATE reactivation SET tries_left = ? WHERE serial = ?",
                             (REACTIVATION_TRIES, regular))
                on_success(conn, holder_id)
            else:  # the spent try is committed before the error is raised
                tries_left -= 1
                conn.execute("UPDATE reactivation SET tries_left = ? WHERE serial = ?",
                             (tries_left, regular))
                self._audit(conn, now, AuditEvent.REACTIVATION_REFUSED, client_id=client_id,
                            card_serial=audit_serial, holder_id=holder_id,
                            detail=tries_left_text(tries_left))
                failure = (
                    WrongPin(tries_left,
                             f"wrong reactivation password, {tries_left_text(tries_left)}")
                    if tries_left else PinBlocked("the reactivation password is now blocked")
                )
        if failure is not None:
            raise failure
        return REACTIVATION_TRIES

    @staticmethod
    def _password_card(conn: Connection, serial: str) -> str:
        """The regular card holding the reactivation password of ``serial``'s holder (the
        holder has one password; a reissued regular card not revoked is preferred)."""
        row = conn.execute("SELECT holder_id FROM cards WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            raise RegistryNotFound("no such card")
        regular = conn.execute(
            "SELECT c.serial FROM cards c JOIN reactivation r ON r.serial = c.serial "
            "WHERE c.holder_id = ? AND c.role = ? ORDER BY CASE WHEN c.status = ? THEN 1 "
            "ELSE 0 END, c.updated DESC, c.serial LIMIT 1",
            (row[0], int(CardRole.REGULAR), int(CardStatus.REVOKED))).fetchone()
        if regular is None:
            raise RegistryNotFound("the card's holder has no reactivation password")
        return str(regular[0])

    @_retried
    def change_password(self, serial: str, old: Secret, new: Secret, now: datetime, *,
                        client_id: str, proof: HolderProof) -> int:
        """Replace the reactivation password of the regular card ``serial`` (the one copy).

        ``proof`` must bind to this regular card (as :meth:`reactivate`); then
        ``old`` is checked with the tries counter. The new value gets a fresh
        salt and the current scrypt cost. Audited, never with a password.
        """
        old_value = _check_password(old)
        new_value = _check_password(new)
        with self._write() as conn:
            refused = self._bind_proof(conn, serial, proof, client_id, now)
        if refused is not None:
            raise refused
        salt = secrets.token_bytes(16)
        digest = _scrypt(new_value, salt, self._scrypt_n)

        def replace(conn: Connection, holder_id: str) -> None:
            conn.execute("UPDATE reactivation SET salt = ?, hash = ?, scrypt_n = ?, "
                         "tries_left = ? WHERE serial = ?",
                         (salt, digest, self._scrypt_n, REACTIVATION_TRIES, serial))
            self._audit(conn, now, AuditEvent.REACTIVATION_PASSWORD_CHANGED,
                        client_id=client_id, card_serial=serial, holder_id=holder_id)

        return self._password_attempt(serial, old_value, now, client_id=client_id,
                                      audit_serial=serial, refuse_revoked=True,
                                      on_success=replace)

    @_retried
    def revoke_signature(self, serial: str, password: Secret, now: datetime, *,
                         client_id: str) -> None:
        """Revoke the KPEP of card ``serial`` with its holder's reactivation password."""
        value = _check_password(password)
        regular = self._password_card(self._connection(), serial)

        def revoke(conn: Connection, holder_id: str) -> None:
            conn.execute("UPDATE cards SET signature_revoked = ? WHERE serial = ? AND "
                         "signature_revoked IS NULL", (_unix(now), serial))
            self._audit(conn, now, AuditEvent.SIGNATURE_REVOKED, client_id=client_id,
                        card_serial=serial, holder_id=holder_id)

        self._password_attempt(regular, value, now, client_id=client_id, audit_serial=serial,
                               refuse_revoked=False, on_success=revoke)

    @_retried
    def report_lost(self, serial: str, reason: LossReason, password: Secret, now: datetime, *,
                    client_id: str) -> None:
        """The holder reports card ``serial`` lost, stolen or misused: with the holder's
        reactivation password, the card and its KPEP are revoked for good."""
        value = _check_password(password)
        regular = self._password_card(self._connection(), serial)

        def report(conn: Connection, holder_id: str) -> None:
            updated = conn.execute(
                "UPDATE cards SET status = ?, loss_reason = ?, updated = ?, "
                "signature_revoked = COALESCE(signature_revoked, ?) "
                "WHERE serial = ? AND status != ?",
                (int(CardStatus.REVOKED), int(reason), _unix(now), _unix(now), serial,
                 int(CardStatus.REVOKED))).rowcount
            if updated != 1:
                raise RegistryConflict("the card is already revoked")
            self._audit(conn, now, AuditEvent.CARD_REPORTED_LOST, client_id=client_id,
                        card_serial=serial, holder_id=holder_id, detail=reason.name)

        self._password_attempt(regular, value, now, client_id=client_id, audit_serial=serial,
                               refuse_revoked=False, on_success=report)

    @_retried
    def activate_backup(self, serial: str, reason: BackupSwitchReason, now: datetime, *,
                        client_id: str, proof: HolderProof) -> bool:
        """Switch the holder to the backup card ``serial`` now (its proof of possession and
        the holder's confirmed ``reason``); False when it was already active.

        The proof binds to the backup card as :meth:`reactivate`'s to the
        regular one (else :class:`TokenRefused`, audited). The backup becomes
        ACTIVE and the holder's active regular card INACTIVE, in one
        transaction with the audit row (BACKUP_ACTIVATED, detail ``reason``).
        """
        with self._write() as conn:
            refused = self._bind_proof(conn, serial, proof, client_id, now,
                                       role=CardRole.BACKUP)
        if refused is not None:
            raise refused
        with self._write() as conn:
            row = conn.execute("SELECT status, holder_id FROM cards WHERE serial = ? AND role = ?",
                               (serial, int(CardRole.BACKUP)), lock=RowLock.UPDATE).fetchone()
            if row is None:
                raise RegistryNotFound("no such backup card")
            status, holder_id = CardStatus(row[0]), row[1]
            if status is CardStatus.REVOKED:
                raise TokenRefused(RefusalReason.CARD_REVOKED, "the backup card is revoked")
            if status is CardStatus.ACTIVE:
                return False
            conn.execute("UPDATE cards SET status = ?, updated = ? WHERE serial = ?",
                         (int(CardStatus.ACTIVE), _unix(now), serial))
            conn.execute(
                "UPDATE cards SET status = ?, updated = ? "
                "WHERE holder_id = ? AND role = ? AND status = ?",
                (int(CardStatus.INACTIVE), _unix(now), holder_id, int(CardRole.REGULAR),
                 int(CardStatus.ACTIVE)))
            self._audit(conn, now, AuditEvent.BACKUP_ACTIVATED, client_id=client_id,
                        card_serial=serial, holder_id=holder_id, detail=reason.name)
        return True

    def card_state(self, serial: str) -> CardState:
        """What GetCardStatus answers for ``serial``; :class:`RegistryNotFound` if unknown."""
        conn = self._connection()
        row = conn.execute("SELECT holder_id, role, status, signature_revoked, loss_reason "
                           "FROM cards WHERE serial = ?", (serial,)).fetchone()
        if row is None:
            raise RegistryNotFound("no such card")
        holder_id = row[0]
        tries = 0
        try:
            regular = self._password_card(conn, serial)
        except RegistryNotFound:
            regular = None
        if regular is not None:
            found = conn.execute("SELECT tries_left FROM reactivation WHERE serial = ?",
                                 (regular,)).fetchone()
            tries = 0 if found is None else int(found[0])
        events = conn.execute(
            "SELECT time, event, card_serial, detail FROM audit WHERE holder_id = ? AND "
            "event IN (?, ?) ORDER BY id DESC LIMIT ?",
            (holder_id, int(AuditEvent.BACKUP_ACTIVATED), int(AuditEvent.REACTIVATED),
             MAX_SWITCHES_SHOWN)).fetchall()
        switches = tuple(
            CardSwitch(int(time), SwitchKind.BACKUP_ACTIVATED, card, BackupSwitchReason.__members__
                       .get(detail or ""))
            if AuditEvent(event) is AuditEvent.BACKUP_ACTIVATED
            else CardSwitch(int(time), SwitchKind.REGULAR_REACTIVATED, card, None)
            for time, event, card, detail in events)
        return CardState(serial, CardRole(row[1]), CardStatus(row[2]), tries,
                         row[3] is not None, None if row[4] is None else LossReason(row[4]),
                         switches)

    # --- RegistryView ----------------------------------------------------------

    def card(self, serial: str) -> CardRecord | None:
        row = self._connection().execute(
            "SELECT serial, holder_id, role, status, auth_cert_sha256 FROM cards WHERE serial = ?",
            (serial,),
        ).fetchone()
        if row is None:
            return None
        return CardRecord(row[0], row[1], CardRole(row[2]), CardStatus(row[3]), row[4])

    def granted_authorizations(self, holder_id: str) -> frozenset[str]:
        rows = self._connection().execute(
            "SELECT code FROM authorizations WHERE holder_id = ? AND withdrawn IS NULL",
            (holder_id,),
        ).fetchall()
        return frozenset(row[0] for row in rows)

    def held_authorizations(self, holder_id: str) -> dict[str, HeldAuthorization]:
        """Every authorization row of the holder, withdrawn ones with their reason."""
        rows = self._connection().execute(
            "SELECT code, granted, withdrawn, reason FROM authorizations WHERE holder_id = ?",
            (holder_id,),
        ).fetchall()
        return {row[0]: HeldAuthorization(row[0], int(row[1]), row[2],
                                          None if row[3] is None else WithdrawalReason(row[3]))
                for row in rows}

    # --- the employer's side: the catalogue and orders ---------------------------

    def catalogue(self) -> tuple[CatalogueCode, ...]:
        """The authorization codes an employer may order, by code."""
        rows = self._connection().execute(
            "SELECT code, name FROM authorization_codes ORDER BY code").fetchall()
        return tuple(CatalogueCode(row[0], row[1]) for row in rows)

    @_retried
    def add_catalogue_code(self, code: str, name: str, now: datetime, *,
                           client_id: str | None = None) -> None:
        """Add a code to the catalogue (RegistryConflict if it is there)."""
        with self._write() as conn:
            try:
                conn.execute("INSERT INTO authorization_codes (code, name, added) "
                             "VALUES (?, ?, ?)", (code, name, _unix(now)))
            except IntegrityViolation as exc:
                raise RegistryConflict("the code is already in the catalogue") from exc
            self._audit(conn, now, AuditEvent.AUTHORIZATION_CODE_ADDED, client_id=client_id,
                        detail=code)

    @_retried
    def order_authorizations(
        self,
        employer_id: str,
        holder_id: str,
        changes: tuple[tuple[str, ChangeAction], ...],
        changed: datetime,
        now: datetime,
        *,
        client_id: str | None = None,
    ) -> tuple[ChangeRecord, ...]:
        """Apply an employer's order (validated by
        :func:`~pkcard.backend.authorizations.check_order`) in one transaction.

        A GRANT grants the code (again); a WITHDRAW withdraws a granted code
        with :attr:`WithdrawalReason.EMPLOYER_ORDER`. Every code must be in the
        catalogue (RegistryNotFound), a withdrawn one granted now
        (RegistryConflict); then nothing is applied. Each code is recorded with
        ``changed`` (when it took effect at the employer) and ``now`` (when it
        was reported); the audit row names the order and whether it came later
        than the eight days the seed allows.
        """
        changed_at, reported = _unix(changed), _unix(now)
        records: list[ChangeRecord] = []
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM holders WHERE holder_id = ?",
                            (holder_id,)).fetchone() is None:
                raise RegistryNotFound("no such holder")
            for code, action in changes:
                if conn.execute("SELECT 1 FROM authorization_codes WHERE code = ?",
                                (code,)).fetchone() is None:
                    raise RegistryNotFound(f"{code} is not in the catalogue of authorization "
                                           "codes")
                if action is ChangeAction.GRANT:
                    conn.execute(
                        "INSERT INTO authorizations (holder_id, code, granted, withdrawn, reason) "
                        "VALUES (?, ?, ?, NULL, NULL) ON CONFLICT (holder_id, code) DO UPDATE "
                        "SET granted = excluded.granted, withdrawn = NULL, reason = NULL",
                        (holder_id, code, reported),
                    )
                elif conn.execute(
                    "UPDATE authorizations SET withdrawn = ?, reason = ? "
                    "WHERE holder_id = ? AND code = ? AND withdrawn IS NULL",
                    (reported, int(WithdrawalReason.EMPLOYER_ORDER), holder_id, code),
                ).rowcount != 1:
                    raise RegistryConflict(f"{code} is not granted to the holder: nothing to "
                                           "withdraw")
                row = conn.execute(
                    "INSERT INTO authorization_changes (employer_id, holder_id, code, action, "
                    "changed, reported, client_id) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (employer_id, holder_id, code, int(action), changed_at, reported, client_id),
                ).fetchone()
                assert row is not None
                records.append(ChangeRecord(int(row[0]), employer_id, holder_id, code, action,
                                            changed_at, reported, client_id))
            late = is_late(changed_at, reported)
            listed = ", ".join(f"{action.name} {code}" for code, action in changes)
            self._audit(conn, now, AuditEvent.AUTHORIZATIONS_ORDERED, client_id=client_id,
                        holder_id=holder_id,
                        detail=f"employer {employer_id}: {listed}; changed {changed_at}, "
                        f"reported {(reported - changed_at) // 86400} days later"
                        + (" (LATE: more than 8 days)" if late else ""))
        return tuple(records)

    def authorization_changes(self, *, late_only: bool = False, holder_id: str | None = None,
                              employer_id: str | None = None,
                              limit: int = 1000) -> tuple[ChangeRecord, ...]:
        """Recorded changes, oldest first; ``late_only``: those reported more than eight
        days after they took effect."""
        rows = self._connection().execute(
            "SELECT id, employer_id, holder_id, code, action, changed, reported, client_id "
            "FROM authorization_changes WHERE (? = 0 OR reported - changed > ?) "
            "AND (CAST(? AS TEXT) IS NULL OR holder_id = ?) "
            "AND (CAST(? AS TEXT) IS NULL OR employer_id = ?) "
            "ORDER BY id LIMIT ?",
            (int(late_only), int(REPORTING_DEADLINE.total_seconds()), holder_id, holder_id,
             employer_id, employer_id, limit),
        ).fetchall()
        return tuple(ChangeRecord(int(r[0]), r[1], r[2], r[3], ChangeAction(r[4]), int(r[5]),
                                  int(r[6]), r[7]) for r in rows)

    # --- challenges (NonceStore) -----------------------------------------------

    def issue_challenge(self, client_id: str, now: datetime, lifetime: timedelta) -> Challenge:
        """Issue a fresh nonce; every :data:`PURGE_EVERY`-th call also purges a batch of
        expired challenges (:meth:`purge_expired`), so the table stays bounded."""
        challenge = self._insert_challenge(client_id, now, lifetime)
        if next(self._issued) % PURGE_EVERY == 0:
            self.purge_expired(now)
        return challenge

    @_retried
    def _insert_challenge(self, client_id: str, now: datetime, lifetime: timedelta) -> Challenge:
        nonce = secrets.token_bytes(NONCE_LENGTH)
        expires = now + lifetime
        with self._write() as conn:
            conn.execute("INSERT INTO challenges (nonce, client_id, expires) VALUES (?, ?, ?)",
                         (nonce, client_id, _unix(expires)))
        return Challenge(nonce, client_id, expires)

    @_retried
    def purge_expired(self, now: datetime, batch: int = PURGE_BATCH) -> int:
        """Delete up to ``batch`` challenges that expired more than
        :data:`CHALLENGE_RETENTION` ago, oldest first; returns how many.

        One short transaction. On PostgreSQL the rows are taken ``FOR UPDATE
        SKIP LOCKED``: a row another transaction holds is passed over, so the
        purge never waits for a redemption and concurrent purges of several
        instances never wait for each other.
        """
        with self._write() as conn:
            rows = conn.execute(
                "SELECT nonce FROM challenges WHERE expires < ? ORDER BY expires LIMIT ?",
                (_unix(now - CHALLENGE_RETENTION), batch), lock=RowLock.SKIP_LOCKED).fetchall()
            conn.executemany("DELETE FROM challenges WHERE nonce = ?", [(r[0],) for r in rows])
        return len(rows)

    def challenge_count(self) -> int:
        """How many challenges the table holds (issued, used and expired)."""
        row = self._connection().execute("SELECT COUNT(*) FROM challenges").fetchone()
        return int(row[0]) if row else 0

    @_retried
    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        """Check and mark ``nonce`` used, atomically (the :class:`NonceStore` contract)."""
        with self._write() as conn:
            outcome = self._nonce_outcome(conn, nonce, client_id, now)
            if outcome is NonceOutcome.ACCEPTED:
                conn.execute("UPDATE challenges SET used = ? WHERE nonce = ? AND used IS NULL",
                             (_unix(now), nonce))
            return outcome

    def check_nonce(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        """What :meth:`consume` would answer, without marking anything used."""
        return self._nonce_outcome(self._connection(), nonce, client_id, now)

    @staticmethod
    def _nonce_outcome(conn: Connection, nonce: bytes, client_id: str,
                       now: datetime) -> NonceOutcome:
        row = conn.execute("SELECT client_id, expires, used FROM challenges WHERE nonce = ?",
                           (nonce,)).fetchone()
        if row is None:
            return NonceOutcome.UNKNOWN
        owner, expires, used = row
        if used is not None:
            return NonceOutcome.REUSED
        if not hmac.compare_digest(owner.encode(), client_id.encode()):
            return NonceOutcome.FOREIGN_CLIENT
        if _unix(now) >= expires:
            return NonceOutcome.EXPIRED
        return NonceOutcome.ACCEPTED

    # --- redemption ------------------------------------------------------------

    @_retried
    def commit_redemption(self, session: VerifiedSession, client_id: str, now: datetime,
                          outcomes: tuple[AuthorizationOutcome, ...] = ()) -> bool:
        """Consume the token's nonce and record the redemption; True when it activated a backup.

        One ``BEGIN IMMEDIATE`` transaction: the nonce is marked used with a
        conditional UPDATE (of concurrent redemptions of one token exactly one
        wins, the others get NONCE_REUSED), the card is re-read, a backup that is not
        active (STANDBY, or INACTIVE since a reactivation) is activated when the token
        carries the holder's confirmed switch (``backupSwitch``; its reason goes into the
        audit row) and the holder's regular card deactivated, and
        the audit row is written. A card whose status changed since
        verification is refused.
        """
        serial = session.card.serial
        with self._write() as conn:
            consumed = conn.execute(
                "UPDATE challenges SET used = ? "
                "WHERE nonce = ? AND client_id = ? AND used IS NULL AND expires > ?",
                (_unix(now), session.claims.nonce, client_id, _unix(now)),
            ).rowcount
            if consumed != 1:
                outcome = self._nonce_outcome(conn, session.claims.nonce, client_id, now)
                raise TokenRefused(NONCE_REFUSALS.get(outcome, RefusalReason.NONCE_REUSED),
                                   "the challenge was used concurrently")
            # the card row locked until COMMIT: concurrent first tokens of a backup card
            # queue here, and only the first sees it on STANDBY
            row = conn.execute("SELECT role, status, holder_id FROM cards WHERE serial = ?",
                               (serial,), lock=RowLock.UPDATE).fetchone()
            if row is None:
                raise TokenRefused(RefusalReason.CARD_UNKNOWN, "the card is not registered")
            role, status, holder_id = CardRole(row[0]), CardStatus(row[1]), row[2]
            activated = False
            switch = session.claims.backup_switch
            if role is CardRole.BACKUP and status in (CardStatus.STANDBY, CardStatus.INACTIVE):
                if switch is None:  # the verifier refused it already; the state changed since
                    raise TokenRefused(RefusalReason.BACKUP_SWITCH_NOT_CONFIRMED,
                                       "the backup card is not active and the switch was not "
                                       "confirmed")
                activated = conn.execute(
                    "UPDATE cards SET status = ?, updated = ? WHERE serial = ? AND status = ?",
                    (int(CardStatus.ACTIVE), _unix(now), serial, int(status)),
                ).rowcount == 1
                conn.execute(
                    "UPDATE cards SET status = ?, updated = ? "
                    "WHERE holder_id = ? AND role = ? AND status = ?",
                    (int(CardStatus.INACTIVE), _unix(now), holder_id, int(CardRole.REGULAR),
                     int(CardStatus.ACTIVE)),
                )
                self._audit(conn, now, AuditEvent.BACKUP_ACTIVATED, client_id=client_id,
                            card_serial=serial, holder_id=holder_id, detail=switch.name)
            elif status is not CardStatus.ACTIVE:
                reason = {
                    CardStatus.REVOKED: RefusalReason.CARD_REVOKED,
                    CardStatus.INACTIVE: RefusalReason.REGULAR_CARD_DEACTIVATED
                    if role is CardRole.REGULAR else RefusalReason.CARD_INACTIVE,
                }.get(status, RefusalReason.CARD_INACTIVE)
                raise TokenRefused(reason, "the card changed state during redemption")
            self._audit(conn, now, AuditEvent.REDEEMED, client_id=client_id, card_serial=serial,
                        holder_id=holder_id, detail=redemption_detail(session, outcomes))
        return activated


def redemption_detail(session: VerifiedSession,
                      outcomes: tuple[AuthorizationOutcome, ...] = ()) -> str:
    """The REDEEMED audit row's detail: scope and granted codes; a restricted session's
    proof method and its text; each refused code with why."""
    detail = f"{session.scope.name} {' '.join(sorted(session.granted))}".strip()
    claims = session.claims
    if claims.proof_method.restricted:
        detail += f"; {wire_name(claims.proof_method)}: {claims.restricted_reason or ''}"
    refused = [item for item in outcomes if not item.granted]
    if refused:
        detail += f"; refused {explain_all(refused)}"
    return detail


class NonceCheck:
    """A :class:`pkcard.verify.NonceStore` over a :class:`Registry` that only checks.

    The backend consumes the nonce later, in the same transaction that records
    the redemption (:meth:`Registry.commit_redemption`).
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        return self._registry.check_nonce(nonce, client_id, now)
