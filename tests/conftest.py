"""Shared fixtures for the real pcscd + vpcd path.

There is one pcscd per machine and several test runs at once. A run that
collected any ``@pytest.mark.pcsc`` test takes an exclusive flock on
/tmp/pkcard-pcscd.lock right after collection (so the wait is not counted
against a test's timeout; other runs wait for it), and only then kills any
stray pcscd and runs its own for the whole session.

Use ``pcscd_env`` in tests marked ``@pytest.mark.pcsc``. After each test every
card is pulled and pcscd is back on the default readers. A test must never
start another lock holder (``pkcard-sim run``, the benchmark) as a
subprocess: it would wait for this run's lock forever.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

# The suite starts its subprocesses by fork + exec while gRPC channels and servers are live
# in this process. gRPC's fork handlers exist for a child that keeps using gRPC; for fork +
# exec its documentation says to turn them off, and a prefork handler waiting for gRPC's
# threads was seen to hang a long run. Read when grpc is first imported, so set it first.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import pytest
from hypothesis import HealthCheck, settings
from pgserver import pg_database, pg_server  # noqa: F401 - the PostgreSQL fixtures

from pkcard.simcard.pcscd_harness import (
    DEFAULT_READERS,
    HarnessError,
    PcscdHarness,
    PcscdLock,
    missing_components,
)

_LOCK = pytest.StashKey[PcscdLock]()

# One hypothesis profile for the whole suite (HYPOTHESIS_PROFILE picks one):
# - "ci", the default when $CI is set: derandomized (every run tries the same examples, so a
#   failure replays by running the test again) and no example database in the checkout;
# - "default" on a developer machine: random, and a failure prints its seed and a
#   @reproduce_failure blob (replay with pytest --hypothesis-seed=N);
# - "slow" for the long runs (HYPOTHESIS_PROFILE=slow .venv/bin/pytest ...).
_COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("default", _COMMON, max_examples=200, derandomize=False)
settings.register_profile("ci", _COMMON, max_examples=200, derandomize=True, database=None)
settings.register_profile("slow", _COMMON, max_examples=5000, derandomize=False)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)


def _unavailable(reason: str) -> None:
    """Skip loudly on a developer machine; fail in CI, where the path must run."""
    message = f"real pcscd path unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take the pcscd lock before the first test when any collected test needs pcscd."""
    if missing_components() or not any(i.get_closest_marker("pcsc") for i in session.items):
        return
    lock = PcscdLock()
    if not lock.acquire(blocking=False):
        sys.stderr.write("\nwaiting for /tmp/pkcard-pcscd.lock (another run uses pcscd) ...\n")
        lock.acquire()
    session.config.stash[_LOCK] = lock


def pytest_unconfigure(config: pytest.Config) -> None:
    lock = config.stash.get(_LOCK, None)
    if lock is not None:
        lock.release()


@pytest.fixture(scope="session")
def _pcscd_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PcscdHarness]:
    missing = missing_components()
    if missing:
        _unavailable("missing " + ", ".join(missing))
    lock = request.config.stash.get(_LOCK, None)
    own_lock = lock is None
    if lock is None:  # a test using the fixture without the pcsc marker
        lock = PcscdLock()
        lock.acquire()
    harness = PcscdHarness(tmp_path_factory.mktemp("pcscd"), lock)
    try:
        try:
            harness.start()
        except HarnessError as exc:
            harness.stop()
            _unavailable(str(exc))
        yield harness
    finally:
        harness.stop()
        if own_lock:
            lock.release()


@pytest.fixture
def pcscd_env(_pcscd_session: PcscdHarness) -> Iterator[PcscdHarness]:
    """A running pcscd with the default vpcd readers and empty slots.

    ``reader_name(slot)``, ``slots``, ``insert(slot, card)``, ``remove(slot)``,
    ``pull_on_next_apdu(slot)`` and ``restart_pcscd(readers=None)``: see
    :class:`pkcard.simcard.pcscd_harness.PcscdHarness`. Slots 0, 1, 2 are in the
    readers "Gemalto PC Twin Reader" (CT30), "Gemalto GemPC Pinpad" (CT700)
    and "Virtual PCD" (generic); slots 3, 4, 5 are the same readers' second slots.
    """
    harness = _pcscd_session
    yield harness
    harness.remove_all(wait=True)
    if harness.readers != DEFAULT_READERS or not harness.running:
        harness.restart_pcscd(DEFAULT_READERS, reinsert=False)


@pytest.fixture(autouse=True)
def _entry_points_keep_the_test_process_dumpable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that calls an entry point's ``main()`` in this process must not take away
    the process's core-dump limit and dumpable flag for every later test:
    ``forbid_core_dumps`` lowers the hard limit, which the children of this process
    (tests/reliability/test_core_dumps.py raises theirs) could then never raise again.
    That test runs the entry points in child processes, where the guard is real."""
    import pkcard.backend.main as backend_main  # noqa: PLC0415
    import pkcard.daemon.main as daemon_main  # noqa: PLC0415
    import pkcard.tools.pkpin.cli as pkpin_cli  # noqa: PLC0415

    for module in (backend_main, daemon_main, pkpin_cli):
        monkeypatch.setattr(module, "forbid_core_dumps", lambda: None)
