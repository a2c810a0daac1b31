"""pkcardd's reader workers hold one PC/SC connection each: what happens to the card
between two calls must never be hidden by it (real pcscd + vpcd, real pkcardd).

- pcscd powers an idle card down once the connection is released: the PIN is
  then reported as not verified, and a session relying on it ends;
- another process resets the card: the reset is reported (the reader's sessions
  end with CARD_RESET) and the PIN reuse credits earned on the card are void;
- a card is swapped between calls: the new card is read as itself, never
  inheriting the old card's verified state or credits;
- pcscd restarts: the next call works, and credits earned before are void;
- a card pulled mid-command on a held connection: the typed error as before.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_harness import make_root
from serving import wait_serving
from sessionrig import AUTHORIZATIONS, BackendRig

from pkcard.cardinfo import PK_AID
from pkcard.client import PkcardClient
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import CardRemoved, PinError, SessionEnded, SessionEndReason
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef, PinState
from pkcard.readers import CardKind
from pkcard.sessions import RestrictedMode, RestrictedReason
from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.faults import FaultPlan, FaultyCard
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.transport import SmartCardConnection

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(180, method="thread")]

BOUND_S = 30.0  # every wait gives up after this long (pcscd's power-off grace is ~10 s)
PK_SLOT = 0  # "Gemalto PC Twin Reader": no PIN pad, the PIN comes from the client
ROOT = Path(__file__).resolve().parents[2]
PATIENT = "900000011"
NOT_VERIFIED = "PIN is not verified|pin_reuse_s"  # PinNotVerified, as a client sees it
RESTRICTED = RestrictedMode(RestrictedReason.KZZ_UNUSABLE, PATIENT, "chip broken")

# Another PC/SC application: resets the card in a reader, then (with "verify")
# verifies the PK's PIN itself, and leaves the card powered.
OTHER_APP = """
import sys
from smartcard import scard
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
reader, mode = sys.argv[1], sys.argv[2]
P = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
if mode in ("reset", "reset+verify"):
    _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    rc, card, _ = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, P)
    assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
    rc, _ = scard.SCardReconnect(card, scard.SCARD_SHARE_SHARED, P, scard.SCARD_RESET_CARD)
    assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(ctx)
if mode == "select-mf":  # leave the card with the MF, not the PK application, selected
    _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    rc, card, proto = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, P)
    assert rc == scard.SCARD_S_SUCCESS, hex(rc & 0xFFFFFFFF)
    pci = scard.SCARD_PCI_T1 if proto == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
    rc, response = scard.SCardTransmit(card, pci, [0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00])
    assert rc == scard.SCARD_S_SUCCESS and response == [0x90, 0x00], (hex(rc), response)
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(ctx)
if mode in ("verify", "reset+verify"):
    with PcscReaderSystem() as system, system.connect(reader) as connection:
        ProfessionalCard.over(connection).verify(PinRef.PIN, Secret(sys.stdin.read()))
"""


def other_app(reader: str, mode: str, pin: str = "") -> None:
    """Run the other application to its end (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", OTHER_APP, reader, mode], input=pin,
                          text=True, capture_output=True, timeout=BOUND_S, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


def pin_of(profile: str) -> str:
    return load_profile(profile).secret_value(SecretRef.PIN)


def pin_state(client: PkcardClient, reader: str) -> PinState:
    (status,) = client.get_pin_status(reader, PinRef.PIN)
    return status.state


def until(condition: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + BOUND_S
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {BOUND_S} s: {what}")


@dataclass
class Daemon:
    """A ``pkcardd --pcsc`` with a backend; ``client()`` opens a client (close it)."""

    backend: BackendRig
    socket_path: Path
    log_path: Path

    def client(self) -> PkcardClient:
        return PkcardClient(self.socket_path, timeout=BOUND_S)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _daemon(idle_release_s: float) -> Iterator[Daemon]:
    root = make_root()
    backend = BackendRig(root)
    config = root / "pkcardd.toml"
    config.write_text(
        'workstation_id = "ws-held-01"\n'
        f'backend = "{backend.address}"\n'
        "allow_host_pin_entry = true\n"
        "[limits]\n"
        f"card_idle_release_s = {idle_release_s}\n"
    )
    log_path = root / "pkcardd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pkcard.daemon.main", "--pcsc", "--config", str(config),
             "--socket-dir", str(root / "run"), "--audit-log", str(root / "audit.jsonl"),
             "--log-level", "DEBUG"],
            stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    daemon = Daemon(backend, root / "run" / "pkcardd.sock", log_path)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(BOUND_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    try:
        wait_serving(process, daemon.socket_path, daemon.log, stop)
        yield daemon
    finally:
        stop()
        backend.close()


@pytest.fixture
def held(pcscd_env: PcscdHarness) -> Iterator[Daemon]:
    """The connection stays held between the test's calls (released after 600 s idle)."""
    yield from _daemon(600.0)


@pytest.fixture
def releasing(pcscd_env: PcscdHarness) -> Iterator[Daemon]:
    """The connection is released 0.2 s after each call."""
    yield from _daemon(0.2)


# --- the worker reuses its connection -------------------------------------------------


class CountingSystem(PcscReaderSystem):
    def __init__(self) -> None:
        super().__init__()
        self.connects = 0

    def connect(self, reader: str) -> SmartCardConnection:  # type: ignore[override]
        self.connects += 1
        return super().connect(reader)


def test_a_worker_connects_once_for_many_jobs(pcscd_env: PcscdHarness) -> None:
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    name = pcscd_env.reader_name(PK_SLOT)
    with CountingSystem() as system:
        workers = ReaderWorkers(system, idle_release_s=600.0)
        try:
            atrs = [workers.run(name, lambda c: c.atr, timeout=BOUND_S) for _ in range(5)]
        finally:
            assert workers.stop(timeout=BOUND_S) == []
        assert len(set(atrs)) == 1
        assert system.connects == 1


# --- one transaction and one SELECT per call, and a SELECT in every call -----------


class RecordingCard:
    """A card in a vpcd slot that keeps the command APDUs it is sent."""

    def __init__(self, card: SimulatedCard) -> None:
        self._card = card
        self.commands: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self._card.atr

    def execute(self, apdu: bytes) -> bytes:
        self.commands.append(bytes(apdu))
        return self._card.execute(apdu)

    def power_off(self) -> None:
        self._card.power_off()

    def reset(self) -> None:
        self._card.reset()

    def take(self) -> list[bytes]:
        taken, self.commands = self.commands, []
        return taken


SELECT_PK = bytes.fromhex("00A4040C09") + PK_AID


def test_get_pin_status_selects_the_application_once_and_in_every_call(
    pcscd_env: PcscdHarness, held: Daemon
) -> None:
    """GetPinStatus on a held connection: one SELECT of the PK application, always first.

    The card info and the PIN statuses are read in one card transaction, so the
    application is selected once; the next call selects it again whatever
    happened in between (here: another process left the MF selected, then reset
    the card), so a held connection never relies on a selection it did not make.
    """
    card = RecordingCard(SimulatedCard.from_profile(load_profile("pk-regular")))
    pcscd_env.insert(PK_SLOT, card)
    reader = pcscd_env.reader_name(PK_SLOT)
    with held.client() as client:
        for between in (None, "select-mf", "reset", None):
            if between is not None:
                other_app(reader, between)
            card.take()
            statuses = client.get_pin_status(reader)
            sent = card.take()
            assert sent[0] == SELECT_PK, between
            assert sent.count(SELECT_PK) == 1, [c.hex() for c in sent]
            assert [s.ref for s in statuses] == list(PinRef)
            assert statuses[0].state is PinState.VERIFIABLE


# --- pcscd powers an idle card down -----------------------------------------------


def test_an_idle_card_powered_down_is_not_reported_verified(
    pcscd_env: PcscdHarness, releasing: Daemon
) -> None:
    pk = load_card("pk-regular")
    pcscd_env.insert(PK_SLOT, pk)
    reader = pcscd_env.reader_name(PK_SLOT)
    with releasing.client() as client:
        opened = client.open_session(reader, releasing.backend.challenge(), AUTHORIZATIONS,
                                     restricted=RESTRICTED, pin=pin_of("pk-regular"))
        assert pin_state(client, reader) is PinState.VERIFIED
        # The worker lets go of the card; pcscd powers it down after its grace period.
        until(lambda: not pk.is_verified(SecretRef.PIN), "pcscd powered the idle card down")
        assert pin_state(client, reader) is not PinState.VERIFIED
        with pytest.raises(SessionEnded) as ended:
            client.refresh_session(opened.session_id, releasing.backend.challenge())
        assert ended.value.end_reason is SessionEndReason.CARD_RESET


# --- a reset by another process ----------------------------------------------------


def test_a_reset_by_another_process_ends_the_session_with_card_reset(
    pcscd_env: PcscdHarness, held: Daemon
) -> None:
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    reader = pcscd_env.reader_name(PK_SLOT)
    with held.client() as client:
        opened = client.open_session(reader, held.backend.challenge(), AUTHORIZATIONS,
                                     restricted=RESTRICTED, pin=pin_of("pk-regular"))
        other_app(reader, "reset")
        # Any call on the reader finds the reset and reports it: the session ends at once.
        assert pin_state(client, reader) is not PinState.VERIFIED
        status = client.get_session(opened.session_id)
        assert status.end_reason is SessionEndReason.CARD_RESET
        with pytest.raises(SessionEnded) as ended:
            client.refresh_session(opened.session_id, held.backend.challenge())
        assert ended.value.end_reason is SessionEndReason.CARD_RESET
    assert "was reset or lost power" in held.log()


def test_a_reset_voids_the_callers_pin_credit(pcscd_env: PcscdHarness, held: Daemon) -> None:
    """After the reset, the card is verified again by someone else: not the caller's PIN."""
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    reader = pcscd_env.reader_name(PK_SLOT)
    with held.client() as client:
        client.verify_pin(reader, PinRef.PIN, pin_of("pk-regular"))  # the caller's credit
        other_app(reader, "reset+verify", pin_of("pk-regular"))
        with pytest.raises(PinError, match=NOT_VERIFIED):
            client.open_session(reader, held.backend.challenge(), AUTHORIZATIONS,
                                restricted=RESTRICTED)
        # The caller's own verification earns a new credit, as always.
        client.verify_pin(reader, PinRef.PIN, pin_of("pk-regular"))
        opened = client.open_session(reader, held.backend.challenge(), AUTHORIZATIONS,
                                     restricted=RESTRICTED)
        assert client.close_session(opened.session_id)


# --- a card swapped between calls ------------------------------------------------


def test_a_swapped_card_never_inherits_the_old_cards_state(
    pcscd_env: PcscdHarness, held: Daemon
) -> None:
    regular, nurse = load_card("pk-regular"), load_card("pk-nurse")
    pcscd_env.insert(PK_SLOT, regular)
    reader = pcscd_env.reader_name(PK_SLOT)
    with held.client() as client:
        client.verify_pin(reader, PinRef.PIN, pin_of("pk-regular"))
        assert pin_state(client, reader) is PinState.VERIFIED
        # Same ATR, another serial.
        pcscd_env.remove(PK_SLOT)
        pcscd_env.insert(PK_SLOT, nurse)
        reading = client.get_card(reader)
        assert reading.pk is not None
        assert reading.pk.card_serial == nurse.profile.card_info.serial
        assert pin_state(client, reader) is not PinState.VERIFIED
        with pytest.raises(PinError, match=NOT_VERIFIED):
            client.open_session(reader, held.backend.challenge(), AUTHORIZATIONS,
                                restricted=RESTRICTED)
        # Another ATR.
        pcscd_env.remove(PK_SLOT)
        pcscd_env.insert(PK_SLOT, load_card("kzz"))
        assert client.get_card(reader).kind is CardKind.KZZ
        # Swapped without waiting for pcscd to see the slot empty.
        pcscd_env.remove(PK_SLOT, wait=False)
        pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
        reading = client.get_card(reader)
        assert reading.pk is not None
        assert reading.pk.card_serial == regular.profile.card_info.serial
        assert pin_state(client, reader) is not PinState.VERIFIED


# --- pcscd restarting --------------------------------------------------------------


def test_pcscd_restart_the_next_call_works_and_old_credits_are_void(
    pcscd_env: PcscdHarness, held: Daemon
) -> None:
    pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
    reader = pcscd_env.reader_name(PK_SLOT)
    with held.client() as client:
        client.verify_pin(reader, PinRef.PIN, pin_of("pk-regular"))
        pcscd_env.restart_pcscd(reinsert=True)  # the card comes back power-cycled
        other_app(reader, "verify", pin_of("pk-regular"))
        with pytest.raises(PinError, match=NOT_VERIFIED):
            client.open_session(reader, held.backend.challenge(), AUTHORIZATIONS,
                                restricted=RESTRICTED)
        assert pin_state(client, reader) is PinState.VERIFIED  # by the other application


# --- a card pulled mid-command --------------------------------------------------------


def test_a_card_pulled_mid_command_on_a_held_connection(
    pcscd_env: PcscdHarness, held: Daemon
) -> None:
    pk = SimulatedCard.from_profile(load_profile("pk-regular"))
    pcscd_env.insert(PK_SLOT, FaultyCard(pk, FaultPlan()))
    reader = pcscd_env.reader_name(PK_SLOT)
    tries = pk.tries_left(SecretRef.PIN)
    with held.client() as client:
        assert pin_state(client, reader) is not PinState.VERIFIED  # the worker holds the card
        pcscd_env.pull_on_next_apdu(PK_SLOT)
        with pytest.raises(CardRemoved):
            client.change_pin(reader, PinRef.PIN, pin_of("pk-regular"), "9021")
        assert pk.tries_left(SecretRef.PIN) == tries  # nothing was presented
        pcscd_env.wait_for_card(PK_SLOT, present=False)
        with pytest.raises(CardRemoved):
            client.get_card(reader)
        pcscd_env.insert(PK_SLOT, load_card("pk-regular"))
        assert client.get_card(reader).kind is CardKind.PK
