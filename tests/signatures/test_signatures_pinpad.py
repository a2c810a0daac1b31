"""SignDocument on a PIN-pad reader: the SPIN is typed on the pad, never sent by the client.

The daemon runs in this process (``pkcard.daemon.server.Daemon`` over a
SimulatedReaderSystem) so the test can type on the simulated keypad.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sigrig import openssl_verify, secret

from pkcard.client import PkcardClient
from pkcard.daemon.config import DaemonConfig, ReaderBackend
from pkcard.daemon.server import Daemon
from pkcard.errors import HostPinEntryRefused, WrongPin
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import PINPAD_READER, SimulatedReaderSystem
from pkcard.simcard.pinpad import SimulatedPinPad
from pkcard.simcard.spec import SecretRef

SPIN = secret("pk-regular", SecretRef.SPIN)
DOCUMENT = b"recept: 1x amoksicilin 500 mg -- signed on the PIN pad\n"


@dataclass
class PadDaemon:
    daemon: Daemon
    system: SimulatedReaderSystem
    client: PkcardClient
    root: Path

    @property
    def pad(self) -> SimulatedPinPad:
        pad = self.system.pin_pad(PINPAD_READER.name)
        assert pad is not None
        return pad

    def spin_tries(self) -> int:
        card = self.system.card_in(PINPAD_READER.name)
        assert card is not None
        return card.tries_left(SecretRef.SPIN)


@pytest.fixture
def pad_daemon() -> Iterator[PadDaemon]:
    root = Path(tempfile.mkdtemp(prefix="pksig-", dir="/tmp"))
    root.chmod(0o700)
    system = SimulatedReaderSystem([PINPAD_READER])
    system.insert(PINPAD_READER.name, load_card("pk-regular"))
    config = DaemonConfig(
        socket_dir=root / "run", reader_backend=ReaderBackend.SIMULATED,
        audit_log=root / "audit.jsonl", allow_host_pin_entry=False,
    )
    daemon = Daemon(config, system)
    daemon.start()
    client = PkcardClient(config.socket_path, timeout=20)
    yield PadDaemon(daemon, system, client, root)
    client.close()
    daemon.stop(grace=0)
    shutil.rmtree(root, ignore_errors=True)


def test_spin_typed_on_the_pad_signs(pad_daemon: PadDaemon, tmp_path: Path) -> None:
    events = pad_daemon.client.watch_events()
    next(events)  # the snapshot: the subscription exists from here on
    pad_daemon.pad.keypad.type(SPIN)
    signed = pad_daemon.client.sign_document(PINPAD_READER.name, DOCUMENT)
    seen = [next(events), next(events)]
    events.close()
    assert seen == [
        ReaderEvent(ReaderEventKind.PIN_ENTRY_STARTED, PINPAD_READER.name),
        ReaderEvent(ReaderEventKind.PIN_ENTRY_FINISHED, PINPAD_READER.name),
    ]
    assert openssl_verify(signed.cms, DOCUMENT, tmp_path).returncode == 0
    assert SPIN not in (pad_daemon.root / "audit.jsonl").read_text()


def test_wrong_spin_on_the_pad_counts(pad_daemon: PadDaemon) -> None:
    pad_daemon.pad.keypad.type("11112222")
    with pytest.raises(WrongPin) as wrong:
        pad_daemon.client.sign_document(PINPAD_READER.name, DOCUMENT)
    assert wrong.value.tries_left == 2
    assert pad_daemon.spin_tries() == 2


def test_spin_from_the_host_is_refused_before_the_card(pad_daemon: PadDaemon) -> None:
    with pytest.raises(HostPinEntryRefused):
        pad_daemon.client.sign_document(PINPAD_READER.name, DOCUMENT, spin=SPIN)
    assert pad_daemon.spin_tries() == 3
    assert pad_daemon.pad.received == ()
