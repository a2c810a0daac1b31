"""PC/SC return codes to pkcard errors, and the no-service diagnosis (no pcscd needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.errors import (
    CardRemoved,
    CardReset,
    NoService,
    ReaderBusy,
    ReaderNotFound,
    TransportError,
    TransportTimeout,
)
from pkcard.pcsc_bridge.errors import (
    PcscdSocketState,
    PcscStatus,
    error_for_status,
    explain_no_service,
    probe_pcscd_socket,
)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (PcscStatus.W_REMOVED_CARD, CardRemoved),
        (PcscStatus.E_NO_SMARTCARD, CardRemoved),
        (PcscStatus.W_RESET_CARD, CardReset),
        (PcscStatus.W_UNPOWERED_CARD, CardReset),
        (PcscStatus.E_NO_SERVICE, NoService),
        (PcscStatus.E_SERVICE_STOPPED, NoService),
        (PcscStatus.E_INVALID_HANDLE, NoService),
        (PcscStatus.E_UNKNOWN_READER, ReaderNotFound),
        (PcscStatus.E_READER_UNAVAILABLE, ReaderNotFound),
        (PcscStatus.E_NO_READERS_AVAILABLE, ReaderNotFound),
        (PcscStatus.E_SHARING_VIOLATION, ReaderBusy),
        (PcscStatus.E_TIMEOUT, TransportTimeout),
    ],
)
def test_status_maps_to_error(status: PcscStatus, error: type[TransportError]) -> None:
    mapped = error_for_status(status, "SCardTransmit")
    assert type(mapped) is error
    assert f"{int(status):08X}" in str(mapped)
    assert "SCardTransmit" in str(mapped)


@given(st.integers(0x80100000, 0x801000FF) | st.integers(0, 2**32 - 1))
def test_every_status_maps_to_a_transport_error(status: int) -> None:
    assert isinstance(error_for_status(status, "call"), TransportError)


def test_explain_names_the_fix() -> None:
    assert "systemctl start pcscd.socket" in explain_no_service(
        PcscdSocketState.MISSING, "pkcard", is_root=False
    )
    assert "restart" in explain_no_service(PcscdSocketState.REFUSED, "pkcard", is_root=False)
    polkit = explain_no_service(PcscdSocketState.ACCEPTS, "pkcard", is_root=False)
    assert "polkit" in polkit
    assert "org.debian.pcsc-lite.access_pcsc" in polkit
    assert "'pkcard'" in polkit


def test_probe_socket_states(tmp_path: Path) -> None:
    path = tmp_path / "pcscd.comm"
    assert probe_pcscd_socket(path) is PcscdSocketState.MISSING
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        assert probe_pcscd_socket(path) is PcscdSocketState.ACCEPTS
    # the listener is gone, the file stays: a stale socket
    assert probe_pcscd_socket(path) is PcscdSocketState.REFUSED
