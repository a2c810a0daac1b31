"""The audit log: append-only JSON lines, hash-chained, fsynced per record.

Each line is one JSON object with canonical encoding (sorted keys, no
spaces, ASCII). ``seq`` counts from 1; ``prev`` is the previous record's
``hash`` (64 zeros for the first); ``hash`` is
``sha256(prev || canonical JSON of the record without "hash")`` in hex.
Editing, removing or reordering a line breaks the chain at that line; a torn
last line is visible as such; removing whole lines at the end is only
visible against a remembered head (``pkcard-audit verify --head``), which
the daemon also writes to its log at start and stop.

No record ever holds a secret: :class:`AuditEntry` has no field for one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """What one audited call or event records."""

    operation: str
    outcome: str  # "OK" or the error reason (pkcard.error_codes.Reason)
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


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_hash(prev: str, body: dict[str, Any]) -> str:
    """The chain hash of ``body`` (a record without its "hash" key) after ``prev``."""
    return hashlib.sha256(prev.encode("ascii") + canonical_json(body).encode("ascii")).hexdigest()


class Problem(IntEnum):
    """Why verification failed at a line."""

    TORN_LINE = 1  # the last line is incomplete (no newline or not JSON)
    NOT_JSON = 2
    BAD_SEQUENCE = 3  # a record removed, duplicated or reordered
    BROKEN_LINK = 4  # prev does not match the previous record's hash
    BAD_HASH = 5  # the record was edited
    HEAD_MISMATCH = 6  # the last record is not the expected head (records cut off the end)


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

    @property
    def intact(self) -> bool:
        return not self.findings


def _lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, complete) for every line of ``data``."""
    parts = data.split(b"\n")
    tail = parts.pop()  # after the last newline: empty when the file ends cleanly
    for number, line in enumerate(parts, start=1):
        yield number, line, True
    if tail:
        yield len(parts) + 1, tail, False


def verify_bytes(data: bytes, *, expected_head: str | None = None) -> Verification:
    """Check the whole chain; report every line where it breaks."""
    findings: list[Finding] = []
    prev, seq, count = GENESIS, 0, 0
    for number, line, complete in _lines(data):
        if not complete:
            findings.append(Finding(number, Problem.TORN_LINE, "incomplete last line"))
            break
        try:
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
        prev, seq = stored, record_seq
    if expected_head is not None and expected_head != prev:
        findings.append(Finding(0, Problem.HEAD_MISMATCH,
                                f"last hash {prev[:16]}... is not the expected head"))
    return Verification(count, ChainHead(seq, prev), tuple(findings))


class AuditLogCorrupt(RuntimeError):
    """The existing audit log fails verification; the daemon will not append to it."""


class AuditLog:
    """Appends :class:`AuditEntry` records to one file. Thread-safe; fsyncs every record."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        existing = path.read_bytes() if path.exists() else b""
        result = verify_bytes(existing)
        if not result.intact:
            first = result.findings[0]
            raise AuditLogCorrupt(
                f"audit log {path} fails verification at line {first.line} "
                f"({first.problem.name.lower()}); run `pkcard-audit verify {path}`, "
                "keep the file as evidence and start a new one"
            )
        self._head = result.head
        created = not existing
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if created:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @property
    def head(self) -> ChainHead:
        with self._lock:
            return self._head

    def append(self, entry: AuditEntry, *, now: datetime | None = None) -> ChainHead:
        """Write one record and fsync it. Returns the new head."""
        when = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
        fields = {k: v for k, v in asdict(entry).items() if v is not None}
        with self._lock:
            seq = self._head.seq + 1
            body = {**fields, "time": when, "seq": seq, "prev": self._head.hash}
            digest = record_hash(self._head.hash, body)
            line = canonical_json({**body, "hash": digest}).encode("ascii") + b"\n"
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write to audit log {self._path}")
            os.fsync(self._fd)
            self._head = ChainHead(seq, digest)
            return self._head

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
