"""The hash-chained audit log and ``pkcard-audit verify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.daemon.audit import AuditEntry, AuditLog, AuditLogCorrupt, Problem, verify_bytes
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
