"""Load run: many clients against one ``pkcardd --simulated``, with cards pulled and reinserted.

    .venv/bin/python -m bench.load                      # 64 clients x 50 calls, 4 readers
    .venv/bin/python -m bench.load --clients 8 --calls 5 --json

Each client has its own channel and makes a fixed number of calls (GetCard,
GetPinStatus, VerifyPin with the right PIN) on readers chosen round-robin;
one chaos thread (started and joined here) pulls a card and puts a fresh one
back every ``--chaos-ms``. Reported: calls completed, typed errors by reason,
untyped errors (anything that is not a pkcard error, or an INTERNAL), hangs
(client threads still running at the deadline), latency percentiles, and the
daemon's RSS after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pkcard.client import PkcardClient
from pkcard.error_codes import describe
from pkcard.errors import DaemonInternalError, PkcardError
from pkcard.pin import PinRef
from pkcard.readers import CardKind
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

CALL_TIMEOUT_S = 10.0
STARTUP_S = 30.0


@dataclass
class LoadReport:
    """What one run measured. Latencies in milliseconds."""

    clients: int
    calls_per_client: int
    readers: int
    calls_completed: int = 0
    ok: int = 0
    typed_errors: dict[str, int] = field(default_factory=dict)
    untyped_errors: int = 0
    untyped_examples: list[str] = field(default_factory=list)
    hangs: int = 0
    card_swaps: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    wall_s: float = 0.0

    @property
    def rss_growth(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(self.rss_before_kib, 1)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, int(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Daemon:
    """A ``pkcardd --simulated`` child process on a private socket."""

    def __init__(self, readers: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pkload-", dir="/tmp"))
        self.root.chmod(0o700)
        self.socket = self.root / "run" / "pkcardd.sock"
        self.log = (self.root / "pkcardd.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pkcard.daemon.main", "--simulated", "--simulated-readers",
             str(readers), "--socket-dir", str(self.root / "run"),
             "--audit-log", str(self.root / "audit.jsonl"), "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self._wait_serving()

    def _wait_serving(self) -> None:
        give_up = time.monotonic() + STARTUP_S
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(f"pkcardd exited with {self.process.returncode}")
            if self.socket.exists():
                with grpc.insecure_channel(f"unix:{self.socket}") as channel:
                    try:
                        reply = health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(), timeout=2)
                    except grpc.RpcError:
                        reply = None
                if reply is not None and reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.05)
        raise RuntimeError("pkcardd did not start")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)

    def record(self, seconds: float, outcome: str | None, untyped: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds * 1000)
            if untyped is not None:
                self.untyped.append(untyped)
            elif outcome is None:
                self.ok += 1
            else:
                self.typed[outcome] += 1


def _classify(exc: BaseException) -> tuple[str | None, str | None]:
    """(typed reason, untyped description) of a failed call."""
    if isinstance(exc, DaemonInternalError) or not isinstance(exc, PkcardError):
        return None, f"{type(exc).__name__}: {exc}"[:200]
    detail = describe(exc)
    return (detail.reason.value if detail is not None else type(exc).__name__), None


def _one_call(client: PkcardClient, step: int, pk_readers: list[str], all_readers: list[str],
              pin: str) -> None:
    """Call number ``step``: GetCard, GetPinStatus and VerifyPin in turn."""
    if step % 3 == 0:
        client.get_card(all_readers[step % len(all_readers)])
    elif step % 3 == 1:
        client.get_pin_status(pk_readers[step % len(pk_readers)])
    else:
        client.verify_pin(pk_readers[step % len(pk_readers)], PinRef.PIN, pin)


def _client_loop(socket: Path, pk_readers: list[str], all_readers: list[str], calls: int,
                 offset: int, pin: str, tally: _Tally) -> None:
    with PkcardClient(socket, timeout=CALL_TIMEOUT_S) as client:
        for n in range(calls):
            started = time.perf_counter()
            try:
                _one_call(client, offset + n, pk_readers, all_readers, pin)
            except Exception as exc:  # classified below, never swallowed
                typed, untyped = _classify(exc)
                tally.record(time.perf_counter() - started, typed, untyped)
            else:
                tally.record(time.perf_counter() - started, None, None)


def _chaos(socket: Path, readers: dict[str, str], every_s: float, stop: threading.Event,
           swaps: list[int]) -> None:
    """Pull a card and put a fresh one of the same profile back, reader after reader."""
    names = sorted(readers)
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = simulation_pb2_grpc.SimulationServiceStub(channel)
        index = 0
        while not stop.wait(every_s):
            name = names[index % len(names)]
            index += 1
            try:
                stub.RemoveCard(simulation_pb2.RemoveCardRequest(reader=name), timeout=10)
                stop.wait(every_s / 4)
                stub.InsertCard(simulation_pb2.InsertCardRequest(
                    reader=name, profile=readers[name]), timeout=10)
                swaps[0] += 1
            except grpc.RpcError:
                continue  # the daemon is busy: the next round tries again


def run_load(clients: int, calls: int, readers: int, chaos_ms: float) -> LoadReport:
    """One bounded run; the daemon is started and stopped here."""
    report = LoadReport(clients, calls, readers)
    pin = load_profile("pk-regular").secret_value(SecretRef.PIN)
    daemon = Daemon(readers)
    try:
        with PkcardClient(daemon.socket, timeout=CALL_TIMEOUT_S) as admin:
            states = admin.list_readers()
            for state in states:  # warm-up: every reader once
                admin.get_card(state.reader.name)
        kinds = {s.reader.name: s.card_kind for s in states}
        pk_readers = sorted(n for n, k in kinds.items() if k is CardKind.PK)
        profiles = {n: "pk-regular" if k is CardKind.PK else "kzz" for n, k in kinds.items()}
        report.rss_before_kib = rss_kib(daemon.process.pid)
        tally = _Tally()
        stop = threading.Event()
        swaps = [0]
        chaos = threading.Thread(target=_chaos, name="load-chaos",
                                 args=(daemon.socket, profiles, chaos_ms / 1000, stop, swaps))
        workers = [
            threading.Thread(target=_client_loop, name=f"load-client-{i}",
                             args=(daemon.socket, pk_readers, sorted(kinds), calls, i, pin, tally))
            for i in range(clients)
        ]
        started = time.perf_counter()
        chaos.start()
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + CALL_TIMEOUT_S * calls + 60
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        report.wall_s = time.perf_counter() - started
        stop.set()
        chaos.join(30)
        report.hangs = sum(1 for w in workers if w.is_alive())
        report.card_swaps = swaps[0]
        report.rss_after_kib = rss_kib(daemon.process.pid)
        with tally.lock:
            latencies = sorted(tally.latencies)
            report.calls_completed = len(latencies)
            report.ok = tally.ok
            report.typed_errors = dict(sorted(tally.typed.items()))
            report.untyped_errors = len(tally.untyped)
            report.untyped_examples = tally.untyped[:5]
        report.p50_ms = percentile(latencies, 0.5)
        report.p99_ms = percentile(latencies, 0.99)
        report.p999_ms = percentile(latencies, 0.999)
    finally:
        daemon.close()
    return report


def format_report(report: LoadReport) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in report.typed_errors.items()) or "none"
    return "\n".join([
        f"clients x calls      {report.clients} x {report.calls_per_client} "
        f"on {report.readers} readers ({report.card_swaps} card swaps)",
        f"calls completed      {report.calls_completed} in {report.wall_s:.1f} s "
        f"({report.ok} ok)",
        f"typed errors         {errors}",
        f"untyped errors       {report.untyped_errors} {report.untyped_examples or ''}",
        f"hangs                {report.hangs}",
        f"latency ms           p50 {report.p50_ms:.1f}  p99 {report.p99_ms:.1f}  "
        f"p99.9 {report.p999_ms:.1f}",
        f"daemon RSS KiB       {report.rss_before_kib} -> {report.rss_after_kib} "
        f"({report.rss_growth:+.1%})",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--calls", type=int, default=50, help="calls per client")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--chaos-ms", type=float, default=200.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run_load(args.clients, args.calls, args.readers, args.chaos_ms)
    if args.json:
        sys.stdout.write(json.dumps(asdict(report), indent=2) + "\n")
    else:
        sys.stdout.write(format_report(report) + "\n")
    return 1 if report.untyped_errors or report.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
