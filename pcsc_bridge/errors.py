"""PC/SC return codes and their one mapping onto :mod:`pkcard.errors`.

Nothing above :mod:`pcsc_bridge` ever sees a PC/SC code: every failed
``SCard*`` call goes through :func:`error_for_status` exactly once.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
from enum import IntEnum
from pathlib import Path

from pkcard.errors import (
    CardRemoved,
    CardReset,
    NoService,
    ReaderBusy,
    ReaderNotFound,
    TransportError,
    TransportTimeout,
)

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")


class PcscStatus(IntEnum):
    """The PC/SC return codes pkcard tells apart (values as pcsc-lite returns them)."""

    SUCCESS = 0x00000000
    F_INTERNAL_ERROR = 0x80100001
    E_CANCELLED = 0x80100002
    E_INVALID_HANDLE = 0x80100003
    E_INVALID_PARAMETER = 0x80100004
    E_INSUFFICIENT_BUFFER = 0x80100008
    E_UNKNOWN_READER = 0x80100009
    E_TIMEOUT = 0x8010000A
    E_SHARING_VIOLATION = 0x8010000B
    E_NO_SMARTCARD = 0x8010000C
    E_PROTO_MISMATCH = 0x8010000F
    E_NOT_READY = 0x80100010
    F_COMM_ERROR = 0x80100013
    E_NOT_TRANSACTED = 0x80100016
    E_READER_UNAVAILABLE = 0x80100017
    E_NO_SERVICE = 0x8010001D
    E_SERVICE_STOPPED = 0x8010001E
    E_UNSUPPORTED_FEATURE = 0x8010001F
    E_NO_ACCESS = 0x80100027
    E_NO_READERS_AVAILABLE = 0x8010002E
    E_COMM_DATA_LOST = 0x8010002F
    E_SERVER_TOO_BUSY = 0x80100031
    W_UNSUPPORTED_CARD = 0x80100065
    W_UNRESPONSIVE_CARD = 0x80100066
    W_UNPOWERED_CARD = 0x80100067
    W_RESET_CARD = 0x80100068
    W_REMOVED_CARD = 0x80100069


_ERROR_CLASS: dict[PcscStatus, type[TransportError]] = {
    PcscStatus.W_REMOVED_CARD: CardRemoved,
    PcscStatus.E_NO_SMARTCARD: CardRemoved,
    PcscStatus.W_UNPOWERED_CARD: CardReset,  # powered off: every PIN state is gone
    PcscStatus.W_RESET_CARD: CardReset,
    PcscStatus.E_NO_SERVICE: NoService,
    PcscStatus.E_SERVICE_STOPPED: NoService,
    PcscStatus.E_INVALID_HANDLE: NoService,  # pcscd restarted under our handles
    PcscStatus.E_NO_ACCESS: NoService,  # polkit refused this user
    PcscStatus.E_SERVER_TOO_BUSY: NoService,
    PcscStatus.E_UNKNOWN_READER: ReaderNotFound,
    PcscStatus.E_READER_UNAVAILABLE: ReaderNotFound,
    PcscStatus.E_NO_READERS_AVAILABLE: ReaderNotFound,
    PcscStatus.E_SHARING_VIOLATION: ReaderBusy,
    PcscStatus.E_TIMEOUT: TransportTimeout,
    PcscStatus.W_UNRESPONSIVE_CARD: TransportTimeout,
}

_DESCRIPTION: dict[PcscStatus, str] = {
    PcscStatus.W_REMOVED_CARD: "the card was removed",
    PcscStatus.E_NO_SMARTCARD: "no card in the reader",
    PcscStatus.W_UNPOWERED_CARD: "the card was powered off",
    PcscStatus.W_RESET_CARD: "the card was reset by another application",
    PcscStatus.E_NO_SERVICE: "the PC/SC service (pcscd) is not running",
    PcscStatus.E_SERVICE_STOPPED: "the PC/SC service (pcscd) stopped",
    PcscStatus.E_INVALID_HANDLE: "the PC/SC handle is no longer valid (pcscd restarted)",
    PcscStatus.E_NO_ACCESS: "pcscd refused access to this user (polkit)",
    PcscStatus.E_UNKNOWN_READER: "no reader of that name",
    PcscStatus.E_READER_UNAVAILABLE: "the reader is unavailable",
    PcscStatus.E_NO_READERS_AVAILABLE: "no reader is attached",
    PcscStatus.E_SHARING_VIOLATION: "another application holds the card exclusively",
    PcscStatus.E_TIMEOUT: "the operation timed out",
    PcscStatus.W_UNRESPONSIVE_CARD: "the card does not answer",
}


def describe_status(status: int) -> str:
    """A short English description of a PC/SC return code, with the code in hex."""
    try:
        known = PcscStatus(status)
    except ValueError:
        return f"PC/SC error 0x{status:08X}"
    text = _DESCRIPTION.get(known, known.name.lower().replace("_", " "))
    return f"{text} (0x{status:08X} {known.name})"


def error_for_status(status: int, action: str) -> TransportError:
    """The pkcard error for a failed PC/SC call. ``action`` names what was attempted.

    The message names the call and the code, never an APDU.
    """
    try:
        cls = _ERROR_CLASS.get(PcscStatus(status), TransportError)
    except ValueError:
        cls = TransportError
    return cls(f"{action}: {describe_status(status)}")


class PcscdSocketState(IntEnum):
    """What the pcscd socket looks like from this process."""

    MISSING = 1  # no socket file: pcscd is not running and not socket-activated
    REFUSED = 2  # a stale socket file nobody listens on (pcscd crashed or was killed)
    ACCEPTS = 3  # pcscd listens; if calls still fail it refused us (polkit)


def probe_pcscd_socket(path: Path = PCSCD_SOCKET) -> PcscdSocketState:
    """Look at the pcscd socket without speaking the PC/SC protocol."""
    if not path.exists():
        return PcscdSocketState.MISSING
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return PcscdSocketState.REFUSED
            return PcscdSocketState.ACCEPTS  # e.g. EACCES: it exists, we may not use it
    return PcscdSocketState.ACCEPTS


def explain_no_service(state: PcscdSocketState, user: str, is_root: bool) -> str:
    """A message for people that names the fix for a missing PC/SC service."""
    if state is PcscdSocketState.MISSING:
        return (
            "pcscd is not running: start it with `systemctl start pcscd.socket` "
            "(Debian runs pcscd socket-activated with --auto-exit, so the socket unit "
            "must be enabled: `systemctl enable --now pcscd.socket`)"
        )
    if state is PcscdSocketState.REFUSED:
        return (
            "pcscd left a stale socket and is not listening (it crashed or was killed): "
            "restart it with `systemctl restart pcscd.socket pcscd.service`"
        )
    if is_root:
        return "pcscd is listening but refused the call: check `journalctl -u pcscd`"
    return (
        f"pcscd is listening but refused user {user!r}: polkit allows only local active "
        "sessions by default. For a service user add a rule in "
        "/etc/polkit-1/rules.d/ allowing the actions org.debian.pcsc-lite.access_pcsc "
        f"and org.debian.pcsc-lite.access_card for subject.user == {user!r}"
    )


def diagnose_no_service(path: Path = PCSCD_SOCKET) -> str:
    """Probe the pcscd socket and explain why the PC/SC service is unavailable."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return explain_no_service(probe_pcscd_socket(path), user, uid == 0)
