"""Audit group commit (issue #14, goal G8): fsyncs per call with concurrent VerifyPin callers.

Each VerifyPin writes an intent record that must be durable before the card
sees the PIN, and an outcome record. Concurrent callers share commits
(``daemon/audit.py``). This bench counts them: ``clients`` threads (own
channel each) make ``calls_per_client`` VerifyPin calls (the right PIN)
spread over two PK readers; the daemon's own counter (its INFO log line
``audit log head: ... (R records, C commits since start)`` at start and stop)
gives the commits, each one ``fdatasync`` of the log. It also measures a lone
caller's VerifyPin latency with and without the audit log, interleaved.

Standalone: ``python -m bench.audit_commit [--clients 64] [--calls-per-client 10]
[--lone 200] [--pcsc]`` runs ``pkcardd --simulated --simulated-readers 4`` (no
pcscd), or with ``--pcsc`` ``pkcardd --pcsc`` over a private pcscd + vpcd;
``bench.daemon`` runs the same as part of its pcscd run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pkcard.client import PkcardClient
from pkcard.errors import PkcardError
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

GOAL_FSYNCS_PER_CALL = 0.25
SIMULATED_PK_READERS = ("Gemalto GemPC Pinpad (simulated)", "Simulated Reader 02")
PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)
_COMMITS = re.compile(r"audit log head: seq \d+ \w+ \((\d+) records, (\d+) commits since start\)")


@dataclass(frozen=True)
class AuditCommit:
    clients: int
    calls: int
    errors: tuple[str, ...]
    records: int
    commits: int
    lone_audited_ms: float
    lone_unaudited_ms: float

    @property
    def fsyncs_per_call(self) -> float:
        return self.commits / self.calls


def _counters(log: str) -> list[tuple[int, int]]:
    return [(int(m.group(1)), int(m.group(2))) for m in _COMMITS.finditer(log)]


def _concurrent(socket_path: Path, readers: Sequence[str], clients: int, calls: int,
                channel_factory: object) -> list[str]:
    """``clients`` threads x ``calls`` VerifyPin; returns the errors."""
    errors: list[str] = []
    barrier = threading.Barrier(clients)

    def run(index: int) -> None:
        reader = readers[index % len(readers)]
        channel = channel_factory(socket_path)  # type: ignore[operator]
        with PkcardClient(socket_path, channel=channel, timeout=60.0) as client:
            client.list_readers()
            barrier.wait()
            for _ in range(calls):
                try:
                    client.verify_pin(reader, PinRef.PIN, PIN)
                except PkcardError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:120])

    threads = [threading.Thread(target=run, args=(i,), name=f"g8-client-{i}")
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _lone(audited: Path, unaudited: Path, reader: str, calls: int) -> tuple[float, float]:
    """Median VerifyPin latency (ms) of one caller on each daemon, interleaved."""
    samples: tuple[list[float], list[float]] = ([], [])
    with PkcardClient(audited) as first, PkcardClient(unaudited) as second:
        for _ in range(calls):
            for client, into in ((first, samples[0]), (second, samples[1])):
                start = time.perf_counter()
                client.verify_pin(reader, PinRef.PIN, PIN)
                into.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1e3, statistics.median(samples[1]) * 1e3


def measure(workdir: Path, backend: str, readers: Sequence[str], clients: int,
            calls_per_client: int, lone_calls: int, extra: Sequence[str] = ()) -> AuditCommit:
    """Lone calls on an audited and an unaudited pkcardd (``pcsc`` or ``simulated``), then
    the burst on a fresh audited one (its start and stop log lines bracket the count)."""
    from bench.daemon import _private_channel, start_pkcardd  # noqa: PLC0415

    config = workdir / "audit-commit.toml"  # PIN-pad readers take the bench's PIN too
    config.write_text("allow_host_pin_entry = true\n", encoding="utf-8")
    extra = (*extra, "--config", str(config))
    audited = start_pkcardd(workdir, backend, extra=extra)
    unaudited = start_pkcardd(workdir, backend, audit=False, extra=extra)
    try:
        lone = _lone(audited.socket_path, unaudited.socket_path, readers[0], lone_calls)
    finally:
        unaudited.stop()
        audited.stop()
    burst = start_pkcardd(workdir, backend, extra=(*extra, "--log-level", "INFO"))
    try:
        errors = _concurrent(burst.socket_path, readers, clients, calls_per_client,
                             _private_channel)
    finally:
        burst.stop()
    counters = _counters(burst.log_path.read_text(errors="replace"))
    (records_0, commits_0), (records_1, commits_1) = counters[0], counters[-1]
    return AuditCommit(clients, clients * calls_per_client, tuple(errors), records_1 - records_0,
                       commits_1 - commits_0, *lone)


def report(result: AuditCommit) -> None:
    counts: dict[str, int] = {}
    for error in result.errors:
        counts[error] = counts.get(error, 0) + 1
    detail = "; ".join(f"{n}x {e}" for e, n in sorted(counts.items()))
    print(f"audit group commit: {result.clients} concurrent VerifyPin callers,"
          f" {result.calls} calls, {len(result.errors)} errors{f' ({detail})' if detail else ''}")
    print(f"  {result.records} records, {result.commits} commits (fdatasync) from the daemon's"
          f" start record to its stop record (included)")
    print(f"  fsyncs per call {result.fsyncs_per_call:.3f} (goal <= {GOAL_FSYNCS_PER_CALL})")
    print(f"  lone VerifyPin median: {result.lone_audited_ms:.3f} ms audited,"
          f" {result.lone_unaudited_ms:.3f} ms without audit log"
          f" (+{result.lone_audited_ms - result.lone_unaudited_ms:.3f} ms)")
    verdict = "ok" if result.fsyncs_per_call <= GOAL_FSYNCS_PER_CALL else "MISSED"
    print(f"GOAL G8 measured={result.fsyncs_per_call:.3f} goal<={GOAL_FSYNCS_PER_CALL} {verdict}")


def _over_pcscd(workdir: Path, args: argparse.Namespace) -> AuditCommit:
    """The same over a private pcscd with two vpcd slots holding a pk-regular PK."""
    from pkcard.simcard.card import load_card  # noqa: PLC0415
    from pkcard.simcard.pcscd_harness import PcscdHarness, PcscdLock  # noqa: PLC0415

    lock = PcscdLock()
    if not args.pcscd_lock_held:
        lock.acquire()
    harness = PcscdHarness(workdir / "pcscd", lock)
    try:
        harness.start()
        for slot in (0, 1):
            harness.insert(slot, load_card("pk-regular"))
        readers = (harness.reader_name(0), harness.reader_name(1))
        return measure(workdir, "pcsc", readers, args.clients, args.calls_per_client, args.lone)
    finally:
        harness.stop()
        if not args.pcscd_lock_held:
            lock.release()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_commit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--calls-per-client", type=int, default=10)
    parser.add_argument("--lone", type=int, default=200, help="lone-caller VerifyPin samples")
    parser.add_argument("--pcsc", action="store_true",
                        help="over pcscd + vpcd (root; takes /tmp/pkcard-pcscd.lock)")
    parser.add_argument("--pcscd-lock-held", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pkbench-", dir="/tmp") as workdir:
        if args.pcsc:
            result = _over_pcscd(Path(workdir), args)
        else:
            result = measure(Path(workdir), "simulated", SIMULATED_PK_READERS, args.clients,
                             args.calls_per_client, args.lone, ("--simulated-readers", "4"))
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
