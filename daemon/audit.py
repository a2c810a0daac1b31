"""The audit log: append-only JSON lines, hash-chained, committed in groups.

Each line is one JSON object with canonical encoding (sorted keys, no
spaces, ASCII). ``seq`` counts from 1; ``prev`` is the previous record's
``hash`` (64 zeros for the first); ``hash`` is
``sha256(prev || canonical JSON of the record without "hash")`` in hex.
Editing, removing or reordering a line breaks the chain at that line; a torn
last line is visible as such. Removing whole lines at the end is caught
against the head file ``FILE.head`` (the seq and hash of the last committed
record, rewritten at every commit) or a remembered head (``--head``).

Writing (:class:`AuditLog`):

* Every string field is bounded: longer than :data:`MAX_FIELD_CHARS` or not
  printable, it is stored as an escaped prefix, its length and its SHA-256.
* :meth:`AuditLog.append` writes a record; :meth:`AuditLog.commit` makes it
  durable. Commits are shared (group commit, leader/follower): the first
  caller that needs durability runs one ``fdatasync`` for everything written
  so far, callers that arrive meanwhile wait for it or the next one. The
  log owns no thread.
* A write that fails (disk full, short write) is cut back to the last whole
  record and refused with :class:`pkcard.errors.AuditUnavailable`; the file
  never holds a torn record that is later appended to. If cutting back or
  ``fdatasync`` fails, every later append is refused until restart.
* Start-up streams the file (memory does not grow with it). A torn tail is
  cut back to the last whole record and an ``AUDIT_REPAIRED`` record says
  how many bytes were removed and their SHA-256; any other inconsistency
  raises :class:`AuditLogCorrupt` (the daemon refuses to start).
* Rotation by size: ``FILE`` becomes ``FILE.000001`` (then ``.000002``, ...)
  and the new ``FILE`` starts with an ``AUDIT_ROTATED`` record whose ``prev``
  is the old file's head and which names that file and head; ``seq`` goes on.
* Files are opened with ``O_NOFOLLOW`` and refused unless ours and writable
  by nobody else (:mod:`pkcard.safefile`).

No record ever holds a secret: :class:`AuditEntry` has no field for one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO

from pkcard.errors import AuditUnavailable
from pkcard.safefile import fsync_directory, open_private
from pkcard.token import MAX_RESTRICTED_REASON

_log = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_FIELD_CHARS = 128  # longer string fields are stored as prefix + length + SHA-256
_PREFIX_CHARS = 32
# fields kept whole up to a larger bound: a restricted session's free text (the token's limit)
_FIELD_LIMITS = {"restricted_note": MAX_RESTRICTED_REASON}
MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer line is not an audit record
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
HEAD_SUFFIX = ".head"
_HEAD_BYTES = 256
HEAD_SYNC_INTERVAL_S = 1.0  # the head file is fdatasynced at most this often (and at close)
_READ_CHUNK = 1 << 16

STARTED = "STARTED"  # the outcome of an intent record (written before the card is touched)
ROTATED = "AUDIT_ROTATED"
REPAIRED = "AUDIT_REPAIRED"


@dataclass(frozen=True)
class AuditEntry:
    """What one audited call or event records."""

    operation: str
    outcome: str  # "OK", "STARTED" (intent) or the error reason (pkcard.error_codes.Reason)
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    tls_identity: str | None = None
    workplace_id: str | None = None
    client_system_id: str | None = None
    user_id: str | None = None
    reader: str | None = None
    card_serial: str | None = None
    reference: str | None = None
    tries_left: int | None = None
    incident_id: str | None = None
    session_id: str | None = None  # dual-card sessions: the id, never the token
    # Signatures: the document's SHA-256 and the signing certificate (never the document).
    document_sha256: str | None = None  # hex
    certificate_sha256: str | None = None  # hex fingerprint of the signer's certificate
    certificate_serial: str | None = None  # hex serial number of the signer's certificate
    intent_seq: int | None = None  # an outcome record: the seq of its call's intent record
    # The holder's stated reason (issue 15): a backup switch (FAULT/LOSS/BLOCK), a lost card
    # (LOST/STOLEN/MISUSED), a revoked KPEP (KPEP_REVOKED). A name, never free text.
    holder_reason: str | None = None
    removed_bytes: int | None = None  # AUDIT_REPAIRED: the torn tail cut off at start-up
    removed_sha256: str | None = None
    previous_file: str | None = None  # AUDIT_ROTATED: the file this one continues
    previous_head: str | None = None
    # Restricted-mode sessions: the reason (pkcard.sessions.RestrictedReason name, e.g.
    # "OTHER") and the text that goes into the token's restrictedReason.
    restricted_reason: str | None = None
    restricted_note: str | None = None


# json.dumps with these options builds a new encoder on every call; one made once writes
# the same bytes (dumps is exactly JSONEncoder(...).encode) for a fraction of the cost.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(record: dict[str, Any]) -> str:
    return _CANONICAL.encode(record)


def record_hash(prev: str, body: dict[str, Any]) -> str:
    """The chain hash of ``body`` (a record without its "hash" key) after ``prev``."""
    return hashlib.sha256(prev.encode("ascii") + canonical_json(body).encode("ascii")).hexdigest()


def bounded(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` if at most ``limit`` characters and printable, else an escaped prefix, its
    length and its SHA-256."""
    if len(value) <= limit and value.isprintable():
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    prefix = value[:_PREFIX_CHARS].encode("unicode_escape").decode("ascii")[: 2 * _PREFIX_CHARS]
    return f"{prefix}...[{len(value)} chars, sha256 {digest}]"


def _fields(entry: AuditEntry) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # vars(): a frozen dataclass's own fields, without building dataclasses.fields() each time
    for name, value in vars(entry).items():
        if value is not None:
            result[name] = (bounded(value, _FIELD_LIMITS.get(name, MAX_FIELD_CHARS))
                            if isinstance(value, str) else value)
    return result


class Problem(IntEnum):
    """Why verification failed at a line."""

    TORN_LINE = 1  # the last line is incomplete (no newline or not JSON)
    NOT_JSON = 2
    BAD_SEQUENCE = 3  # a record removed, duplicated or reordered
    BROKEN_LINK = 4  # prev does not match the previous record's hash
    BAD_HASH = 5  # the record was edited
    HEAD_MISMATCH = 6  # the last record is not the expected head (records cut off the end)
    BAD_ROTATION = 7  # a file does not continue the previous one as its first record says


@dataclass(frozen=True)
class Finding:
    line: int
    problem: Problem
    detail: str


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


@dataclass(frozen=True)
class Verification:
    records: int
    head: ChainHead
    findings: tuple[Finding, ...]
    start: ChainHead = ChainHead(0, GENESIS)  # the chain position the file continues
    whole_bytes: int = 0  # bytes up to the end of the last complete line
    wanted_hash: str | None = None  # the hash of the record ``want_seq`` named, if seen

    @property
    def intact(self) -> bool:
        return not self.findings


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, bool, int]]:
    """(line number, line or None when over MAX_LINE_BYTES, complete, end offset), streamed."""
    number, offset = 0, 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        offset += len(line)
        if line.endswith(b"\n"):
            yield number, line[:-1], True, offset
            continue
        if len(line) <= MAX_LINE_BYTES:
            yield number, line, False, offset  # end of file inside the line
            return
        while True:  # an overlong line: skip it without keeping it
            more = stream.readline(MAX_LINE_BYTES)
            offset += len(more)
            if not more:
                yield number, None, False, offset
                return
            if more.endswith(b"\n"):
                break
        yield number, None, True, offset


def verify_stream(
    stream: BinaryIO,
    *,
    start: ChainHead | None = None,
    expected_head: str | None = None,
    want_seq: int | None = None,
) -> Verification:
    """Check one file's chain, line by line; report every line where it breaks.

    ``start``: where the previous file ended (None: the file itself says, as
    the chain's first file or with an ``AUDIT_ROTATED`` first record).
    """
    findings: list[Finding] = []
    begin = start or ChainHead(0, GENESIS)
    prev, seq, count, whole = begin.hash, begin.seq, 0, 0
    wanted: str | None = None
    for number, line, complete, end in _lines(stream):
        if not complete:
            findings.append(Finding(number, Problem.TORN_LINE, "incomplete last line"))
            break
        whole = end
        try:
            if line is None:
                raise ValueError
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError
            stored = str(record.pop("hash"))
            record_seq = int(record["seq"])
            record_prev = str(record["prev"])
            if not record_prev.isascii():
                raise ValueError("prev is not a hash")
        # fuzzing found the last two: "seq":Infinity, and nesting deeper than the JSON parser
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            findings.append(Finding(number, Problem.NOT_JSON, "not an audit record"))
            continue
        if count == 0:
            rotated = record.get("operation") == ROTATED
            if start is None and rotated and record_seq > 1:
                begin = ChainHead(record_seq - 1, record_prev)
                prev, seq = begin.hash, begin.seq
            if (rotated or begin.seq > 0) and (
                not rotated or record.get("previous_head") != begin.hash
            ):
                findings.append(Finding(number, Problem.BAD_ROTATION,
                                        "the file does not continue the previous one"))
        count += 1
        if record_seq != seq + 1:
            findings.append(Finding(number, Problem.BAD_SEQUENCE,
                                    f"seq {record_seq} follows seq {seq}"))
        if record_prev != prev:
            findings.append(Finding(number, Problem.BROKEN_LINK,
                                    "prev does not match the previous record's hash"))
        if record_hash(record_prev, record) != stored:
            findings.append(Finding(number, Problem.BAD_HASH,
                                    "record content does not match its hash"))
        if record_seq == want_seq:
            wanted = stored
        prev, seq = stored, record_seq
    if expected_head is not None and expected_head != prev:
        findings.append(Finding(0, Problem.HEAD_MISMATCH,
                                f"last hash {prev[:16]}... is not the expected head"))
    return Verification(count, ChainHead(seq, prev), tuple(findings), begin, whole, wanted)


def verify_bytes(data: bytes, *, expected_head: str | None = None) -> Verification:
    """Check the whole chain of one file's bytes; report every line where it breaks."""
    return verify_stream(io.BytesIO(data), expected_head=expected_head)


# --- rotated sets and the head file ----------------------------------------------


def head_file(log: Path) -> Path:
    """The head file of ``log``: the seq and hash of its last committed record."""
    return log.with_name(log.name + HEAD_SUFFIX)


def rotated_files(log: Path) -> list[Path]:
    """``log``'s rotated predecessors (``log.000001``, ...), oldest first."""
    pattern = re.compile(re.escape(log.name) + r"\.(\d{6,})")
    found: list[tuple[int, Path]] = []
    try:
        names = os.listdir(log.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found.append((int(match.group(1)), log.with_name(name)))
    return [path for _, path in sorted(found)]


def parse_head(data: bytes) -> ChainHead | None:
    """The head a head file holds (None when empty); ValueError when malformed."""
    text = data.strip()
    if not text:
        return None
    try:
        document = json.loads(text)
        return ChainHead(int(document["seq"]), str(document["hash"]))
    except (ValueError, TypeError, KeyError):
        raise ValueError("the head file is not a seq and hash") from None


def _head_bytes(head: ChainHead) -> bytes:
    return canonical_json({"hash": head.hash, "seq": head.seq}).encode("ascii").ljust(
        _HEAD_BYTES - 1) + b"\n"


@dataclass(frozen=True)
class SetVerification:
    """A rotated set checked in order: each file's result, and findings about the set."""

    files: tuple[tuple[Path, Verification], ...]
    findings: tuple[tuple[Path | None, Finding], ...]
    head: ChainHead
    records: int

    @property
    def intact(self) -> bool:
        return not self.findings


def verify_files(
    files: Sequence[Path], *, expected_head: str | None = None, remembered: ChainHead | None = None
) -> SetVerification:
    """Check ``files`` (oldest first) as one chain; ``remembered`` is a head file's head."""
    results: list[tuple[Path, Verification]] = []
    findings: list[tuple[Path | None, Finding]] = []
    start: ChainHead | None = None
    records, wanted = 0, None
    for index, path in enumerate(files):
        last = index == len(files) - 1
        with path.open("rb", buffering=_READ_CHUNK) as stream:
            result = verify_stream(stream, start=start,
                                   expected_head=expected_head if last else None,
                                   want_seq=None if remembered is None else remembered.seq)
        results.append((path, result))
        findings.extend((path, finding) for finding in result.findings)
        if result.wanted_hash is not None:
            wanted = result.wanted_hash
        records += result.records
        start = result.head
    head = start or ChainHead(0, GENESIS)
    if remembered is not None:
        if head.seq < remembered.seq:
            findings.append((None, Finding(0, Problem.HEAD_MISMATCH,
                                           f"the head file names seq {remembered.seq}, the log "
                                           f"ends at seq {head.seq}: records were cut off")))
        elif wanted is not None and wanted != remembered.hash:
            findings.append((None, Finding(0, Problem.HEAD_MISMATCH,
                                           f"record seq {remembered.seq} is not the head the "
                                           "head file names")))
    return SetVerification(tuple(results), tuple(findings), head, records)


def _last_head(path: Path) -> ChainHead:
    """The seq and hash of ``path``'s last record, read from its end."""
    fd, _ = open_private(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        span = _READ_CHUNK
        while True:
            span = min(span, size)
            tail = os.pread(fd, span, size - span)
            body = tail[:-1] if tail.endswith(b"\n") else b""
            cut = body.rfind(b"\n")
            if body and (cut >= 0 or span == size):
                line = body[cut + 1:]
                break
            if span == size or span > MAX_LINE_BYTES:
                raise AuditLogCorrupt(f"rotated audit log {path} does not end with a record")
            span *= 4
    finally:
        os.close(fd)
    try:
        record = json.loads(line)
        return ChainHead(int(record["seq"]), str(record["hash"]))
    except (ValueError, TypeError, KeyError):
        raise AuditLogCorrupt(f"rotated audit log {path} does not end with a record") from None


# --- the writer ---------------------------------------------------------------


class AuditLogCorrupt(RuntimeError):
    """The existing audit log fails verification; the daemon will not append to it."""


@dataclass(frozen=True)
class AuditStats:
    """Counts since the log was opened: records written and commits (``fdatasync`` calls)."""

    records: int
    commits: int


def _now_text(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="microseconds")


class AuditLog:
    """Appends :class:`AuditEntry` records to one file (and its rotated set). Thread-safe."""

    def __init__(self, path: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        if max_file_bytes < 4096:
            raise ValueError("max_file_bytes must be at least 4096")
        self._path = path
        self._max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._fd = -1
        self._head_fd = -1
        self._size = 0
        self._head = ChainHead(0, GENESIS)
        self._durable_seq = 0
        self._syncing = False
        self._broken: str | None = None
        self._records = 0
        self._commits = 0
        self._head_synced_at = 0.0
        try:
            self._open()
        except BaseException:
            self._close_files()
            raise

    # --- start-up ---------------------------------------------------------------

    def _open(self) -> None:
        path = self._path
        self._fd, created = open_private(path, os.O_RDWR | os.O_APPEND, create=True)
        self._head_fd, head_created = open_private(head_file(path), os.O_RDWR, create=True)
        try:
            remembered = parse_head(os.pread(self._head_fd, _HEAD_BYTES, 0))
        except ValueError as exc:
            raise AuditLogCorrupt(f"{head_file(path)}: {exc}") from None
        previous = rotated_files(path)
        previous_head = _last_head(previous[-1]) if previous else None
        with open(os.dup(self._fd), "rb", buffering=_READ_CHUNK) as stream:
            stream.seek(0)
            result = verify_stream(stream, want_seq=None if remembered is None else remembered.seq)
        problems = [f for f in result.findings if f.problem is not Problem.TORN_LINE]
        if problems:
            first = problems[0]
            raise AuditLogCorrupt(
                f"audit log {path} fails verification at line {first.line} "
                f"({first.problem.name.lower()}); run `pkcard-audit verify {path}`, "
                "keep the file as evidence and start a new one"
            )
        head = result.head
        if result.records == 0 and previous_head is not None:
            head = previous_head
        elif result.start.seq > 0 and previous_head is not None and result.start != previous_head:
            raise AuditLogCorrupt(f"audit log {path} does not continue {previous[-1]}")
        if remembered is not None:
            if remembered.seq > head.seq:
                raise AuditLogCorrupt(
                    f"audit log {path} ends at seq {head.seq} but its head file names seq "
                    f"{remembered.seq}: records were cut off; keep the files as evidence"
                )
            if result.wanted_hash is not None and result.wanted_hash != remembered.hash:
                raise AuditLogCorrupt(f"audit log {path}: record seq {remembered.seq} is not "
                                      "the head its head file names")
        self._head = head
        self._durable_seq = head.seq
        self._size = result.whole_bytes
        torn = os.fstat(self._fd).st_size - result.whole_bytes
        removed: tuple[int, str] | None = None
        if torn > 0:
            removed = (torn, self._hash_range(result.whole_bytes, torn))
            os.ftruncate(self._fd, result.whole_bytes)
            os.fsync(self._fd)
            _log.warning("audit log %s: cut off a torn tail of %d bytes (sha256 %s)",
                         path, removed[0], removed[1])
        if created or head_created:
            fsync_directory(path.parent)
        when = _now_text(None)
        with self._lock:
            if result.records == 0 and previous:
                assert previous_head is not None
                self._write_locked(self._rotation_fields(previous[-1].name, previous_head), when)
            if removed is not None:
                self._write_locked({"operation": REPAIRED, "outcome": "OK",
                                    "removed_bytes": removed[0],
                                    "removed_sha256": removed[1]}, when)
        self.commit(self._head.seq)
        with self._lock:
            self._store_head_locked(self._head, sync=True)

    def _hash_range(self, offset: int, length: int) -> str:
        digest = hashlib.sha256()
        end = offset + length
        while offset < end:
            chunk = os.pread(self._fd, min(_READ_CHUNK, end - offset), offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    @staticmethod
    def _rotation_fields(previous_file: str, previous_head: ChainHead) -> dict[str, Any]:
        return {"operation": ROTATED, "outcome": "OK", "previous_file": previous_file,
                "previous_head": previous_head.hash}

    # --- state ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def head(self) -> ChainHead:
        with self._lock:
            return self._head

    @property
    def stats(self) -> AuditStats:
        with self._lock:
            return AuditStats(self._records, self._commits)

    def _usable_locked(self) -> None:
        if self._broken is not None:
            raise AuditUnavailable(f"pkcardd cannot write its audit log ({self._broken})")
        if self._fd < 0:
            raise AuditUnavailable("pkcardd's audit log is closed")

    # --- writing ---------------------------------------------------------------------

    def append(self, entry: AuditEntry, *, durable: bool = False,
               now: datetime | None = None) -> ChainHead:
        """Write one record (durable too with ``durable``); returns its head.

        Raises :class:`AuditUnavailable` when it cannot be written; the file
        then still ends with the last whole record.
        """
        when = _now_text(now)
        record = _fields(entry)
        with self._lock:
            self._usable_locked()
            while self._size >= self._max_file_bytes:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._rotate_locked(when)
            head = self._write_locked(record, when)
        if durable:
            self.commit(head.seq)
        return head

    def _write_locked(self, fields_: dict[str, Any], when: str) -> ChainHead:
        seq = self._head.seq + 1
        body = {**fields_, "time": when, "seq": seq, "prev": self._head.hash}
        digest = record_hash(self._head.hash, body)
        line = canonical_json({**body, "hash": digest}).encode("ascii") + b"\n"
        try:
            written = os.write(self._fd, line)
            problem = None if written == len(line) else "short write"
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
        if problem is not None:
            self._cut_back_locked(problem)
        self._size += len(line)
        self._head = ChainHead(seq, digest)
        self._records += 1
        return self._head

    def _cut_back_locked(self, problem: str) -> None:
        """Remove a partly written record; raise :class:`AuditUnavailable`."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = f"{problem}; the partial record could not be cut back ({exc.strerror})"
            _log.error("audit log %s: %s; refusing every audited call until restart",
                       self._path, self._broken)
        else:
            _log.error("audit log %s: cannot write a record (%s)", self._path, problem)
        raise AuditUnavailable(f"pkcardd cannot write its audit log ({problem})")

    def commit(self, seq: int) -> None:
        """Return once the record ``seq`` (and every one before it) is durable.

        Group commit: one caller syncs for all; callers that come while it
        does wait for that sync or the next. Raises :class:`AuditUnavailable`.
        """
        with self._cond:
            while self._durable_seq < seq:
                self._usable_locked()
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target, fd = self._head, self._fd
                self._lock.release()
                error: OSError | None = None
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._lock.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                if error is not None:
                    self._broken = f"fdatasync failed: {error.strerror}"
                    _log.error("audit log %s: %s; refusing every audited call until restart",
                               self._path, self._broken)
                    raise AuditUnavailable(f"pkcardd cannot write its audit log ({self._broken})")
                self._commits += 1
                if target.seq > self._durable_seq:
                    self._durable_seq = target.seq
                    now = time.monotonic()
                    sync = now - self._head_synced_at >= HEAD_SYNC_INTERVAL_S
                    self._store_head_locked(target, sync=sync)

    def _store_head_locked(self, head: ChainHead, *, sync: bool) -> None:
        """Rewrite the head file in place (one fixed-size block); sync it when asked."""
        try:
            os.pwrite(self._head_fd, _head_bytes(head), 0)
            if sync:
                os.fdatasync(self._head_fd)
                self._head_synced_at = time.monotonic()
        except OSError as exc:
            _log.error("audit log %s: cannot update its head file (%s)", self._path, exc.strerror)

    def _rotate_locked(self, when: str) -> None:
        """Close the full file as ``FILE.NNNNNN``; the new ``FILE`` starts with AUDIT_ROTATED."""
        path = self._path
        try:
            os.fdatasync(self._fd)
            self._commits += 1
            self._durable_seq = self._head.seq
            existing = rotated_files(path)
            number = 1 + (int(existing[-1].name.rsplit(".", 1)[1]) if existing else 0)
            target = path.with_name(f"{path.name}.{number:06d}")
            if os.path.lexists(target):
                raise FileExistsError(f"{target} exists")
            os.rename(path, target)
            fd, created = open_private(path, os.O_RDWR | os.O_APPEND, create=True)
            if not created:
                os.close(fd)
                raise FileExistsError(f"{path} appeared during rotation")
            fsync_directory(path.parent)
        except OSError as exc:
            self._broken = f"rotation failed: {exc}"
            _log.error("audit log %s: %s; refusing every audited call until restart",
                       path, self._broken)
            raise AuditUnavailable(f"pkcardd cannot write its audit log ({self._broken})") from None
        os.close(self._fd)
        self._fd, self._size = fd, 0
        _log.info("audit log rotated: %s continues %s at seq %d", path, target, self._head.seq)
        self._write_locked(self._rotation_fields(target.name, self._head), when)

    def close(self) -> None:
        """Make everything written durable and close the files."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._fd >= 0 and self._broken is None:
                try:
                    os.fdatasync(self._fd)
                    self._commits += 1
                    self._durable_seq = self._head.seq
                    self._store_head_locked(self._head, sync=True)
                except OSError as exc:
                    _log.error("audit log %s: final sync failed (%s)", self._path, exc.strerror)
            self._close_files()

    def _close_files(self) -> None:
        for fd in (self._fd, self._head_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._head_fd = -1
