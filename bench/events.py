"""Card insert/remove: WatchEvents delivery against a raw SCardGetStatusChange waiter (G7).

Over a private pcscd + vpcd with ``pkcardd --pcsc`` (audit log on), a
``pk-regular`` PK is inserted into and pulled from one vpcd slot ``--events``
times. Two waiters see each event: a ``WatchEvents`` stream on the daemon
(through the public socket) and a thread of this process blocked in plain
``SCardGetStatusChange`` on the same reader. Each latency runs from the
moment the card went in or out of the vpcd slot to the moment the waiter
woke with the event; both are bound by pcscd's 400 ms presence poll of
vpcd, so the medians are a few hundred milliseconds, and their ratio is
what the daemon adds on top of pcscd's own wake-up. Goal G7 (issue #14):
daemon median / raw median <= 1.05.

Needs root, pcscd and vsmartcard-vpcd. Holds the machine-wide pcscd flock
(/tmp/pkcard-pcscd.lock) while pcscd runs, unless ``--pcscd-lock-held``.

Usage: .venv/bin/python -m bench.events [--quick] [--events 80] [--pcscd-lock-held]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from smartcard import scard

from bench.daemon import BenchError, start_pkcardd
from bench.goals import print_goal
from pkcard.client import PkcardClient
from pkcard.errors import PkcardError
from pkcard.readers import ReaderEvent, ReaderEventKind
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness, PcscdLock, missing_components

PROFILE = "pk-regular"
EVENT_LIMIT_S = 10.0  # a waiter that has not seen an event by then failed
SETTLE_S = 0.05  # between events, after both waiters saw the last one
_WAIT_MS = 250  # the raw waiter's SCardGetStatusChange timeout (to notice the stop flag)

Sighting = tuple[bool, float]  # (card present, perf_counter when the waiter woke)


def _daemon_waiter(client: PkcardClient, reader: str, into: queue.Queue[Sighting],
                   ready: threading.Event, stop: threading.Event) -> None:
    """Put each card event of ``reader`` from the daemon's WatchEvents stream on ``into``."""
    try:
        for item in client.watch_events():
            if not isinstance(item, ReaderEvent):
                ready.set()  # the snapshot: the stream is up
                continue
            if item.reader != reader:
                continue
            if item.kind is ReaderEventKind.CARD_INSERTED:
                into.put((True, time.perf_counter()))
            elif item.kind is ReaderEventKind.CARD_REMOVED:
                into.put((False, time.perf_counter()))
    except PkcardError:
        if not stop.is_set():
            raise  # the stream broke while the bench still waited on it


def _raw_waiter(reader: str, into: queue.Queue[Sighting], ready: threading.Event,
                stop: threading.Event) -> None:
    """The same from a plain SCardGetStatusChange loop on ``reader``."""
    status, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if status != scard.SCARD_S_SUCCESS:
        raise BenchError("SCardEstablishContext failed")
    try:
        status, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        current = states[0][1] & ~scard.SCARD_STATE_CHANGED
        ready.set()
        while not stop.is_set():
            status, states = scard.SCardGetStatusChange(context, _WAIT_MS, [(reader, current)])
            if status == scard.SCARD_E_TIMEOUT:
                continue
            if status != scard.SCARD_S_SUCCESS:
                raise BenchError(f"SCardGetStatusChange: {scard.SCardGetErrorMessage(status)}")
            woke = time.perf_counter()
            state = states[0][1]
            was = bool(current & scard.SCARD_STATE_PRESENT)
            now = bool(state & scard.SCARD_STATE_PRESENT)
            current = state & ~scard.SCARD_STATE_CHANGED
            if now != was:
                into.put((now, woke))
    finally:
        scard.SCardReleaseContext(context)


def _latency(sightings: queue.Queue[Sighting], present: bool, start: float, who: str) -> float:
    while True:
        try:
            seen, woke = sightings.get(timeout=EVENT_LIMIT_S)
        except queue.Empty:
            raise BenchError(f"{who} saw no card event within {EVENT_LIMIT_S} s") from None
        if seen == present:
            return woke - start


def measure(harness: PcscdHarness, workdir: Path, events: int) -> tuple[list[float], list[float]]:
    """(daemon latencies, raw latencies) in seconds, one pair per event."""
    reader = harness.reader_name(0)
    card = load_card(PROFILE)
    daemon = start_pkcardd(workdir, "pcsc")
    raw_sightings: queue.Queue[Sighting] = queue.Queue()
    daemon_sightings: queue.Queue[Sighting] = queue.Queue()
    stop = threading.Event()
    raw_ready, daemon_ready = threading.Event(), threading.Event()
    client = PkcardClient(daemon.socket_path)
    raw = threading.Thread(target=_raw_waiter, name="bench-raw-waiter",
                           args=(reader, raw_sightings, raw_ready, stop))
    watch = threading.Thread(target=_daemon_waiter, name="bench-watch-events",
                             args=(client, reader, daemon_sightings, daemon_ready, stop))
    daemon_ms: list[float] = []
    raw_ms: list[float] = []
    try:
        raw.start()
        watch.start()
        if not (raw_ready.wait(EVENT_LIMIT_S) and daemon_ready.wait(EVENT_LIMIT_S)):
            raise BenchError("a waiter did not start")
        for number in range(events):
            present = number % 2 == 0
            start = time.perf_counter()
            if present:
                harness.insert(0, card, wait=False)
            else:
                harness.remove(0, wait=False)
            raw_ms.append(_latency(raw_sightings, present, start, "SCardGetStatusChange"))
            daemon_ms.append(_latency(daemon_sightings, present, start, "WatchEvents"))
            time.sleep(SETTLE_S)
    finally:
        stop.set()
        client.close()  # ends the stream: the watch thread returns
        daemon.stop()
        raw.join(EVENT_LIMIT_S)
        watch.join(EVENT_LIMIT_S)
    return daemon_ms, raw_ms


def report(daemon_s: Sequence[float], raw_s: Sequence[float]) -> None:
    daemon_median, raw_median = statistics.median(daemon_s), statistics.median(raw_s)
    paired = statistics.median(d - r for d, r in zip(daemon_s, raw_s, strict=True))
    print(f"card insert/remove over pcscd + vpcd, {len(raw_s)} events, latency from the slot"
          " change to the waiter's wake-up")
    print(f"  raw SCardGetStatusChange   median {raw_median * 1e3:8.1f} ms"
          f"   max {max(raw_s) * 1e3:8.1f} ms")
    print(f"  pkcardd WatchEvents        median {daemon_median * 1e3:8.1f} ms"
          f"   max {max(daemon_s) * 1e3:8.1f} ms")
    print(f"  daemon after raw, same event: median {paired * 1e3:6.2f} ms")
    print(f"  ratio WatchEvents/raw: median {daemon_median / raw_median:.3f}")
    print_goal("G7", daemon_median / raw_median)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=80, help="inserts + removals")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--pcscd-lock-held", action="store_true",
                        help="the caller holds /tmp/pkcard-pcscd.lock; do not take it")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 6
    missing = missing_components()
    if missing:
        print("bench.events: missing: " + ", ".join(missing), file=sys.stderr)
        return 1
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    held = nullcontext(PcscdLock()) if args.pcscd_lock_held else PcscdLock()
    with tempfile.TemporaryDirectory(prefix="pkbench-", dir="/tmp") as tmp, held as lock:
        workdir = Path(tmp)
        harness = PcscdHarness(workdir / "pcscd", lock)
        try:
            harness.start()
            daemon_s, raw_s = measure(harness, workdir, args.events)
        except BenchError as exc:
            print(f"bench.events: {exc}", file=sys.stderr)
            return 1
        finally:
            harness.stop()
    report(daemon_s, raw_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
