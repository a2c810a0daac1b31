"""End to end over the real path: vpcd cards in a real pcscd, a real ``pkcardd --pcsc``
process, the real client on the real Unix socket.

One daemon serves the whole module; every test starts with a fresh pk-regular in
slot 0 ("Gemalto PC Twin Reader", no PIN pad) and a fresh kzz in slot 2 ("Virtual
PCD"). Tests that stop or refuse a daemon start their own.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_harness import RunningDaemon, make_root, start_daemon

from pkcard.client import PkcardClient, ReaderSnapshot, WatchItem
from pkcard.daemon.audit import verify_bytes
from pkcard.daemon.embedded_backend import EmbeddedBackend
from pkcard.errors import (
    AccessDenied,
    CardRemoved,
    DaemonUnavailable,
    HostPinEntryRefused,
    LastTryNotConfirmed,
    PinBlocked,
    PkcardError,
    WrongPin,
)
from pkcard.pin import PinRef, PinState
from pkcard.readers import CardKind, ReaderEvent, ReaderEventKind, ReaderModel
from pkcard.secret import Secret
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

pytestmark = pytest.mark.pcsc

PK_SLOT = 0  # "Gemalto PC Twin Reader" (CT30): no PIN pad, the PIN comes from the client
PINPAD_SLOT = 1  # "Gemalto GemPC Pinpad" (CT700)
KZZ_SLOT = 2  # "Virtual PCD" (generic)
PK = load_profile("pk-regular")
PIN = PK.secret_value(SecretRef.PIN)
PUK = PK.secret_value(SecretRef.PUK)
WRONG_PIN = "40404040" if PIN != "40404040" else "50505050"
NEW_PIN = "58130947"
EVENT_LIMIT = 20.0  # how long a watcher waits for its events before the test fails
# Many tests spend wrong PINs on the same card serial: lift the per-card rate limit
# so that it does not turn a WrongPin into RATE_LIMITED (tested elsewhere).
CONFIG = "allow_host_pin_entry = false\n[limits]\nfailed_pin_limit = 1000\n"
DENY_ALL = "[access]\nusers = []\ngroups = []\n"


def _start(root: Path, config: str) -> RunningDaemon:
    path = root / "pkcardd.toml"
    path.write_text(config)
    return start_daemon(root, "--config", str(path), readers="--pcsc")


@pytest.fixture(scope="module")
def pcsc_daemon(_pcscd_session: PcscdHarness) -> Iterator[RunningDaemon]:
    """One ``pkcardd --pcsc`` for the module (after pcscd is up), linked to a reference
    backend: signature activation needs the on-line system (issue 15)."""
    root = make_root()
    backend = EmbeddedBackend(root / "backend", root / "backend-link.sock", root / "backend.sock")
    backend.start()
    daemon = _start(root, f'backend = "{backend.address}"\n' + CONFIG)
    yield daemon
    daemon.close()
    backend.stop(0)
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Env:
    harness: PcscdHarness
    daemon: RunningDaemon
    pk_reader: str
    kzz_reader: str


@pytest.fixture
def env(pcscd_env: PcscdHarness, pcsc_daemon: RunningDaemon) -> Env:
    """Fresh pk-regular and kzz cards in slots 0 and 2."""
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    pcscd_env.insert(KZZ_SLOT, load_card("kzz"))
    return Env(pcscd_env, pcsc_daemon, pcscd_env.reader_name(PK_SLOT),
               pcscd_env.reader_name(KZZ_SLOT))


@pytest.fixture
def client(env: Env) -> Iterator[PkcardClient]:
    with env.daemon.client(timeout=30.0) as c:
        yield c


def _replace_pk(env: Env, profile: str) -> None:
    env.harness.remove(PK_SLOT)
    env.harness.insert(PK_SLOT, load_card(profile))


def test_list_readers_reports_models_capabilities_and_card_kinds(
    env: Env, client: PkcardClient
) -> None:
    readers = {state.reader.name: state for state in client.list_readers()}
    assert set(env.harness.reader_names) <= set(readers)
    twin = readers[env.pk_reader]
    assert twin.reader.model is ReaderModel.IDBRIDGE_CT30
    assert twin.reader.capabilities.pin_pad is False
    assert twin.card_present
    assert twin.card_kind is CardKind.PK
    assert b"PKCARDPK" in twin.atr
    pinpad = readers[env.harness.reader_name(PINPAD_SLOT)]
    assert pinpad.reader.model is ReaderModel.IDBRIDGE_CT700
    assert pinpad.reader.capabilities.pin_pad is True
    assert not pinpad.card_present
    assert pinpad.card_kind is CardKind.NONE
    generic = readers[env.kzz_reader]
    assert generic.reader.model is ReaderModel.GENERIC
    assert generic.card_kind is CardKind.KZZ
    assert b"PKCARDKZ" in generic.atr


def _watch(client: PkcardClient, reader: str, out: queue.Queue[WatchItem],
           ready: threading.Event) -> None:
    """Collect a snapshot, then events up to ``reader``'s CARD_INSERTED."""
    for item in client.watch_events():
        out.put(item)
        if isinstance(item, ReaderSnapshot):
            ready.set()
        elif (isinstance(item, ReaderEvent) and item.reader == reader
              and item.kind is ReaderEventKind.CARD_INSERTED):
            return


def test_two_concurrent_watchers_see_removal_and_insertion(env: Env) -> None:
    outs: list[queue.Queue[WatchItem]] = [queue.Queue(), queue.Queue()]
    readies = [threading.Event(), threading.Event()]
    clients = [env.daemon.client(), env.daemon.client()]
    threads = [
        threading.Thread(target=_watch, args=(c, env.kzz_reader, out, ready), daemon=True)
        for c, out, ready in zip(clients, outs, readies, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        for ready in readies:
            assert ready.wait(EVENT_LIMIT), "no snapshot"
        env.harness.remove(KZZ_SLOT)
        env.harness.insert(KZZ_SLOT, load_card("kzz"))
        for thread in threads:
            thread.join(EVENT_LIMIT)
            assert not thread.is_alive(), "a watcher missed the insertion"
    finally:
        for c in clients:
            c.close()
    for out in outs:
        items = [out.get_nowait() for _ in range(out.qsize())]
        snapshot = items[0]
        assert isinstance(snapshot, ReaderSnapshot)
        present = {s.reader.name: s.card_kind for s in snapshot.readers if s.card_present}
        assert present == {env.pk_reader: CardKind.PK, env.kzz_reader: CardKind.KZZ}
        mine = [i for i in items[1:] if isinstance(i, ReaderEvent)
                and i.reader == env.kzz_reader]
        kinds = [e.kind for e in mine]
        assert kinds == [ReaderEventKind.CARD_REMOVED, ReaderEventKind.CARD_INSERTED]
        assert b"PKCARDKZ" in mine[-1].atr


def test_get_card_reads_pk_and_kzz(env: Env, client: PkcardClient) -> None:
    pk = client.get_card(env.pk_reader)
    assert pk.kind is CardKind.PK
    assert pk.pk is not None
    assert pk.kzz is None
    assert pk.backend == "apdu"
    assert pk.pk.card_serial == PK.card_info.serial
    assert pk.pk.auth_certificate.der
    kzz = client.get_card(env.kzz_reader)
    assert kzz.kind is CardKind.KZZ
    assert kzz.kzz is not None
    assert kzz.pk is None
    assert len(kzz.kzz.zzzs_number.value) == 9


def test_pin_status_spends_nothing(env: Env, client: PkcardClient) -> None:
    first = {s.ref: s for s in client.get_pin_status(env.pk_reader)}
    second = {s.ref: s for s in client.get_pin_status(env.pk_reader)}
    assert first == second
    assert first[PinRef.PIN].state is PinState.VERIFIABLE
    assert first[PinRef.PIN].tries_left == first[PinRef.PIN].max_tries == 3
    (puk,) = client.get_pin_status(env.pk_reader, PinRef.PUK)
    assert puk.ref is PinRef.PUK


def test_wrong_pin_then_right_pin(env: Env, client: PkcardClient) -> None:
    with pytest.raises(WrongPin) as wrong:
        client.verify_pin(env.pk_reader, PinRef.PIN, WRONG_PIN)
    assert wrong.value.tries_left == 2
    status = client.verify_pin(env.pk_reader, PinRef.PIN, Secret(PIN))
    assert status.state is PinState.VERIFIED
    assert status.tries_left == 3


def test_change_pin_then_verify_with_the_new_one(env: Env, client: PkcardClient) -> None:
    status = client.change_pin(env.pk_reader, PinRef.PIN, PIN, NEW_PIN)
    assert status.state is PinState.VERIFIED
    with pytest.raises(WrongPin):
        client.verify_pin(env.pk_reader, PinRef.PIN, PIN)
    assert client.verify_pin(env.pk_reader, PinRef.PIN, NEW_PIN).state is PinState.VERIFIED


def test_last_try_guard_then_block_then_unblock(env: Env, client: PkcardClient) -> None:
    for left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            client.verify_pin(env.pk_reader, PinRef.PIN, WRONG_PIN)
        assert wrong.value.tries_left == left
    with pytest.raises(LastTryNotConfirmed) as guard:
        client.verify_pin(env.pk_reader, PinRef.PIN, PIN)
    assert guard.value.tries_left == 1
    (status,) = client.get_pin_status(env.pk_reader, PinRef.PIN)
    assert status.tries_left == 1  # the guard sent nothing to the card
    with pytest.raises(PinBlocked):
        client.verify_pin(env.pk_reader, PinRef.PIN, WRONG_PIN, confirm_last_try=True)
    (status,) = client.get_pin_status(env.pk_reader, PinRef.PIN)
    assert status.state is PinState.BLOCKED
    unblocked = client.unblock_pin(env.pk_reader, PUK, NEW_PIN)
    assert unblocked.ref is PinRef.PIN
    assert unblocked.tries_left == 3
    assert client.verify_pin(env.pk_reader, PinRef.PIN, NEW_PIN).state is PinState.VERIFIED


def test_activate_signature_pin_on_a_transport_card(env: Env, client: PkcardClient) -> None:
    _replace_pk(env, "pk-transport")
    transport = load_profile("pk-transport")
    (spin,) = client.get_pin_status(env.pk_reader, PinRef.SPIN)
    assert spin.state is PinState.TRANSPORT
    status = client.activate_signature_pin(
        env.pk_reader, transport.secret_value(SecretRef.TPIN), "520739")
    assert status.ref is PinRef.SPIN
    assert status.state is not PinState.TRANSPORT
    (tpin,) = client.get_pin_status(env.pk_reader, PinRef.TPIN)
    assert tpin.state is PinState.DISABLED


def test_pin_pad_reader_refuses_a_pin_from_the_host(env: Env, client: PkcardClient) -> None:
    env.harness.insert(PINPAD_SLOT, load_card("pk-regular"))
    pinpad = env.harness.reader_name(PINPAD_SLOT)
    with pytest.raises(HostPinEntryRefused):
        client.verify_pin(pinpad, PinRef.PIN, PIN)
    (status,) = client.get_pin_status(pinpad, PinRef.PIN)
    assert status.tries_left == 3  # refused before the card saw anything


def test_card_pulled_during_an_operation_is_card_removed(
    env: Env, client: PkcardClient
) -> None:
    env.harness.pull_on_next_apdu(PK_SLOT)
    with pytest.raises(CardRemoved):
        client.get_card(env.pk_reader)
    # The daemon is unharmed: a fresh card in the same reader reads.
    _replace_pk(env, "pk-regular")
    assert client.get_card(env.pk_reader).kind is CardKind.PK


def test_caller_outside_the_allow_list_is_refused(env: Env) -> None:
    root = make_root()
    try:
        daemon = _start(root, DENY_ALL)
        try:
            with daemon.client(timeout=10.0) as c, pytest.raises(AccessDenied):
                c.get_card(env.pk_reader)
        finally:
            daemon.close()
        records = [json.loads(line) for line in daemon.audit_path.read_text().splitlines()]
        refused = [r for r in records if r["outcome"] == "PERMISSION_DENIED"]
        assert [r["operation"] for r in refused] == ["/pkcard.v1.CardService/GetCard"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sigterm_during_calls_finishes_or_fails_typed_and_exits_0(env: Env) -> None:
    root = make_root()
    try:
        daemon = _start(root, CONFIG)
        outcomes: list[object] = []
        started = threading.Barrier(5)

        def call() -> None:
            with daemon.client(timeout=30.0) as c:
                started.wait()
                for _ in range(10):
                    try:
                        outcomes.append(c.get_card(env.pk_reader).kind)
                    except PkcardError as exc:
                        outcomes.append(exc)

        threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        started.wait()
        daemon.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert daemon.process.wait(timeout=60) == 0
        assert len(outcomes) == 40
        untyped = [o for o in outcomes if not isinstance(o, CardKind | DaemonUnavailable)]
        assert untyped == []
        assert all(o is CardKind.PK for o in outcomes if isinstance(o, CardKind))
        data = daemon.audit_path.read_bytes()
        assert verify_bytes(data).intact
        assert json.loads(data.splitlines()[-1])["operation"] == "DAEMON_STOP"
        daemon.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _audit_verify(path: Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("pkcard-audit", path=str(Path(sys.executable).parent))
    assert command is not None, "pkcard-audit is not installed in the virtualenv"
    return subprocess.run([command, "verify", str(path)], capture_output=True, text=True,
                          check=False, timeout=60)


def test_audit_chain_verifies_and_breaks_on_a_one_byte_edit(
    env: Env, client: PkcardClient, tmp_path: Path
) -> None:
    client.get_card(env.pk_reader)
    with pytest.raises(WrongPin):
        client.verify_pin(env.pk_reader, PinRef.PIN, WRONG_PIN)
    ok = _audit_verify(env.daemon.audit_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    text = env.daemon.audit_path.read_text()
    for secret in (PIN, WRONG_PIN, PUK):
        assert secret not in text
        assert secret not in env.daemon.stderr()
    data = bytearray(env.daemon.audit_path.read_bytes())
    position = data.index(b'"GetCard"') + 2
    data[position] ^= 0x01  # "GetCard" -> "FetCard"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(bytes(data))
    broken = _audit_verify(edited)
    assert broken.returncode == 1
    assert "BAD_HASH" in broken.stdout
