"""APDU round trip through a real pcscd + vpcd: raw pyscard vs pkcard's stack.

Starts its own pcscd with one vpcd reader (taking the machine-wide pcscd
lock; other pcscd users wait), serves a trivial card, and times N round
trips of the same READ BINARY both with a bare ``SCardTransmit`` and through
:class:`pkcard.pcsc_bridge.PcscConnection` + :class:`pkcard.protocol.SmartCardProtocol`,
interleaved in rounds so drift hits both alike. Prints median and p99 per
APDU and the ratio of the medians (issue #14's G9).

Run: ``.venv/bin/python -m bench.apdu_roundtrip [--count 2000] [--rounds 20]
[--pcscd-lock-held]`` (the last when the caller, e.g. a pytest session, already
holds the pcscd lock). Ends with the ``GOAL G9`` line (issue #14: ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from smartcard import scard

from bench.goals import print_goal
from pkcard.apdu import CommandApdu
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.protocol import SmartCardProtocol
from pkcard.simcard.pcscd_harness import DEFAULT_READERS, PcscdHarness, PcscdLock

READ_BINARY = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=16)
PAYLOAD = bytes(range(16))


class FixedCard:
    """Answers every command with 16 bytes + 9000: the card costs next to nothing."""

    atr = bytes.fromhex("3B888001") + b"PKCARDPK" + b"\x22"

    def execute(self, apdu: bytes) -> bytes:
        return PAYLOAD + b"\x90\x00"

    def power_off(self) -> None:
        return

    def reset(self) -> None:
        return


def _time_calls(call: Callable[[], object], count: int, into: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        call()
        into.append(clock() - start)


def _p99(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def run(count: int, rounds: int, lock_held: bool = False) -> None:
    per_round = max(1, count // rounds)
    held = nullcontext(PcscdLock()) if lock_held else PcscdLock()
    with held as lock, tempfile.TemporaryDirectory() as workdir:
        harness = PcscdHarness(Path(workdir), lock, DEFAULT_READERS[:1])
        with harness:
            harness.insert(0, FixedCard())
            reader = harness.reader_name(0)
            status, hcontext = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            assert status == scard.SCARD_S_SUCCESS
            status, hcard, _ = scard.SCardConnect(
                hcontext,
                reader,
                scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )
            assert status == scard.SCARD_S_SUCCESS
            raw_apdu = list(READ_BINARY.encode())
            pci = scard.SCARD_PCI_T1

            def raw() -> tuple[int, list[int]]:
                result: tuple[int, list[int]] = scard.SCardTransmit(hcard, pci, raw_apdu)
                return result

            with PcscReaderSystem() as system, system.connect(reader) as connection:
                protocol = SmartCardProtocol(connection)

                def stacked() -> object:
                    return protocol.transmit(READ_BINARY)

                assert bytes(raw()[1]) == protocol.transmit(READ_BINARY).encode()
                _time_calls(raw, 100, [])  # warm up both paths
                _time_calls(stacked, 100, [])
                raw_ns: list[int] = []
                stacked_ns: list[int] = []
                for _ in range(rounds):
                    _time_calls(raw, per_round, raw_ns)
                    _time_calls(stacked, per_round, stacked_ns)
            scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
            scard.SCardReleaseContext(hcontext)

    raw_median = statistics.median(raw_ns) / 1000
    stacked_median = statistics.median(stacked_ns) / 1000
    print(f"APDU round trip, pcscd + vpcd, {len(raw_ns)} APDUs each, {rounds} interleaved rounds")
    print(
        f"  raw SCardTransmit        median {raw_median:8.1f} us   "
        f"p99 {_p99(raw_ns) / 1000:8.1f} us"
    )
    print(
        f"  PcscConnection+protocol  median {stacked_median:8.1f} us   "
        f"p99 {_p99(stacked_ns) / 1000:8.1f} us"
    )
    overhead = stacked_median / raw_median - 1
    print(f"  ratio {stacked_median / raw_median:.3f} (+{overhead:.1%})")
    print_goal("G9", stacked_median / raw_median)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="APDUs per path")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--pcscd-lock-held", action="store_true",
                        help="the caller holds /tmp/pkcard-pcscd.lock; do not take it")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.rounds = 200, 4
    run(args.count, args.rounds, args.pcscd_lock_held)


if __name__ == "__main__":
    main()
