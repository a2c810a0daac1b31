"""The registry's database engines: SQLite (embedded default) and PostgreSQL (several instances).

:class:`pkcard.backend.registry.Registry` holds every rule and every SQL
statement; this module only knows how each engine runs them:

- placeholders: statements are written with ``?``; PostgreSQL gets ``%s``.
  Values always travel as bound parameters, never inside the text.
- write transactions: SQLite ``BEGIN IMMEDIATE`` (one writer at a time, the
  whole database locked); PostgreSQL ``BEGIN`` at READ COMMITTED, where a
  statement asked to ``lock`` its rows gets ``FOR UPDATE`` (or ``FOR UPDATE
  SKIP LOCKED``) so the row locks and conditional updates decide races.
- migrations: SQLite type names are translated for PostgreSQL (``BLOB`` →
  ``BYTEA``, ``INTEGER`` → ``BIGINT``), and concurrent instances take an
  advisory lock so one of them migrates.
- failures: a PostgreSQL serialization failure, deadlock or lost connection
  before COMMIT rolls the transaction back and raises :class:`Retry`;
  :meth:`Database.retry` runs the whole operation again within a bound and
  then raises :class:`~pkcard.errors.RegistryBusy` or
  :class:`~pkcard.errors.RegistryUnavailable`. A connection lost during
  COMMIT leaves the outcome unknown: RegistryUnavailable at once, never a
  retry that could apply the change twice.

PostgreSQL connections come from a ``psycopg_pool.ConnectionPool``; its
worker threads start in :func:`open_database` and end in
:meth:`Database.close`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pkcard.errors import RegistryBusy, RegistryUnavailable
from pkcard.safefile import prepare_sqlite_files

_T = TypeVar("_T")
Row = tuple[Any, ...]
Params = Sequence[Any]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# serialization failures and deadlocks: attempts of one operation before RegistryBusy
CONFLICT_ATTEMPTS = 8
# a lost or refused connection: how long one operation keeps trying before RegistryUnavailable
RECONNECT_BUDGET = timedelta(seconds=20)
_BACKOFF_S = 0.005  # first pause between attempts; doubles up to _BACKOFF_MAX_S
_BACKOFF_MAX_S = 0.5
_MIGRATION_LOCK = 0x706B63617264  # "pkcard": the advisory lock key of schema migrations


class Engine(IntEnum):
    """The database engine under the registry."""

    SQLITE = 1
    POSTGRESQL = 2


class RowLock(IntEnum):
    """What a statement locks (PostgreSQL; SQLite's writer lock covers everything)."""

    NONE = 0
    UPDATE = 1  # FOR UPDATE: wait for the rows, then hold them until COMMIT
    SKIP_LOCKED = 2  # FOR UPDATE SKIP LOCKED: take the free rows, pass over held ones


class IntegrityViolation(Exception):
    """A constraint refused a write (either engine); the registry words it."""


class RetryReason(IntEnum):
    CONFLICT = 1  # serialization failure or deadlock: the transaction was rolled back
    CONNECTION = 2  # the connection broke, or none could be had, before COMMIT


class Retry(Exception):
    """The transaction was rolled back for a reason worth another attempt."""

    def __init__(self, reason: RetryReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Result:
    """The fetched rows of one statement and its row count."""

    rows: list[Row]
    rowcount: int

    def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Row]:
        return self.rows


class Connection(Protocol):
    """What the registry runs its statements on: a transaction, or autocommit reads."""

    def execute(self, sql: str, params: Params = (), *, lock: RowLock = RowLock.NONE) -> Result:
        ...

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        ...


class Database(Protocol):
    """One engine behind the registry."""

    @property
    def engine(self) -> Engine:
        ...

    def transaction(self) -> Any:  # a context manager yielding a Connection
        ...

    def reader(self) -> Connection:
        ...

    def migrate(self, migrations: Sequence[tuple[int, tuple[str, ...]]]) -> None:
        ...

    def retry(self, operation: Callable[[], _T]) -> _T:
        ...

    def close(self) -> None:
        ...


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def describe_target(url: str) -> str:
    """Host, port, database and user of a PostgreSQL URL: never its password."""
    parts = urlsplit(url)
    query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
    host = parts.hostname or query.get("host") or "the default Unix socket"
    port = parts.port or query.get("port") or 5432
    database = parts.path.lstrip("/") or parts.username or "(default)"
    user = parts.username or query.get("user") or "(the OS user)"
    return f"host {host} port {port} database {database} user {user}"


def _backoff(attempt: int) -> float:
    return float(min(_BACKOFF_MAX_S, _BACKOFF_S * 2 ** attempt))


def _run_retried(operation: Callable[[], _T], attempts: int, budget: timedelta,
                 sleep: Callable[[float], None] = time.sleep) -> _T:
    deadline = time.monotonic() + budget.total_seconds()
    conflicts = 0
    tries = 0
    while True:
        try:
            return operation()
        except Retry as retry:
            tries += 1
            if retry.reason is RetryReason.CONFLICT:
                conflicts += 1
                if conflicts >= attempts:
                    raise RegistryBusy(
                        f"the transaction conflicted with concurrent ones {conflicts} times "
                        f"({retry.detail}); try again") from None
            elif time.monotonic() >= deadline:
                raise RegistryUnavailable(
                    f"the database stayed unreachable for {budget.total_seconds():.0f} s "
                    f"({retry.detail})") from None
            sleep(_backoff(tries - 1))


# --- SQLite -----------------------------------------------------------------


class _SqliteConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = (), *, lock: RowLock = RowLock.NONE) -> Result:
        try:
            cursor = self._conn.execute(sql, tuple(params))
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RegistryBusy(f"the SQLite database stayed locked: {exc}") from exc
            raise
        rows = cursor.fetchall()
        return Result(rows, cursor.rowcount)

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        for item in params:
            self.execute(sql, item)


class SqliteDatabase:
    """One SQLite file in WAL mode, ``synchronous=FULL``; one connection per thread."""

    engine = Engine.SQLITE

    def __init__(self, path: Path | str, busy_timeout: timedelta) -> None:
        self._path = str(path)
        self._busy_s = busy_timeout.total_seconds()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_s)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def reader(self) -> Connection:
        return _SqliteConnection(self._conn())

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        conn = self._conn()
        _SqliteConnection(conn).execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteConnection(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self, migrations: Sequence[tuple[int, tuple[str, ...]]]) -> None:
        with self.transaction() as conn:
            _apply_migrations(conn, migrations, lambda statement: statement)

    def retry(self, operation: Callable[[], _T]) -> _T:
        return operation()  # BEGIN IMMEDIATE waits busy_timeout; nothing to retry

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _apply_migrations(conn: Connection, migrations: Sequence[tuple[int, tuple[str, ...]]],
                      ddl: Callable[[str], str]) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)")
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    for version, statements in migrations:
        if version <= current:
            continue
        for statement in statements:
            conn.execute(ddl(statement))
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, int(time.time())))


# --- PostgreSQL -----------------------------------------------------------------

_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)
_LOCK_CLAUSE = {RowLock.NONE: "", RowLock.UPDATE: " FOR UPDATE",
                RowLock.SKIP_LOCKED: " FOR UPDATE SKIP LOCKED"}


def postgres_ddl(statement: str) -> str:
    """A migration statement, written for SQLite, in PostgreSQL's type names."""
    for pattern, replacement in _PG_TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


def _pg_sql(sql: str, lock: RowLock) -> str:
    if "%" in sql:
        raise ValueError("registry SQL never contains '%': values are bound parameters")
    return sql.replace("?", "%s") + _LOCK_CLAUSE[lock]


class PostgresDatabase:
    """A PostgreSQL database through a psycopg connection pool (autocommit connections;
    transactions are explicit ``BEGIN`` ... ``COMMIT`` at READ COMMITTED)."""

    engine = Engine.POSTGRESQL

    def __init__(self, url: str, *, pool_size: int, connect_timeout: timedelta,
                 conflict_attempts: int = CONFLICT_ATTEMPTS,
                 reconnect_budget: timedelta = RECONNECT_BUDGET) -> None:
        import psycopg  # noqa: PLC0415 - only a PostgreSQL registry needs the extra
        from psycopg_pool import ConnectionPool  # noqa: PLC0415

        self._psycopg = psycopg
        self._url = url
        self._target = describe_target(url)
        self._attempts = conflict_attempts
        self._budget = reconnect_budget
        self._connect_s = connect_timeout.total_seconds()
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, name="pkcard-backend",
            timeout=self._connect_s, reconnect_timeout=max(60.0, self._budget.total_seconds()),
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self._connect_s)),
                    "application_name": f"pkcard-backend:{os.getpid()}"},
        )

    @property
    def target(self) -> str:
        return self._target

    def open(self) -> None:
        """Reach the server once (a clear error if it cannot be), then open the pool."""
        try:
            probe = self._psycopg.connect(self._url, connect_timeout=max(1, int(self._connect_s)),
                                          autocommit=True)
        except self._psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RegistryUnavailable(
                f"cannot reach PostgreSQL at {self._target}: {first}. Check that the server "
                "is running and listening there, the --db URL (or db in the configuration "
                "file), the user's password and pg_hba.conf") from None
        probe.close()
        self._pool.open(wait=True, timeout=self._connect_s)

    def _classify(self, exc: Exception) -> Exception:
        errors = self._psycopg.errors
        if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected):
            return Retry(RetryReason.CONFLICT, type(exc).__name__)
        if isinstance(exc, self._psycopg.IntegrityError):
            return IntegrityViolation(str(exc).splitlines()[0])
        if isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            return Retry(RetryReason.CONNECTION, str(exc).strip().splitlines()[0]
                         if str(exc).strip() else type(exc).__name__)
        return exc

    def reader(self) -> Connection:
        return _PgReader(self)

    def autocommit(self, run: Callable[[Any], _T]) -> _T:
        """``run`` on a pooled connection outside a transaction (one attempt)."""
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        try:
            with self._pool.connection() as raw:
                return run(raw)
        except PoolTimeout as exc:
            raise Retry(RetryReason.CONNECTION, f"no connection to {self._target}: {exc}") \
                from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        try:
            with self._pool.connection() as raw:
                yield from self._in_transaction(raw)
        except PoolTimeout as exc:
            raise Retry(RetryReason.CONNECTION, f"no connection to {self._target}: {exc}") \
                from None

    def _in_transaction(self, raw: Any) -> Iterator[Connection]:
        conn = _PgConnection(self, raw)
        conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            if not raw.closed:  # a broken connection: the server rolls back, the pool drops it
                with contextlib.suppress(self._psycopg.Error):
                    raw.execute("ROLLBACK")
            raise
        try:
            raw.execute("COMMIT")
        except self._psycopg.Error as exc:
            classified = self._classify(exc)
            if isinstance(classified, Retry) and classified.reason is RetryReason.CONFLICT:
                raise classified from None  # refused at COMMIT: rolled back, safe to retry
            raise RegistryUnavailable(
                f"the connection to {self._target} broke during COMMIT: the outcome is "
                "unknown") from None

    def execute_on(self, raw: Any, sql: str, params: Params, lock: RowLock) -> Result:
        try:
            cursor = raw.execute(_pg_sql(sql, lock), tuple(params))
            rows = cursor.fetchall() if cursor.description is not None else []
        except self._psycopg.Error as exc:
            raise self._classify(exc) from None
        return Result([tuple(row) for row in rows], cursor.rowcount)

    def executemany_on(self, raw: Any, sql: str, params: Sequence[Params]) -> None:
        try:
            with raw.cursor() as cursor:
                cursor.executemany(_pg_sql(sql, RowLock.NONE), [tuple(p) for p in params])
        except self._psycopg.Error as exc:
            raise self._classify(exc) from None

    def migrate(self, migrations: Sequence[tuple[int, tuple[str, ...]]]) -> None:
        def run() -> None:
            with self.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                _apply_migrations(conn, migrations, postgres_ddl)

        self.retry(run)

    def retry(self, operation: Callable[[], _T]) -> _T:
        return _run_retried(operation, self._attempts, self._budget)

    def close(self) -> None:
        self._pool.close()


class _PgConnection:
    """Statements inside one transaction."""

    def __init__(self, database: PostgresDatabase, raw: Any) -> None:
        self._database = database
        self._raw = raw

    def execute(self, sql: str, params: Params = (), *, lock: RowLock = RowLock.NONE) -> Result:
        return self._database.execute_on(self._raw, sql, params, lock)

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        self._database.executemany_on(self._raw, sql, params)


class _PgReader:
    """Autocommit reads, each on a pooled connection; a lost connection is retried."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def execute(self, sql: str, params: Params = (), *, lock: RowLock = RowLock.NONE) -> Result:
        database = self._database
        return database.retry(lambda: database.autocommit(
            lambda raw: database.execute_on(raw, sql, params, lock)))

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        database = self._database
        database.retry(lambda: database.autocommit(
            lambda raw: database.executemany_on(raw, sql, params)))


def open_database(target: Path | str, *, busy_timeout: timedelta = timedelta(seconds=10),
                  pool_size: int = 20,
                  connect_timeout: timedelta = timedelta(seconds=5)) -> SqliteDatabase | \
        PostgresDatabase:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` URL (opened and reachable)."""
    if is_postgres(target):
        database = PostgresDatabase(str(target), pool_size=pool_size,
                                    connect_timeout=connect_timeout)
        database.open()
        return database
    prepare_sqlite_files(Path(target))  # O_NOFOLLOW, ours, mode 0600 (and -wal/-shm)
    return SqliteDatabase(target, busy_timeout)
