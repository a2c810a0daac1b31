"""Faults on the real PC/SC path (pcscd + vpcd), in the spirit of pcsc-lite's UnitaryTests.

Other processes hold the reader exclusively, reset the card between our
commands, die inside a transaction; a forked child inherits our handles; the
card goes silent, slow or is pulled; a reader vanishes; pcscd restarts under
load. Every outcome is a typed pkcard error or success, bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from daemon_harness import RunningDaemon, make_root, wait_serving
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pkcard.errors import (
    CallTimeout,
    CardRemoved,
    CardReset,
    DaemonInternalError,
    NoService,
    PkcardError,
    ReaderBusy,
    ReaderNotFound,
)
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef, PinState
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.faults import Fault, FaultPlan, FaultRule, FaultyCard
from pkcard.simcard.pcscd_harness import DEFAULT_READERS, PcscdHarness
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

# A call blocked inside libpcsclite cannot be interrupted by a signal: the thread method
# ends the run with every stack dumped instead of hanging CI.
pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(120, method="thread")]

BOUND_S = 20.0  # every wait in this module gives up after this long

# A second PC/SC client process: connects, optionally takes the card, says "ready", waits.
HOLDER = """
import sys, time
from smartcard import scard
reader, mode = sys.argv[1], sys.argv[2]
P = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
share = scard.SCARD_SHARE_EXCLUSIVE if mode == "exclusive" else scard.SCARD_SHARE_SHARED
rc, card, _ = scard.SCardConnect(ctx, reader, share, P)
assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
if mode == "reset":
    rc, _ = scard.SCardReconnect(card, scard.SCARD_SHARE_SHARED, P, scard.SCARD_RESET_CARD)
    assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    print("done", flush=True)
    sys.exit(0)
if mode == "transaction":
    rc = scard.SCardBeginTransaction(card)
    assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
print("ready", flush=True)
sys.stdin.read()
"""


def other_client(reader: str, mode: str) -> subprocess.Popen[str]:
    """Start the second client; return once it holds what ``mode`` says."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, reader, mode], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line in ("ready", "done"), f"second client failed: {line!r}"
    return child


def stop_client(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(BOUND_S)


def card(profile: str) -> SimulatedCard:
    return SimulatedCard.from_profile(load_profile(profile))


@pytest.fixture
def pcsc_daemon(pcscd_env: PcscdHarness) -> Iterator[RunningDaemon]:
    """A real ``pkcardd --pcsc`` on the test pcscd."""
    root = make_root()
    log = root / "pkcardd.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "pkcard.daemon.main", "--pcsc",
             "--socket-dir", str(root / "run"), "--audit-log", str(root / "audit.jsonl"),
             "--log-level", "DEBUG"],
            stderr=stderr, stdout=subprocess.DEVNULL)
    daemon = RunningDaemon(root, process, log, root / "audit.jsonl", root / "run" / "pkcardd.sock")
    wait_serving(daemon)
    yield daemon
    daemon.close()


def until(condition: object, what: str) -> None:
    """Poll ``condition()`` until true; fail after BOUND_S."""
    give_up = time.monotonic() + BOUND_S
    while time.monotonic() < give_up:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"not within {BOUND_S} s: {what}")


# --- other processes ------------------------------------------------------------


def test_exclusive_holder_in_another_process(pcscd_env: PcscdHarness,
                                             pcsc_daemon: RunningDaemon) -> None:
    pcscd_env.insert(0, card("kzz"))
    name = pcscd_env.reader_name(0)
    holder = other_client(name, "exclusive")
    try:
        with PcscReaderSystem() as system, pytest.raises(ReaderBusy):
            system.connect(name)
        with pcsc_daemon.client(timeout=BOUND_S) as client, pytest.raises(ReaderBusy):
            client.get_card(name)  # typed, and well before the call's deadline
    finally:
        stop_client(holder)
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        assert client.get_card(name).reader == name


def test_reset_by_another_process_drops_the_verified_state(pcscd_env: PcscdHarness) -> None:
    pk = card("pk-regular")
    pcscd_env.insert(0, pk)
    name = pcscd_env.reader_name(0)
    with PcscReaderSystem() as system, system.connect(name) as connection:
        app = ProfessionalCard.over(connection)
        app.verify(PinRef.PIN, Secret(pk.profile.secret_value(SecretRef.PIN)))
        assert pk.is_verified(SecretRef.PIN)
        stop_client(other_client(name, "reset"))
        with pytest.raises(CardReset):
            app.pin_status(PinRef.PIN)
        assert app.verified == frozenset()
        assert not pk.is_verified(SecretRef.PIN)
        assert app.pin_status(PinRef.PIN).state is PinState.VERIFIABLE


def test_transaction_of_a_killed_client_is_released(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(0, card("kzz"))
    name = pcscd_env.reader_name(0)
    system = PcscReaderSystem()
    connection = system.connect(name)  # before the other client locks the card
    holder = other_client(name, "transaction")
    outcome: list[object] = []

    def take() -> None:
        try:
            with connection.transaction():
                outcome.append(connection.transmit(bytes.fromhex("00A4040C00")))
        except PkcardError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=take, name="transaction-waiter", daemon=True)
    waiter.start()
    os.kill(holder.pid, signal.SIGKILL)  # dies holding the transaction
    holder.wait(BOUND_S)
    waiter.join(BOUND_S)
    # A waiter still blocked in SCardBeginTransaction would block close() too: leave it.
    assert not waiter.is_alive(), "the dead client's transaction was never released"
    connection.close()
    system.close()
    # pcscd cleans up after the dead client by resetting the card (its PIN states must not
    # outlive it): we see CardReset, typed, and the next transaction works.
    assert len(outcome) == 1
    assert isinstance(outcome[0], bytes | CardReset), outcome
    with PcscReaderSystem() as again, again.connect(name) as fresh, fresh.transaction():
        assert fresh.transmit(bytes.fromhex("00A4040C00"))[-2:]


def test_forked_child_inherits_handles(pcscd_env: PcscdHarness) -> None:
    """A child using inherited handles gets an answer or a pkcard error; the parent is unharmed."""
    pcscd_env.insert(0, card("kzz"))
    name = pcscd_env.reader_name(0)
    with PcscReaderSystem() as system, system.connect(name) as connection:
        assert connection.transmit(bytes.fromhex("00A4040C00"))[-2:]
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 answered, 1 pkcard error, 2 anything else
            code = 2
            try:
                connection.transmit(bytes.fromhex("00A4040C00"))
                code = 0
            except PkcardError:
                code = 1
            finally:
                os._exit(code)
        give_up = time.monotonic() + BOUND_S
        status = 0
        while time.monotonic() < give_up:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on an inherited handle")
        assert os.waitstatus_to_exitcode(status) in (0, 1)
        assert connection.transmit(bytes.fromhex("00A4040C00"))[-2:]


# --- the card -------------------------------------------------------------------


def test_silent_card_the_daemon_deadline_holds(pcscd_env: PcscdHarness,
                                               pcsc_daemon: RunningDaemon) -> None:
    """pcscd and vpcd never time out a card that does not answer: the daemon's deadline must."""
    plan = FaultPlan([FaultRule(Fault.SILENT, ins=0xB0)])
    pcscd_env.insert(0, FaultyCard(card("kzz"), plan))
    pcscd_env.insert(2, card("kzz"))
    silent, other = pcscd_env.reader_name(0), pcscd_env.reader_name(2)
    try:
        with pcsc_daemon.client(timeout=2.0) as client, pytest.raises(CallTimeout):
            client.get_card(silent)
        with pcsc_daemon.client(timeout=BOUND_S) as client:
            assert client.get_card(other).reader == other  # other readers are served meanwhile
            assert client.list_readers()
    finally:
        plan.release()
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        assert client.get_card(silent).reader == silent  # the reader recovers


def test_slow_card_within_the_deadline(pcscd_env: PcscdHarness,
                                       pcsc_daemon: RunningDaemon) -> None:
    plan = FaultPlan([FaultRule(Fault.SLOW, ins=0xB0, count=0, delay_s=0.2)])
    pcscd_env.insert(0, FaultyCard(card("kzz"), plan))
    name = pcscd_env.reader_name(0)
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        assert client.get_card(name).reader == name
    assert Fault.SLOW in plan.fired


@pytest.mark.parametrize("fault", [Fault.TRUNCATED, Fault.GARBAGE, Fault.ENDLESS_61,
                                   Fault.WRONG_LE_LOOP, Fault.OVERLONG])
def test_broken_answers_through_pcscd_are_typed(pcscd_env: PcscdHarness,
                                                pcsc_daemon: RunningDaemon,
                                                fault: Fault) -> None:
    plan = FaultPlan([FaultRule(fault, ins=0xB0)], seed=7)
    pcscd_env.insert(0, FaultyCard(card("kzz"), plan))
    name = pcscd_env.reader_name(0)
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        failure: PkcardError | None = None
        try:
            client.get_card(name)
        except PkcardError as exc:
            failure = exc
        assert not isinstance(failure, DaemonInternalError), failure
        assert client.get_card(name).reader == name  # the next call is served normally
    assert fault in plan.fired


def test_card_pulled_mid_pin_change_through_the_daemon(pcscd_env: PcscdHarness,
                                                       pcsc_daemon: RunningDaemon) -> None:
    pk = card("pk-regular")
    pcscd_env.insert(0, pk)
    name = pcscd_env.reader_name(0)
    tries = pk.tries_left(SecretRef.PIN)
    plan = FaultPlan()
    faulty = FaultyCard(pk, plan)
    pcscd_env.remove(0)
    pcscd_env.insert(0, faulty)
    pcscd_env.pull_on_next_apdu(0)
    with pcsc_daemon.client(timeout=BOUND_S) as client, pytest.raises(CardRemoved):
        client.change_pin(name, PinRef.PIN, pk.profile.secret_value(SecretRef.PIN), "9021")
    assert pk.tries_left(SecretRef.PIN) == tries  # nothing was presented
    pcscd_env.wait_for_card(0, present=False)


# --- the reader and the service ---------------------------------------------------


def test_reader_that_vanishes(pcscd_env: PcscdHarness, pcsc_daemon: RunningDaemon) -> None:
    pcscd_env.insert(2, card("kzz"))
    name = pcscd_env.reader_name(2)  # "Virtual PCD 00 00"
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        assert client.get_card(name).reader == name
        pcscd_env.restart_pcscd(DEFAULT_READERS[:2], reinsert=False)

        def typed_not_found() -> bool:
            try:
                client.get_card(name)
            except (ReaderNotFound, NoService):
                return True
            return False

        until(typed_not_found, "a call on the vanished reader is ReaderNotFound")
        with pytest.raises(ReaderNotFound):
            client.get_card(name)


def test_pcscd_restarted_under_load(pcscd_env: PcscdHarness, pcsc_daemon: RunningDaemon) -> None:
    pcscd_env.insert(0, card("kzz"))
    pcscd_env.insert(2, card("pk-regular"))
    names = [pcscd_env.reader_name(0), pcscd_env.reader_name(2)]
    stop = threading.Event()
    untyped: list[BaseException] = []
    results: list[str] = []

    def hammer(index: int) -> None:
        with pcsc_daemon.client(timeout=5.0) as client:
            while not stop.is_set():
                try:
                    client.get_card(names[index % 2])
                    results.append("ok")
                except DaemonInternalError as exc:
                    untyped.append(exc)
                except PkcardError as exc:
                    results.append(type(exc).__name__)
                except BaseException as exc:
                    untyped.append(exc)
                    return

    threads = [threading.Thread(target=hammer, args=(i,), name=f"hammer-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        until(lambda: results.count("ok") >= 4, "calls succeed before the restart")
        pcscd_env.restart_pcscd(reinsert=True)
        seen = len(results)
        until(lambda: results[seen:].count("ok") >= 4, "calls succeed again after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND_S)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert untyped == []


def test_health_is_not_serving_while_pcscd_is_gone(pcscd_env: PcscdHarness,
                                                    pcsc_daemon: RunningDaemon) -> None:
    health = health_pb2_grpc.HealthStub(pcsc_daemon.channel())

    def status(service: str = "") -> int:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=BOUND_S)
        return int(reply.status)

    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, \
        health_pb2.HealthCheckResponse.NOT_SERVING
    assert status() == serving
    pcscd_env.stop()
    until(lambda: status() == not_serving, "health NOT_SERVING once pcscd is gone")
    assert status("pkcard.v1.CardService") == not_serving
    pcscd_env.start()
    until(lambda: status() == serving, "health SERVING again once pcscd is back")
    assert status("pkcard.v1.CardService") == serving
    with pcsc_daemon.client(timeout=BOUND_S) as client:
        assert len(client.list_readers()) == len(pcscd_env.reader_names)
