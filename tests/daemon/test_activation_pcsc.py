"""KPEP activation as the seed describes it (issue 15, point 7), on the real path.

vpcd cards in a real pcscd, a real ``pkcardd --pcsc`` process and the real
client: the transport PIN reaches the card only when the reader is one the
seed names and the backend (the seed's "sistem on-line") answers. Each
refusal leaves the TPIN's tries and the SPIN's transport state untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import RunningDaemon, make_root, start_daemon

from pkcard.daemon.embedded_backend import EmbeddedBackend
from pkcard.errors import ActivationOffline, ActivationReaderUnsupported
from pkcard.pin import PinRef, PinState
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

pytestmark = pytest.mark.pcsc

CT30_SLOT = 0  # "Gemalto PC Twin Reader": a reader the seed names
GENERIC_SLOT = 2  # "Virtual PCD": not one of them
TRANSPORT = load_profile("pk-transport")
TPIN = TRANSPORT.secret_value(SecretRef.TPIN)
NEW_SPIN = "520739"
CONFIG = "allow_host_pin_entry = false\n[limits]\nfailed_pin_limit = 1000\n"


def _daemon(root: Path, backend_address: str) -> RunningDaemon:
    path = root / "pkcardd.toml"
    path.write_text(f'backend = "{backend_address}"\n' + CONFIG)
    return start_daemon(root, "--config", str(path), readers="--pcsc")


@pytest.fixture
def online(pcscd_env: PcscdHarness) -> Iterator[RunningDaemon]:
    root = make_root()
    backend = EmbeddedBackend(root / "backend", root / "backend-link.sock", root / "backend.sock")
    backend.start()
    daemon = _daemon(root, backend.address)
    yield daemon
    daemon.close()
    backend.stop(0)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def offline(pcscd_env: PcscdHarness) -> Iterator[RunningDaemon]:
    """A daemon whose configured backend does not listen (the workstation is off line)."""
    root = make_root()
    daemon = _daemon(root, f"unix:{root / 'no-backend.sock'}")
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def _untouched(harness: PcscdHarness, slot: int, daemon: RunningDaemon) -> None:
    reader = harness.reader_name(slot)
    with daemon.client(timeout=30.0) as client:
        (tpin,) = client.get_pin_status(reader, PinRef.TPIN)
        (spin,) = client.get_pin_status(reader, PinRef.SPIN)
    assert tpin.tries_left == tpin.max_tries  # the TPIN was never presented
    assert spin.state is PinState.TRANSPORT


def test_activation_on_a_supported_reader_with_the_backend_on_line(
    pcscd_env: PcscdHarness, online: RunningDaemon
) -> None:
    pcscd_env.insert(CT30_SLOT, load_card("pk-transport"))
    reader = pcscd_env.reader_name(CT30_SLOT)
    with online.client(timeout=30.0) as client:
        status = client.activate_signature_pin(reader, TPIN, NEW_SPIN)
        (tpin,) = client.get_pin_status(reader, PinRef.TPIN)
    assert status.ref is PinRef.SPIN
    assert status.state is not PinState.TRANSPORT
    assert tpin.state is PinState.DISABLED


def test_an_unsupported_reader_is_refused_before_the_tpin_is_sent(
    pcscd_env: PcscdHarness, online: RunningDaemon
) -> None:
    pcscd_env.insert(GENERIC_SLOT, load_card("pk-transport"))
    reader = pcscd_env.reader_name(GENERIC_SLOT)
    with online.client(timeout=30.0) as client, pytest.raises(
        ActivationReaderUnsupported
    ) as refused:
        client.activate_signature_pin(reader, TPIN, NEW_SPIN)
    assert refused.value.reader == reader
    _untouched(pcscd_env, GENERIC_SLOT, online)


def test_an_unreachable_backend_is_refused_before_the_tpin_is_sent(
    pcscd_env: PcscdHarness, offline: RunningDaemon
) -> None:
    pcscd_env.insert(CT30_SLOT, load_card("pk-transport"))
    reader = pcscd_env.reader_name(CT30_SLOT)
    with offline.client(timeout=30.0) as client, pytest.raises(ActivationOffline):
        client.activate_signature_pin(reader, TPIN, NEW_SPIN)
    _untouched(pcscd_env, CT30_SLOT, offline)


def test_a_wrong_tpin_is_still_counted_when_the_prerequisites_hold(
    pcscd_env: PcscdHarness, online: RunningDaemon
) -> None:
    """The checks stop nothing else: with both prerequisites the card counts a wrong TPIN."""
    from pkcard.errors import WrongPin  # noqa: PLC0415

    pcscd_env.insert(CT30_SLOT, load_card("pk-transport"))
    reader = pcscd_env.reader_name(CT30_SLOT)
    wrong = "470193" if TPIN != "470193" else "836195"
    with online.client(timeout=30.0) as client:
        with pytest.raises(WrongPin):
            client.activate_signature_pin(reader, wrong, NEW_SPIN)
        (tpin,) = client.get_pin_status(reader, PinRef.TPIN)
    assert tpin.tries_left == tpin.max_tries - 1
