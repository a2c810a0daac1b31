"""The hash-chained audit log and ``pkcard-audit verify``."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.daemon.audit import (
    AuditEntry,
    AuditLog,
    AuditLogCorrupt,
    Problem,
    rotated_files,
    verify_bytes,
)
from pkcard.daemon.audit_cli import EXIT_BROKEN, EXIT_INTACT, EXIT_USAGE, main

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _log_bytes(tmp_path: Path, count: int = 5) -> tuple[Path, bytes]:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(count):
        log.append(AuditEntry(operation="VerifyPin", outcome="WRONG_PIN", uid=1000 + i,
                              reader="r", tries_left=2), now=NOW)
    log.close()
    return path, path.read_bytes()


def test_intact_chain_verifies_and_resumes(tmp_path: Path) -> None:
    path, data = _log_bytes(tmp_path)
    result = verify_bytes(data)
    assert result.intact
    assert result.records == 5
    log = AuditLog(path)
    head = log.append(AuditEntry(operation="GetCard", outcome="OK"))
    log.close()
    assert head.seq == 6
    assert verify_bytes(path.read_bytes(), expected_head=head.hash).intact


def test_records_have_the_documented_fields(tmp_path: Path) -> None:
    _, data = _log_bytes(tmp_path, 1)
    record = json.loads(data.splitlines()[0])
    assert record["seq"] == 1
    assert record["prev"] == "0" * 64
    assert {"time", "operation", "outcome", "uid", "reader", "tries_left", "hash"} <= set(record)
    assert "gid" not in record  # unset fields are left out


@pytest.fixture(scope="module")
def three_records(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _log_bytes(tmp_path_factory.mktemp("a"), 3)[1]


@given(data=st.data())
def test_any_single_byte_change_is_detected(three_records: bytes, data: st.DataObject) -> None:
    original = three_records
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    edited = bytearray(original)
    edited[position] = replacement
    assert not verify_bytes(bytes(edited)).intact


def test_removed_reordered_and_torn_records(tmp_path: Path) -> None:
    _, data = _log_bytes(tmp_path)
    lines = data.splitlines(keepends=True)
    removed = verify_bytes(b"".join(lines[:2] + lines[3:]))
    assert {f.problem for f in removed.findings} >= {Problem.BAD_SEQUENCE, Problem.BROKEN_LINK}
    swapped = verify_bytes(b"".join([lines[0], lines[2], lines[1], *lines[3:]]))
    assert not swapped.intact
    torn = verify_bytes(data[:-10])
    assert torn.findings[-1].problem is Problem.TORN_LINE
    head = verify_bytes(data).head.hash
    cut = verify_bytes(b"".join(lines[:-1]), expected_head=head)
    assert [f.problem for f in cut.findings] == [Problem.HEAD_MISMATCH]


def test_daemon_refuses_a_corrupt_log(tmp_path: Path) -> None:
    path, data = _log_bytes(tmp_path)
    path.write_bytes(data.replace(b"WRONG_PIN", b"OK", 1))
    with pytest.raises(AuditLogCorrupt, match="line 1"):
        AuditLog(path)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, data = _log_bytes(tmp_path)
    assert main(["verify", str(path)]) == EXIT_INTACT
    assert "OK, 5 records" in capsys.readouterr().out
    path.write_bytes(data.replace(b'"uid":1002', b'"uid":1003'))
    assert main(["verify", str(path)]) == EXIT_BROKEN
    out = capsys.readouterr().out
    assert "line 3: BAD_HASH" in out
    assert main(["verify", str(tmp_path / "missing")]) == EXIT_USAGE


def test_one_commit_makes_many_records_durable(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    before = log.stats
    heads = [log.append(AuditEntry(operation="GetCard", outcome="STARTED")) for _ in range(20)]
    log.commit(heads[-1].seq)
    log.commit(heads[3].seq)  # already durable: no second sync
    after = log.stats
    log.close()
    assert after.records - before.records == 20
    assert after.commits - before.commits == 1


def test_concurrent_durable_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    def work(uid: int) -> None:
        for _ in range(20):
            log.append(AuditEntry(operation="VerifyPin", outcome="STARTED", uid=uid), durable=True)

    threads = [threading.Thread(target=work, args=(uid,)) for uid in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = log.stats
    log.close()
    assert stats.records == 640
    assert stats.commits <= stats.records
    assert verify_bytes(path.read_bytes()).records == 640
    assert main(["verify", str(path)]) == EXIT_INTACT


def test_long_or_unprintable_fields_are_stored_bounded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    huge = "x\n" * 500_000
    log.append(AuditEntry(operation="CloseSession", outcome="INVALID_REQUEST", session_id=huge,
                          reader="fine reader"))
    log.close()
    record = json.loads(path.read_bytes().splitlines()[-1])
    assert record["reader"] == "fine reader"
    stored = record["session_id"]
    assert len(stored) < 200
    assert stored.startswith("x\\nx\\n")
    assert hashlib.sha256(huge.encode()).hexdigest() in stored
    assert "1000000 chars" in stored


def test_rotation_keeps_the_chain_across_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_file_bytes=4096)
    for i in range(60):
        log.append(AuditEntry(operation="GetPinStatus", outcome="OK", uid=i), now=NOW)
    head = log.head
    log.close()
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    assert all(file.stat().st_size < 4096 + 512 for file in rotated)
    for previous, file in zip([*rotated], [*rotated[1:], path], strict=True):
        first = json.loads(file.read_bytes().splitlines()[0])
        assert first["operation"] == "AUDIT_ROTATED"
        assert first["previous_file"] == previous.name
        assert first["previous_head"] == first["prev"]
    assert main(["verify", str(path)]) == EXIT_INTACT
    out = capsys.readouterr().out
    assert f"in {len(rotated) + 1} file(s), seq 1 to {head.seq}" in out
    assert main(["verify", "--only", str(path)]) == EXIT_INTACT
    capsys.readouterr()
    reopened = AuditLog(path, max_file_bytes=4096)  # start-up continues the set
    assert reopened.head == head
    reopened.close()
    rotated[1].unlink()  # a middle file goes missing
    assert main(["verify", str(path)]) == EXIT_BROKEN
    assert "BAD_ROTATION" in capsys.readouterr().out


def test_head_file_catches_a_cut_off_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = _log_bytes(tmp_path)
    lines = data.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    assert main(["verify", str(path)]) == EXIT_BROKEN
    assert "HEAD_MISMATCH" in capsys.readouterr().out
    assert main(["verify", "--no-head-file", str(path)]) == EXIT_INTACT
    with pytest.raises(AuditLogCorrupt, match="cut off"):
        AuditLog(path)
