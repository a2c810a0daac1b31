"""pkcardd and pkcard-backend stop on SIGTERM whichever thread the kernel hands it to.

The kernel may deliver a process-directed SIGTERM to any thread, gRPC's C
threads included. These tests send it to a thread other than the main one on
purpose (tgkill), so the outcome does not depend on the kernel's choice.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import serving

from pkcard.simcard.profile import TEST_CA_DIR

_SYS_TGKILL = 234  # x86_64
_libc = ctypes.CDLL(None, use_errno=True)


def _signal_a_side_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to a thread of ``pid`` that is not its main thread."""
    threads = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert threads, "the process has no side thread"
    if _libc.syscall(_SYS_TGKILL, pid, threads[-1], signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.fixture(autouse=True)
def _x86_64_only() -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("tgkill's syscall number is x86_64's")


def test_stop_signals_wakes_the_main_thread(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import signal, threading
        from pkcard.stop_signals import StopSignals
        with StopSignals() as stop:
            side = threading.Thread(
                target=lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM))
            side.start()
            side.join()
            print(stop.wait())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{int(signal.SIGTERM)}\n"


def test_pkcardd_stops_on_sigterm_to_a_grpc_thread(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    sock = tmp_path / "run" / "pkcardd.sock"
    log = tmp_path / "pkcardd.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pkcard.daemon.main", "--simulated", "--socket", str(sock)],
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        serving.wait_serving(process, sock, log.read_text, process.kill)
        _signal_a_side_thread(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_pkcard_backend_stops_on_sigterm_to_a_grpc_thread(tmp_path: Path) -> None:
    log = tmp_path / "backend.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pkcard.backend.main import main; "
             "sys.exit(main(sys.argv[1:]))", "--db", str(tmp_path / "b.sqlite"),
             "--listen", "127.0.0.1:0", "--environment", "test",
             "--pk-anchor", str(TEST_CA_DIR / "test-pk" / "ca-cert.pem"),
             "--kzz-anchor", str(TEST_CA_DIR / "test-kzz" / "ca-cert.pem"),
             "--dev-metadata-identity"],
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        give_up = time.monotonic() + serving.STARTUP_LIMIT
        while not re.search(r"listening on port \d+", log.read_text()):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < give_up, log.read_text()
            time.sleep(0.05)
        _signal_a_side_thread(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
