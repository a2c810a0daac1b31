"""Per-APDU overhead of :class:`pkcard.protocol.SmartCardProtocol` over a raw transmit.

Runs both against an in-process connection that answers every command with
a fixed response, so the difference is the Python cost of the protocol
layer alone (APDU object, encode, the default processor stack, parse, SW
check). Run: ``.venv/bin/python -m bench.protocol_overhead``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from pkcard.protocol import SmartCardProtocol
from pkcard.transport import SmartCardConnection

READ_BINARY = bytes.fromhex("00B0000000")


class EchoConnection(SmartCardConnection):
    """Answers every command with the same response; costs next to nothing."""

    def __init__(self, response: bytes) -> None:
        self._response = response

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def transmit(self, command: bytes) -> bytes:
        return self._response

    def close(self) -> None:
        return


@dataclass(frozen=True)
class Overhead:
    raw_us: float  # per raw connection.transmit call
    protocol_us: float  # per SmartCardProtocol.send_apdu call

    @property
    def overhead_us(self) -> float:
        return self.protocol_us - self.raw_us


def measure(rounds: int = 200_000, response_length: int = 256) -> Overhead:
    """Time ``rounds`` READ BINARY exchanges raw and through the protocol; best of 5."""
    connection = EchoConnection(bytes(response_length) + b"\x90\x00")
    protocol = SmartCardProtocol(connection)
    transmit = connection.transmit
    send = protocol.send_apdu
    raw_best = proto_best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            transmit(READ_BINARY)
        raw_best = min(raw_best, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(rounds):
            send(0x00, 0xB0, 0x00, 0x00, le=256)
        proto_best = min(proto_best, time.perf_counter() - start)
    return Overhead(raw_best / rounds * 1e6, proto_best / rounds * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000, help="APDUs per timed pass")
    result = measure(rounds=parser.parse_args().rounds)
    print(f"raw transmit:        {result.raw_us:6.2f} us/APDU")
    print(f"SmartCardProtocol:   {result.protocol_us:6.2f} us/APDU")
    print(f"protocol overhead:   {result.overhead_us:6.2f} us/APDU")
    print(f"ratio protocol/raw:  {result.protocol_us / result.raw_us:6.1f}x")


if __name__ == "__main__":
    main()
