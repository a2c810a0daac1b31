"""PIN-pad readers through pkcardd: no secret crosses the gRPC API, events announce the pad.

The daemon runs in this process (``pkcard.daemon.server.Daemon`` over a
SimulatedReaderSystem) so the tests can type on the simulated keypad.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from padrig import CT30, CT700

from pkcard.client import PkcardClient
from pkcard.daemon.config import DaemonConfig, ReaderBackend
from pkcard.daemon.server import Daemon
from pkcard.errors import (
    HostPinEntryRefused,
    LastTryNotConfirmed,
    PinPadCancelled,
    PinPadTimeout,
    WrongPin,
)
from pkcard.pin import PinRef, PinState
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.simcard.card import load_card
from pkcard.simcard.inprocess import SimulatedReaderSystem
from pkcard.simcard.pinpad import SimulatedPinPad
from pkcard.simcard.spec import SecretRef

PIN = "58392671"
NEW_PIN = "4826"


if TYPE_CHECKING:
    _Interceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Interceptor = grpc.UnaryUnaryClientInterceptor


class Recorder(_Interceptor):
    """Keeps the serialized form of every request and response the client sends and gets."""

    def __init__(self) -> None:
        self.wire: list[bytes] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.wire.append(request.SerializeToString())
        outcome = continuation(details, request)
        if outcome.exception() is None:
            self.wire.append(outcome.result().SerializeToString())
        return outcome


@dataclass
class PadDaemon:
    daemon: Daemon
    system: SimulatedReaderSystem
    client: PkcardClient
    recorder: Recorder
    root: Path

    @property
    def pad(self) -> SimulatedPinPad:
        pad = self.system.pin_pad(CT700.name)
        assert pad is not None
        return pad

    def card_tries(self) -> int:
        card = self.system.card_in(CT700.name)
        assert card is not None
        return card.tries_left(SecretRef.PIN)


def _start(allow_host_pin_entry: bool | None) -> PadDaemon:
    root = Path(tempfile.mkdtemp(prefix="pkpad-", dir="/tmp"))
    root.chmod(0o700)
    system = SimulatedReaderSystem([CT700, CT30])
    system.insert(CT700.name, load_card("pk-regular"))
    system.insert(CT30.name, load_card("pk-regular"))
    config = DaemonConfig(
        socket_dir=root / "run",
        reader_backend=ReaderBackend.SIMULATED,
        audit_log=root / "audit.jsonl",
        allow_host_pin_entry=allow_host_pin_entry,
    )
    daemon = Daemon(config, system)
    daemon.start()
    recorder = Recorder()
    channel = grpc.intercept_channel(
        grpc.insecure_channel(f"unix:{config.socket_path}"), recorder
    )
    client = PkcardClient(config.socket_path, channel=channel, timeout=20)
    return PadDaemon(daemon, system, client, recorder, root)


@pytest.fixture
def pkcardd() -> Iterator[PadDaemon]:
    running = _start(allow_host_pin_entry=False)
    yield running
    running.client.close()
    running.daemon.stop(grace=0)
    shutil.rmtree(running.root, ignore_errors=True)


def test_verify_on_the_pad_announces_entry_and_carries_no_secret(pkcardd: PadDaemon) -> None:
    events = pkcardd.client.watch_events()
    next(events)  # the snapshot: the subscription exists from here on
    pkcardd.pad.keypad.type(PIN)
    status = pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    assert status.state is PinState.VERIFIED
    seen = [next(events), next(events)]
    events.close()
    assert seen == [
        ReaderEvent(ReaderEventKind.PIN_ENTRY_STARTED, CT700.name),
        ReaderEvent(ReaderEventKind.PIN_ENTRY_FINISHED, CT700.name),
    ]
    assert pkcardd.recorder.wire, "the recorder saw no call"
    assert all(PIN.encode() not in message for message in pkcardd.recorder.wire)
    assert PIN not in (pkcardd.root / "audit.jsonl").read_text()


def test_change_on_the_pad(pkcardd: PadDaemon) -> None:
    for digits in (PIN, NEW_PIN, NEW_PIN):
        pkcardd.pad.keypad.type(digits)
    status = pkcardd.client.change_pin(CT700.name, PinRef.PIN, "", "")
    assert status.state is PinState.VERIFIED
    wire = b"".join(pkcardd.recorder.wire)
    assert PIN.encode() not in wire
    assert NEW_PIN.encode() not in wire


def test_pad_outcomes_reach_the_client_typed(pkcardd: PadDaemon) -> None:
    pkcardd.pad.keypad.type("11112222")
    with pytest.raises(WrongPin) as wrong:
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    assert wrong.value.tries_left == 2
    pkcardd.pad.keypad.cancel()
    with pytest.raises(PinPadCancelled):
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    pkcardd.pad.keypad.time_out()
    with pytest.raises(PinPadTimeout):
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    pkcardd.pad.keypad.type("11112222")
    with pytest.raises(WrongPin):
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    with pytest.raises(LastTryNotConfirmed):
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, "")
    assert pkcardd.card_tries() == 1


def test_a_secret_for_a_pad_reader_is_refused_before_the_card(pkcardd: PadDaemon) -> None:
    with pytest.raises(HostPinEntryRefused):
        pkcardd.client.verify_pin(CT700.name, PinRef.PIN, PIN)
    assert pkcardd.card_tries() == 3
    assert pkcardd.pad.received == ()
    # A reader without a pad takes the secret from the host as before.
    status = pkcardd.client.verify_pin(CT30.name, PinRef.PIN, PIN)
    assert status.state is PinState.VERIFIED


def test_host_entry_allowed_by_configuration() -> None:
    running = _start(allow_host_pin_entry=True)
    try:
        status = running.client.verify_pin(CT700.name, PinRef.PIN, PIN)
        assert status.state is PinState.VERIFIED
        assert running.pad.received == ()
    finally:
        running.client.close()
        running.daemon.stop(grace=0)
        shutil.rmtree(running.root, ignore_errors=True)


def test_simulated_backend_allows_host_entry_unless_configured() -> None:
    assert DaemonConfig(reader_backend=ReaderBackend.SIMULATED).host_pin_entry_allowed
    assert not DaemonConfig(reader_backend=ReaderBackend.PCSC).host_pin_entry_allowed
    assert not DaemonConfig(
        reader_backend=ReaderBackend.SIMULATED, allow_host_pin_entry=False
    ).host_pin_entry_allowed
