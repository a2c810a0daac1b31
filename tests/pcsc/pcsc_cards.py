"""Tiny cards for the pcsc tests: they count what the reader does to them."""

from __future__ import annotations

import socket
import struct
import threading

from pkcard.readers import ReaderEvent, ReaderEventKind


def with_tck(atr: bytes) -> bytes:
    """Append TCK: the XOR of every byte from T0 on (docs/card-profile.md)."""
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    return atr + bytes([tck])


ECHO_PK_ATR = with_tck(bytes.fromhex("3B888001") + b"PKCARDPK")
ECHO_KZZ_ATR = with_tck(bytes.fromhex("3B888001") + b"PKCARDKZ")


class EchoCard:
    """Answers a case-3/4 command with its data + 9000, anything else with 9000.

    Counts power-offs and resets, so tests can see what pcscd did.
    """

    def __init__(self, atr: bytes = ECHO_PK_ATR) -> None:
        self._atr = atr
        self._lock = threading.Lock()
        self.power_offs = 0
        self.resets = 0
        self.commands = 0

    @property
    def atr(self) -> bytes:
        return self._atr

    def execute(self, apdu: bytes) -> bytes:
        with self._lock:
            self.commands += 1
        if len(apdu) > 5 and apdu[4] and len(apdu) >= 5 + apdu[4]:
            return apdu[5 : 5 + apdu[4]] + b"\x90\x00"
        return b"\x90\x00"

    def power_off(self) -> None:
        with self._lock:
            self.power_offs += 1

    def reset(self) -> None:
        with self._lock:
            self.resets += 1


class EventLog:
    """A thread-safe event sink that tests can wait on."""

    def __init__(self) -> None:
        self._events: list[ReaderEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: ReaderEvent) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    @property
    def events(self) -> list[ReaderEvent]:
        with self._cond:
            return list(self._events)

    def wait_for(
        self, kind: ReaderEventKind, reader: str = "", timeout: float = 10.0
    ) -> ReaderEvent:
        """The first event of ``kind`` (for ``reader``) logged so far or within ``timeout``."""

        def match() -> ReaderEvent | None:
            for event in self._events:
                if event.kind is kind and (not reader or event.reader == reader):
                    return event
            return None

        with self._cond:
            found = self._cond.wait_for(match, timeout)
        if found is None:
            raise AssertionError(f"no {kind.name} for {reader!r} in {self._events}")
        return found

    def kinds(self) -> list[ReaderEventKind]:
        return [event.kind for event in self.events]


class FakeReader:
    """The reader side of vpcd: listens, accepts one card, sends messages."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port: int = self.server.getsockname()[1]
        self.client: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(5)
        self.client, _ = self.server.accept()
        self.client.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.client is not None
        self.client.sendall(struct.pack(">H", len(payload)) + payload)

    def receive(self) -> bytes | None:
        assert self.client is not None
        header = self._exact(2)
        if header is None:
            return None
        return self._exact(struct.unpack(">H", header)[0])

    def _exact(self, size: int) -> bytes | None:
        assert self.client is not None
        data = b""
        while len(data) < size:
            chunk = self.client.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.close()
