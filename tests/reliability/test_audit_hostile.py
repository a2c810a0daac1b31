"""Issue #12, breaks 1, 2, 5 and 10: the audit log under a full disk, a torn tail,
hostile request fields, a big log, planted files; the backend database's mode.

Every test runs real ``pkcardd`` (or ``pkcard-backend``) processes on real
files. Figures are printed (``pytest -s``), never asserted as timings.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from daemon_harness import PK_READER, RunningDaemon, make_root, start_daemon

from pkcard.daemon.audit import GENESIS, canonical_json, record_hash
from pkcard.daemon.embedded_backend import TEST_CA_DIR
from pkcard.errors import AuditUnavailable, WrongPin
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.v1 import cards_pb2, cards_pb2_grpc, sessions_pb2, sessions_pb2_grpc

PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)
WRONG_PIN = "40404040" if PIN != "40404040" else "50505050"
MIB = 1024 * 1024
BOUND_S = 60.0

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs, chown)")


def _verify(log: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkcard.daemon.audit_cli", "verify", str(log), *extra],
        capture_output=True, text=True, timeout=BOUND_S, check=False,
    )


def _records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _start_refused(root: Path, log: Path) -> tuple[int, str]:
    """Start pkcardd on ``log``; it must exit by itself. Returns (exit code, its log)."""
    command = [sys.executable, "-m", "pkcard.daemon.main", "--simulated",
               "--socket-dir", str(root / "run"), "--audit-log", str(log)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        _, stderr = process.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("pkcardd started on an unsafe audit log")
    return process.returncode, stderr


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                   check=True, timeout=BOUND_S)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=BOUND_S)


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (64 * 1024, 4096, 256, 1):
            while True:
                try:
                    count = os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += count
                if count < chunk:
                    break
    finally:
        os.close(fd)
    return written


def _tries(daemon: RunningDaemon) -> int:
    with daemon.client(timeout=10.0) as client:
        (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    return status.tries_left


# --- break 1: a failed audit must stop the card operation -------------------------------


def test_break1_full_disk_refuses_the_pin_try_and_the_audit_stays_consistent() -> None:
    root = make_root()
    with _tmpfs(root / "fs", "2m") as fs:
        log = fs / "audit.jsonl"
        extra = ("--audit-log", str(log), "--state-dir", str(fs / "state"))
        daemon = start_daemon(root, *extra)
        try:
            before = _tries(daemon)
            filled = _fill(fs / "filler")
            refused_reads = 0
            with daemon.client(timeout=10.0) as client:
                for _ in range(64):  # the log's last page may still take a few records
                    try:
                        client.get_card(PK_READER)
                    except AuditUnavailable:
                        refused_reads += 1
                        break
                assert refused_reads == 1, "GetCard never answered AUDIT_UNAVAILABLE"
                with pytest.raises(AuditUnavailable):
                    client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
            (fs / "filler").unlink()
            after = _tries(daemon)
            assert after == before  # the wrong PIN never reached the card
            checked = _verify(log)
            assert checked.returncode == 0, checked.stdout
            assert daemon.terminate() == 0
            failures = re.findall(r"cannot write a record \(([^)]*)\)", daemon.stderr())
        finally:
            daemon.close()
        records_before_restart = len(_records(log))
        daemon = start_daemon(root, *extra)  # a clean restart: no repair needed
        try:
            assert _tries(daemon) == before
        finally:
            assert daemon.terminate() == 0
            daemon.close()
        records = _records(log)
        assert not [r for r in records if r["operation"] == "AUDIT_REPAIRED"]
        assert records[records_before_restart]["operation"] == "DAEMON_START"
        final = _verify(log)
        assert final.returncode == 0, final.stdout
        print(f"\nbreak 1 (2 MiB tmpfs, {filled} filler bytes): tries {before} -> {after}, "
              f"VerifyPin answered AUDIT_UNAVAILABLE, failed writes cut back: {failures}, "
              f"verify: {checked.stdout.strip()}; "
              f"after restart: {final.stdout.strip()}")


def test_break1_a_torn_tail_is_cut_back_and_recorded_on_restart() -> None:
    root = make_root()
    daemon = start_daemon(root)
    try:
        _tries(daemon)
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    torn = b'{"operation":"VerifyPin","outcome":"STAR'
    whole = daemon.audit_path.read_bytes()
    with daemon.audit_path.open("ab") as file:
        file.write(torn)
    daemon = start_daemon(root)
    try:
        _tries(daemon)
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    data = daemon.audit_path.read_bytes()
    assert data.startswith(whole)
    assert torn not in data
    repaired = [r for r in _records(daemon.audit_path) if r["operation"] == "AUDIT_REPAIRED"]
    assert len(repaired) == 1
    assert repaired[0]["removed_bytes"] == len(torn)
    assert repaired[0]["removed_sha256"] == hashlib.sha256(torn).hexdigest()
    checked = _verify(daemon.audit_path)
    assert checked.returncode == 0, checked.stdout


def test_break1_a_cut_off_tail_is_caught_by_the_head_file() -> None:
    root = make_root()
    daemon = start_daemon(root)
    try:
        _tries(daemon)
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    assert _verify(daemon.audit_path).returncode == 0
    lines = daemon.audit_path.read_bytes().splitlines(keepends=True)
    daemon.audit_path.write_bytes(b"".join(lines[:-2]))
    checked = _verify(daemon.audit_path)
    assert checked.returncode == 1
    assert "HEAD_MISMATCH" in checked.stdout
    code, stderr = _start_refused(root, daemon.audit_path)
    assert code == 1
    assert "cut off" in stderr


# --- break 2: request fields are bounded before they reach the log ------------------------


def _code(call: grpc.UnaryUnaryMultiCallable, request: object) -> grpc.StatusCode:  # type: ignore[type-arg]
    try:
        call(request, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_break2_a_1mb_field_flood_does_not_grow_the_log() -> None:
    root = make_root()
    daemon = start_daemon(root)
    try:
        channel = daemon.channel()
        sessions = sessions_pb2_grpc.SessionServiceStub(channel)
        card_service = cards_pb2_grpc.CardServiceStub(channel)
        huge = "A" * 1_000_000
        size_before = daemon.audit_path.stat().st_size
        daemon_log_before = daemon.stderr_path.stat().st_size
        started = time.monotonic()
        codes = [_code(sessions.CloseSession, sessions_pb2.CloseSessionRequest(session_id=huge))
                 for _ in range(245)]
        codes += [_code(sessions.RefreshSession,
                        sessions_pb2.RefreshSessionRequest(session_id=huge, challenge=b"x" * 32))
                  for _ in range(10)]
        codes += [_code(sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=huge))]
        codes += [_code(card_service.GetCard, cards_pb2.GetCardRequest(reader=huge))
                  for _ in range(10)]
        codes += [_code(card_service.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=huge, reference=cards_pb2.PIN_REFERENCE_PIN, pin=WRONG_PIN))
            for _ in range(10)]
        elapsed = time.monotonic() - started
        growth = daemon.audit_path.stat().st_size - size_before
        daemon_log_growth = daemon.stderr_path.stat().st_size - daemon_log_before
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}
    assert growth < len(codes) * 1024  # a bounded record per call, not a megabyte
    assert daemon_log_growth < len(codes) * 2048  # the daemon's own log too
    longest = max(len(line) for line in daemon.audit_path.read_bytes().splitlines())
    assert longest < 2048
    assert _verify(daemon.audit_path).returncode == 0
    print(f"\nbreak 2: {len(codes)} calls with a 1 MB field in {elapsed:.1f} s grew the log "
          f"by {growth} bytes ({growth / len(codes):.0f} per call); longest record {longest} B;"
          f" the daemon log grew by {daemon_log_growth} bytes")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _big_log(path: Path, records: int, field_bytes: int) -> None:
    """A valid chain as the old daemon wrote it during a flood: 1 MB session ids."""
    prev = GENESIS
    with path.open("wb") as file:
        for seq in range(1, records + 1):
            body = {"operation": "CloseSession", "outcome": "OK", "uid": 0,
                    "session_id": "A" * field_bytes, "time": "2026-11-25T09:00:00.000000+00:00",
                    "seq": seq, "prev": prev}
            prev = record_hash(prev, body)
            file.write(canonical_json({**body, "hash": prev}).encode("ascii") + b"\n")
    path.chmod(0o600)


def test_break2_startup_memory_stays_flat_on_a_big_log() -> None:
    peaks: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for label, records in (("small", 2), ("big", 160)):
        root = make_root()
        log = root / "audit.jsonl"
        _big_log(log, records, MIB)
        sizes[label] = log.stat().st_size
        daemon = start_daemon(root)
        try:
            peaks[label] = _peak_rss_kib(daemon.process.pid)
        finally:
            assert daemon.terminate() == 0
            daemon.close()
        assert _verify(log).returncode == 0  # rotated at the first record, chain intact
    growth = peaks["big"] - peaks["small"]
    print(f"\nbreak 2: start-up peak RSS {peaks['small']} KiB on a {sizes['small']} B log, "
          f"{peaks['big']} KiB on a {sizes['big']} B log (+{growth} KiB)")
    assert growth < 48 * 1024  # streamed: far below the log's 160 MiB


# --- break 5: the audit log path is not trusted blindly ------------------------------------


def _nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def test_break5_a_planted_dangling_symlink_is_refused() -> None:
    root = make_root()
    private = root / "root-only"
    private.mkdir(mode=0o700)
    logs = root / "logs"
    logs.mkdir(mode=0o755)
    log = logs / "audit.jsonl"
    target = private / "created-by-pkcardd"
    log.symlink_to(target)
    os.lchown(log, _nobody().pw_uid, _nobody().pw_gid)
    code, stderr = _start_refused(root, log)
    assert code == 1
    assert f"refusing to use {log}: it is a symbolic link" in stderr
    assert not target.exists()


@pytest.mark.parametrize(("owner", "why"), [
    ("nobody", r"owned by uid \d+, not by uid 0"),
    ("root", "writable by group or others"),
])
def test_break5_a_foreign_or_world_writable_log_is_refused(owner: str, why: str) -> None:
    root = make_root()
    log = root / "audit.jsonl"
    log.write_bytes(b"")
    user = pwd.getpwnam(owner)
    os.chown(log, user.pw_uid, user.pw_gid)
    log.chmod(0o666)
    code, stderr = _start_refused(root, log)
    assert code == 1
    assert re.search(f"refusing to use {re.escape(str(log))}: it is {why}", stderr), stderr
    assert log.read_bytes() == b""  # nothing appended


def test_break5_a_planted_head_file_is_refused() -> None:
    root = make_root()
    log = root / "audit.jsonl"
    head = root / "audit.jsonl.head"
    head.symlink_to(root / "elsewhere")
    code, stderr = _start_refused(root, log)
    assert code == 1
    assert f"refusing to use {head}: it is a symbolic link" in stderr


# --- break 10: backend files are private ---------------------------------------------------


def _backend(db: Path) -> subprocess.Popen[str]:
    ca = TEST_CA_DIR
    command = [sys.executable, "-c",
               "from pkcard.backend.main import main; raise SystemExit(main())", "--db", str(db),
               "--listen", "127.0.0.1:0", "--environment", "test",
               "--pk-anchor", str(ca / "test-pk" / "ca-cert.pem"),
               "--kzz-anchor", str(ca / "test-kzz" / "ca-cert.pem"),
               "--dev-metadata-identity"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def test_break10_backend_database_files_are_0600(tmp_path: Path) -> None:
    work = tmp_path / "db"
    work.mkdir(mode=0o755)
    db = work / "backend.sqlite"
    old_umask = os.umask(0o022)
    try:
        process = _backend(db)
    finally:
        os.umask(old_umask)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "listening" in line:
                break
        else:
            pytest.fail(f"pkcard-backend exited with {process.wait()}")
        modes = {path.name: stat.S_IMODE(path.stat().st_mode)
                 for path in work.iterdir() if path.name.startswith("backend.sqlite")}
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=BOUND_S)
    assert set(modes) >= {"backend.sqlite", "backend.sqlite-wal", "backend.sqlite-shm"}
    assert set(modes.values()) == {0o600}, modes


def test_break10_backend_refuses_a_symlinked_or_foreign_database(tmp_path: Path) -> None:
    link = tmp_path / "link.sqlite"
    link.symlink_to(tmp_path / "elsewhere.sqlite")
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"")
    os.chown(foreign, _nobody().pw_uid, _nobody().pw_gid)
    for db, why in ((link, "it is a symbolic link"), (foreign, "it is owned by uid")):
        process = _backend(db)
        _, stderr = process.communicate(timeout=BOUND_S)
        assert process.returncode == 2
        assert f"refusing to use {db}: {why}" in stderr
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_break10_embedded_backend_state_is_0600() -> None:
    root = make_root()
    daemon = start_daemon(root, "--state-dir", str(root / "state"))
    try:
        _tries(daemon)
        files = [p for p in (root / "state").iterdir() if p.name.startswith("backend.sqlite")]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    assert modes
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(daemon.audit_path.stat().st_mode) == 0o600


def test_break1_wrong_pin_is_audited_before_and_after() -> None:
    root = make_root()
    daemon = start_daemon(root)
    try:
        with daemon.client(timeout=10.0) as client, pytest.raises(WrongPin):
            client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
    finally:
        assert daemon.terminate() == 0
        daemon.close()
    records = _records(daemon.audit_path)
    verify = [r for r in records if r["operation"] == "VerifyPin"]
    assert [r["outcome"] for r in verify] == ["STARTED", "WRONG_PIN"]
    assert verify[1]["intent_seq"] == verify[0]["seq"]
    assert WRONG_PIN not in daemon.audit_path.read_text()
