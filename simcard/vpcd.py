"""The card side of vsmartcard's vpcd reader driver.

pcscd loads ``libifdvpcd.so``, which listens on ``127.0.0.1:CHANNELID`` (and
``CHANNELID + 1`` for the reader's second slot). A card "enters" the reader
by connecting to that port and "leaves" it by closing the connection.

Wire format, both directions: a 2-byte big-endian length, then the payload.
A 1-byte payload from the reader is a control (:class:`VpcdControl`); a
longer one is a command APDU, answered by one message holding the response
APDU. ``GET_ATR`` is answered by one message holding the ATR.

Latency: the socket sets ``TCP_NODELAY`` once and ``TCP_QUICKACK`` before
every read. Without both, Nagle and delayed ACKs cost ~44 ms per APDU.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from enum import IntEnum
from typing import Protocol

_log = logging.getLogger(__name__)

_HEADER = struct.Struct(">H")
NO_PRECISE_DIAGNOSIS = b"\x6f\x00"
_CONNECT_TIMEOUT_S = 5.0
_JOIN_TIMEOUT_S = 5.0


class CardLike(Protocol):
    """What a slot needs from a card: an ATR, APDU execution and power control."""

    @property
    def atr(self) -> bytes: ...

    def execute(self, apdu: bytes) -> bytes:
        """Raw command APDU in, raw response APDU (data + SW1 SW2) out."""
        ...

    def power_off(self) -> None:
        """Drop volatile state: verified PINs, current selection."""
        ...

    def reset(self) -> None:
        """Warm reset; for the simulated cards the same as :meth:`power_off`."""
        ...


class VpcdControl(IntEnum):
    """The 1-byte control messages vpcd sends to the card."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


class SlotError(Exception):
    """The slot is misused (insert into an occupied slot) or vpcd is unreachable."""


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Read exactly ``size`` bytes, or ``None`` when the peer closed first."""
    chunks = bytearray()
    while len(chunks) < size:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


class VpcdCardSlot:
    """One vpcd slot, seen from the card: insert a card, serve it, pull it.

    The slot owns at most one serving thread, started by :meth:`insert` and
    joined by :meth:`remove`. Use it as a context manager to make sure the
    card is pulled and the thread joined.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._card: CardLike | None = None
        self._pull_on_next_apdu = threading.Event()

    def __repr__(self) -> str:
        return f"VpcdCardSlot({self.host}:{self.port}, inserted={self.inserted})"

    @property
    def inserted(self) -> bool:
        """True while a card is connected to the reader."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def card(self) -> CardLike | None:
        """The card last inserted (kept after removal, so a test can reinsert it)."""
        return self._card

    def insert(self, card: CardLike) -> None:
        """Put ``card`` into the reader: connect to vpcd and start serving it.

        Raises :class:`SlotError` when a card is already inserted or vpcd does
        not listen on the port (pcscd not running or not configured for it).
        """
        with self._lock:
            if self.inserted:
                raise SlotError(f"slot {self.port} already holds a card")
            self._join_finished_thread()
            try:
                sock = socket.create_connection((self.host, self.port), _CONNECT_TIMEOUT_S)
            except OSError as exc:
                raise SlotError(f"vpcd does not listen on {self.host}:{self.port}") from exc
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pull_on_next_apdu.clear()
            self._sock = sock
            self._card = card
            self._thread = threading.Thread(
                target=self._serve, args=(sock, card), name=f"vpcd-slot-{self.port}", daemon=True
            )
            self._thread.start()

    def remove(self) -> None:
        """Pull the card: close the connection and join the serving thread. Idempotent."""
        with self._lock:
            sock = self._sock
            if sock is not None:
                with contextlib.suppress(OSError):  # the reader side already closed it
                    sock.shutdown(socket.SHUT_RDWR)
            self._join_finished_thread()

    def pull_on_next_apdu(self) -> None:
        """Arm the slot: the next command APDU closes the connection instead of an answer.

        This is a card pulled in the middle of a command, as the host sees it.
        """
        self._pull_on_next_apdu.set()

    def close(self) -> None:
        self.remove()

    def __enter__(self) -> VpcdCardSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _join_finished_thread(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                raise SlotError(f"slot {self.port}: serving thread did not stop")
        self._thread = None
        self._sock = None

    def _serve(self, sock: socket.socket, card: CardLike) -> None:
        try:
            self._serve_until_closed(sock, card)
        except OSError:
            pass  # connection reset by the reader side: the card is out
        finally:
            sock.close()

    def _serve_until_closed(self, sock: socket.socket, card: CardLike) -> None:
        while True:
            header = _recv_exact(sock, _HEADER.size)
            if header is None:
                return
            (length,) = _HEADER.unpack(header)
            payload = _recv_exact(sock, length)
            if payload is None:
                return
            if length == 1:
                answer = self._control(card, payload[0])
            else:
                if self._pull_on_next_apdu.is_set():
                    self._pull_on_next_apdu.clear()
                    return
                answer = self._execute(card, payload)
            if answer is not None:
                sock.sendall(_HEADER.pack(len(answer)) + answer)

    @staticmethod
    def _execute(card: CardLike, command: bytes) -> bytes:
        """The card's answer; a crashing card OS answers 6F00 instead of vanishing."""
        try:
            return card.execute(command)
        except Exception:
            _log.exception("simulated card failed on a command (INS %02X)", command[1])
            return NO_PRECISE_DIAGNOSIS

    @staticmethod
    def _control(card: CardLike, code: int) -> bytes | None:
        if code == VpcdControl.POWER_OFF:
            card.power_off()
        elif code == VpcdControl.RESET:
            card.reset()
        elif code == VpcdControl.GET_ATR:
            return card.atr
        return None  # POWER_ON: state was dropped at power off; unknown codes: ignored
