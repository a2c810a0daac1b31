"""pkpin --pinpad: the secrets are typed on the reader's (simulated) keypad, never on the pty.

pkcardd runs in this process over a SimulatedReaderSystem, so the test can
type on the simulated PIN pad while pkpin runs on a pty.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pkpin_secrets import NEW_PIN, PIN, PUK
from ptyrun import PkpinSession, run_pkpin

from pkcard.daemon.config import DaemonConfig, ReaderBackend
from pkcard.daemon.server import Daemon
from pkcard.errors import PinPadCancelled, WrongPin
from pkcard.pin import PinRef, PinState
from pkcard.pk import ProfessionalCard
from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.simcard.pinpad import Keypad
from pkcard.simcard.spec import SecretRef
from pkcard.tools.pkpin.commands import Console, PinCommand, PinOptions, run_pin_command
from pkcard.tools.pkpin.errors import NoPinPad, NoTerminal
from pkcard.tools.pkpin.i18n import Language, translations
from pkcard.tools.pkpin.messages import ExitCode, Messages
from pkcard.tools.pkpin.service import DirectService
from pkcard.tools.pkpin.terminal import Terminal


@dataclass
class PadDaemon:
    daemon: Daemon
    system: SimulatedReaderSystem
    root: Path

    @property
    def socket(self) -> str:
        return str(self.daemon.socket_path)

    @property
    def keypad(self) -> Keypad:
        pad = self.system.pin_pad(PINPAD_READER.name)
        assert pad is not None
        return pad.keypad

    def fresh_card(self, profile: str = "pk-regular") -> SimulatedCard:
        card = load_card(profile)
        self.system.insert(PINPAD_READER.name, card)
        return card


def _start(allow_host_pin_entry: bool) -> PadDaemon:
    root = Path(tempfile.mkdtemp(prefix="pkpinpad-", dir="/tmp"))
    root.chmod(0o700)
    system = SimulatedReaderSystem([PINPAD_READER, TWIN_READER])
    config = DaemonConfig(
        socket_dir=root / "run",
        reader_backend=ReaderBackend.SIMULATED,
        audit_log=root / "audit.jsonl",
        allow_host_pin_entry=allow_host_pin_entry,
    )
    daemon = Daemon(config, system)
    daemon.start()
    return PadDaemon(daemon, system, root)


@pytest.fixture(scope="module")
def pad_daemon() -> Iterator[PadDaemon]:
    """pkcardd as with real readers: PINs typed on the computer are refused for a pad."""
    running = _start(allow_host_pin_entry=False)
    yield running
    running.daemon.stop(grace=0)
    shutil.rmtree(running.root, ignore_errors=True)


def test_change_pin_on_the_pad_through_the_daemon(pad_daemon: PadDaemon) -> None:
    card = pad_daemon.fresh_card()
    for digits in (PIN, NEW_PIN, NEW_PIN):
        pad_daemon.keypad.type(digits)
    session = PkpinSession(["--socket", pad_daemon.socket, "change-pin", "--pinpad"])
    session.expect("First the current PIN, then the new PIN twice.")
    session.expect_exit(ExitCode.OK)
    assert "PIN changed." in session.rest()
    assert "Current PIN" not in session.transcript  # nothing asked on the computer
    assert pad_daemon.keypad.pending == 0
    assert card.tries_left(SecretRef.PIN) == 3
    session.assert_no_secret_shown(PIN, NEW_PIN)


def test_wrong_pin_on_the_pad(pad_daemon: PadDaemon) -> None:
    card = pad_daemon.fresh_card()
    for digits in ("11223344", NEW_PIN, NEW_PIN):
        pad_daemon.keypad.type(digits)
    code, out = run_pkpin(["--socket", pad_daemon.socket, "change-pin", "--pinpad"])
    assert code == ExitCode.WRONG_PIN
    assert out.rstrip().endswith("Wrong PIN: 2 tries left")
    assert card.tries_left(SecretRef.PIN) == 2


def test_unblock_on_the_pad(pad_daemon: PadDaemon) -> None:
    card = pad_daemon.fresh_card("pk-blocked")
    for digits in (PUK, NEW_PIN, NEW_PIN):
        pad_daemon.keypad.type(digits)
    code, out = run_pkpin(["--socket", pad_daemon.socket, "unblock", "--pinpad"])
    assert code == ExitCode.OK, out
    assert "First the current PUK, then the new PIN twice." in out
    assert "PIN unblocked: the new PIN is set." in out
    assert card.tries_left(SecretRef.PIN) == 3


def test_cancel_on_the_pad(pad_daemon: PadDaemon) -> None:
    card = pad_daemon.fresh_card()
    pad_daemon.keypad.cancel()
    code, out = run_pkpin(["--socket", pad_daemon.socket, "change-pin", "--pinpad"])
    assert code == ExitCode.CANCELLED
    assert "PIN entry was cancelled on the reader." in out
    assert card.tries_left(SecretRef.PIN) == 3


def test_keyboard_entry_refused_by_the_daemon(pad_daemon: PadDaemon) -> None:
    card = pad_daemon.fresh_card()
    session = PkpinSession(["--socket", pad_daemon.socket, "change-pin"])
    session.expect("Without --pinpad, type it here.")
    session.type_secret("Current PIN: ", PIN)
    session.type_secret("New PIN: ", NEW_PIN)
    session.type_secret("New PIN again: ", NEW_PIN)
    session.expect_exit(ExitCode.DAEMON)
    assert "pkcardd takes PINs for this reader only from its PIN pad: run again with --pinpad." in (
        session.rest()
    )
    assert card.tries_left(SecretRef.PIN) == 3


# --- in process, DirectService over the simulated pad --------------------------


def no_terminal() -> Terminal:
    raise NoTerminal("no terminal in this test")


def direct(profile: str = "pk-regular") -> tuple[DirectService, SimulatedReaderSystem]:
    system = SimulatedReaderSystem()
    system.insert(PINPAD_READER.name, load_card(profile))
    return DirectService(system), system


def keypad(system: SimulatedReaderSystem) -> Keypad:
    pad = system.pin_pad(PINPAD_READER.name)
    assert pad is not None
    return pad.keypad


def run_command(service: DirectService, command: PinCommand, *, pad: bool = True) -> Console:
    console = Console(io.StringIO(), io.StringIO(), Messages(translations(Language.ENGLISH)))
    options = PinOptions(reader=None, confirm_last_try=False, use_pin_pad=pad)
    assert run_pin_command(service, console, no_terminal, command, options) is ExitCode.OK
    return console


def test_direct_activate_signature_on_the_pad() -> None:
    service, system = direct("pk-transport")
    for digits in ("836194", "5817293", "5817293"):
        keypad(system).type(digits)
    console = run_command(service, PinCommand.ACTIVATE_SIGNATURE)
    assert isinstance(console.out, io.StringIO)
    assert console.out.getvalue() == "Signing PIN activated.\n"
    assert service.status(PINPAD_READER.name, PinRef.SPIN).state is PinState.VERIFIABLE


def test_direct_change_spin_on_the_pad() -> None:
    service, system = direct()
    spin = load_card("pk-regular").profile.secret_value(SecretRef.SPIN)
    for digits in (spin, "5817293", "5817293"):
        keypad(system).type(digits)
    run_command(service, PinCommand.CHANGE_SPIN)
    keypad(system).type("5817293")  # the new signing PIN now verifies
    with system.connect(PINPAD_READER.name) as connection:
        status = ProfessionalCard.over(connection).verify_on_pad(PinRef.SPIN)
    assert status.state is PinState.VERIFIED


def test_direct_pad_errors() -> None:
    service, system = direct()
    keypad(system).type("11223344")
    keypad(system).type(NEW_PIN)
    keypad(system).type(NEW_PIN)
    with pytest.raises(WrongPin):
        run_command(service, PinCommand.CHANGE_PIN)
    keypad(system).cancel()
    with pytest.raises(PinPadCancelled):
        run_command(service, PinCommand.CHANGE_PIN)


def test_pinpad_on_a_reader_without_one() -> None:
    system = SimulatedReaderSystem()
    system.insert(TWIN_READER.name, load_card("pk-regular"))
    with pytest.raises(NoPinPad):
        run_command(DirectService(system), PinCommand.CHANGE_PIN)
