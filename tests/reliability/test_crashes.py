"""Processes killed with SIGKILL: the daemon during calls, the backend during redemptions.

The daemon's audit chain must verify after the kill (``pkcard-audit verify``)
and the daemon must start again on the same directory; the backend's SQLite
must pass ``PRAGMA integrity_check`` and keep every redemption it reported
as committed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import PK_READER, make_root, start_daemon

from pkcard.errors import PkcardError
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 30.0


@pytest.fixture
def root() -> Iterator[Path]:
    path = make_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def audit_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pkcard.daemon.audit_cli", "verify", str(path)],
                          capture_output=True, text=True, timeout=BOUND_S, check=False)


def test_daemon_killed_during_calls_keeps_its_audit_chain(root: Path) -> None:
    pin = load_profile("pk-regular").secret_value(SecretRef.PIN)
    daemon = start_daemon(root)
    stop = threading.Event()
    outcomes: list[str] = []

    def caller() -> None:
        with daemon.client(timeout=5) as client:
            while not stop.is_set():
                try:
                    client.verify_pin(PK_READER, PinRef.PIN, pin)
                    outcomes.append("ok")
                except PkcardError as exc:
                    outcomes.append(type(exc).__name__)
                    if daemon.process.poll() is not None:
                        return
                except BaseException as exc:  # an untyped error is the finding
                    outcomes.append(f"untyped {type(exc).__name__}")
                    return

    threads = [threading.Thread(target=caller, name=f"caller-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        while outcomes.count("ok") < 20 and daemon.process.poll() is None:
            stop.wait(0.01)
        os.kill(daemon.process.pid, signal.SIGKILL)  # in the middle of calls
        daemon.process.wait(BOUND_S)
    finally:
        for thread in threads:
            thread.join(BOUND_S)
        stop.set()
        for thread in threads:
            thread.join(BOUND_S)
    assert not any(t.is_alive() for t in threads)
    assert not [o for o in outcomes if o.startswith("untyped")]
    assert "DaemonUnavailable" in outcomes  # what the callers saw once it died
    checked = audit_verify(daemon.audit_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the daemon starts again on the same socket directory and appends to the same chain
    again = start_daemon(root)
    try:
        with again.client(timeout=10) as client:
            assert client.get_pin_status(PK_READER)
    finally:
        again.close()
    checked = audit_verify(again.audit_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    logs = again.audit_path.read_text() + daemon.stderr() + again.stderr()
    assert pin not in logs


REDEEMER = """
import hashlib, sys
from cryptography.hazmat.primitives.serialization import Encoding
from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from fuzz.targets import CLIENT, HOLDER, NOW, SERIAL, token_rig
from pkcard.secret import Secret
from pkcard.token import CardRole, Environment
from pkcard.verify import TrustAnchors

rig = token_rig()
registry = Registry(sys.argv[1], scrypt_n=2**8)
registry.add_holder(HOLDER, "Dr Fuzz", NOW)
registry.add_card(SERIAL, HOLDER, CardRole.REGULAR, NOW,
                  auth_cert_sha256=hashlib.sha256(rig.card.cert.public_bytes(Encoding.DER)).digest(),
                  reactivation_password=Secret("Reakt-7391!x"))
registry.grant(HOLDER, "I002", NOW)
anchors = TrustAnchors(Environment.TEST, (rig.pki.pk_ca.cert,), (rig.pki.kzz_ca.cert,))
backend = SessionBackend(registry, anchors, lambda: NOW, environment=Environment.TEST,
                         restricted_authorizations={"I002"})
while True:
    challenge = backend.issue_challenge(CLIENT)
    backend.redeem(rig.valid(challenge.nonce), CLIENT)
    print(challenge.nonce.hex(), flush=True)  # committed
"""


def test_backend_killed_mid_redemption_loses_no_committed_redemption(root: Path) -> None:
    database = root / "backend.sqlite"
    child = subprocess.Popen([sys.executable, "-c", REDEEMER, str(database)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    committed: list[str] = []
    try:
        for line in child.stdout:
            committed.append(line.strip())
            if len(committed) >= 40:
                break
        child.send_signal(signal.SIGKILL)  # it is already in its next redemption
        child.wait(BOUND_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(BOUND_S)
    assert len(committed) >= 40, child.stderr.read() if child.stderr else ""
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        used = {row[0].hex() for row in
                conn.execute("SELECT nonce FROM challenges WHERE used IS NOT NULL")}
    assert set(committed) <= used
