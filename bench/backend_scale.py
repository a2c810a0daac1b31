"""Benchmark the reference backend on PostgreSQL against SQLite, and 1, 2, 4 instances.

Every figure is of real ``pkcard-backend`` processes over gRPC on loopback:

1. redemptions/s of one instance on SQLite (WAL, ``synchronous=FULL``) and of
   one instance on PostgreSQL (a private server started here: Debian's
   binaries, fsync on, ``synchronous_commit=on``), same load: the ratio
   PostgreSQL/SQLite;
2. 1, 2 and 4 instances on one PostgreSQL database;
3. p50/p99 latency of RedeemToken, and the anomalies counted (must be 0): a
   token accepted twice, an accepted redemption missing from the database, a
   REDEEMED audit row too many or too few, a broken audit chain, an untyped
   error.

The load: ``--clients`` threads in this process, each with its own channel,
redeem pre-signed KZZ tokens (challenges issued before the clock starts);
every ``--duplicate-every``-th token is also sent, at the same time, by
another client to another instance, and must be refused NONCE_REUSED. The
assignment comes from ``random.Random(--seed)``: the same run every time.

Usage: .venv/bin/python -m bench.backend_scale [--redemptions 1200] [--clients 8]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from bench.verify_tokens import HOLDER, SERIAL, _Setup
from pkcard.backend.pg_harness import PostgresServer, find_bin_dir
from pkcard.backend.registry import AuditEvent, Registry
from pkcard.backend.service import CLIENT_METADATA_KEY
from pkcard.backend.v1 import backend_pb2 as pb
from pkcard.backend.v1 import backend_pb2_grpc as pb_grpc
from pkcard.errors import RegistryError
from pkcard.secret import Secret
from pkcard.token import CardRole

BACKEND_EXE = Path(sys.executable).parent / "pkcard-backend"
TYPED = {"NONCE_REUSED", "REGISTRY_BUSY", "REGISTRY_UNAVAILABLE"}


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = 100.0  # USER_HZ
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _process_cpu(pid: int) -> float:
    """user + system CPU seconds of one process (/proc/PID/stat)."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (float(after_name[11]) + float(after_name[12])) / 100.0


@dataclass
class Outcome:
    label: str
    instances: int
    accepted: int = 0
    seconds: float = 0.0
    machine_busy: float = 0.0  # cores kept busy on average during the timed part
    backend_cores: float = 0.0  # of them, the pkcard-backend processes
    latencies: list[float] = field(default_factory=list)
    anomalies: dict[str, int] = field(default_factory=dict)

    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason
    return f"untyped {error.code().name}"


def _start(db: str, anchors: tuple[Path, Path], directory: Path, count: int
           ) -> list[tuple[subprocess.Popen[bytes], int]]:
    started = []
    for index in range(count):
        log_path = directory / f"backend-{time.monotonic_ns()}-{index}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(BACKEND_EXE), "--db", db, "--listen", "127.0.0.1:0", "--environment",
                 "test", "--pk-anchor", str(anchors[0]), "--kzz-anchor", str(anchors[1]),
                 "--dev-metadata-identity"], stderr=log, stdout=subprocess.DEVNULL)
        started.append((process, log_path))
    running = []
    for process, log_path in started:
        give_up = time.monotonic() + 60
        while True:
            found = re.search(r"listening on port (\d+)", log_path.read_text(errors="replace"))
            if found:
                running.append((process, int(found.group(1))))
                break
            if process.poll() is not None or time.monotonic() > give_up:
                raise SystemExit(f"pkcard-backend did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
    return running


def _stop(running: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    for process, _port in running:
        process.terminate()
    for process, _port in running:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"  warning: pkcard-backend {process.pid} did not stop within 30 s of "
                  "SIGTERM; killed")
            process.kill()
            process.wait()


def run_config(setup: _Setup, anchors: tuple[Path, Path], label: str, db: str, instances: int,
               args: argparse.Namespace, directory: Path) -> Outcome:
    registry = Registry(db)
    registry.add_holder(HOLDER, "Dr Bench", setup.now)
    registry.add_card(SERIAL, HOLDER, CardRole.REGULAR, setup.now,
                      auth_cert_sha256=setup.cert_sha256,
                      reactivation_password=Secret("Bench-pass-9"))
    registry.grant(HOLDER, "I002", setup.now)
    running = _start(db, anchors, directory, instances)
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _process, port in running]
    stubs = [pb_grpc.SessionServiceStub(channel) for channel in channels]
    rng = random.Random(args.seed)
    clients = args.clients
    # the work: per client, a list of (token, instance, client id); duplicates mirrored
    per_client: list[list[tuple[str, int, str]]] = [[] for _ in range(clients)]
    tokens: list[str] = []
    for n in range(args.redemptions):
        client = n % clients
        client_id = f"ws-{client}"
        instance = rng.randrange(instances)
        nonce = stubs[instance].IssueChallenge(
            pb.IssueChallengeRequest(), metadata=((CLIENT_METADATA_KEY, client_id),)).nonce
        signed = setup.token(nonce, False)
        tokens.append(signed)
        per_client[client].append((signed, instance, client_id))
        if args.duplicate_every and n % args.duplicate_every == 0:
            other = (client + 1) % clients
            per_client[other].append((signed, (instance + 1) % instances, client_id))
    outcome = Outcome(label, instances)
    accepted: dict[str, int] = {}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client_run(work: list[tuple[str, int, str]]) -> None:
        barrier.wait()
        for signed, instance, client_id in work:
            start = time.perf_counter()
            try:
                stubs[instance].RedeemToken(pb.RedeemTokenRequest(token=signed),
                                            metadata=((CLIENT_METADATA_KEY, client_id),),
                                            timeout=60)
            except grpc.RpcError as error:
                with lock:
                    errors[_reason(error)] = errors.get(_reason(error), 0) + 1
                continue
            elapsed = time.perf_counter() - start
            with lock:
                outcome.latencies.append(elapsed)
                accepted[signed] = accepted.get(signed, 0) + 1

    threads = [threading.Thread(target=client_run, args=(work,)) for work in per_client]
    for thread in threads:
        thread.start()
    busy_before, _total = _machine_busy()
    backend_before = sum(_process_cpu(process.pid) for process, _port in running)
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - start
    busy_after, _total = _machine_busy()
    backend_after = sum(_process_cpu(process.pid) for process, _port in running)

    outcome.machine_busy = (busy_after - busy_before) / outcome.seconds if outcome.seconds \
        else 0.0
    outcome.backend_cores = (backend_after - backend_before) / outcome.seconds \
        if outcome.seconds else 0.0

    outcome.accepted = sum(accepted.values())
    for channel in channels:
        channel.close()
    _stop(running)
    redeemed = sum(r.event is AuditEvent.REDEEMED for r in registry.audit_records())
    try:
        registry.verify_audit()
        chain_broken = 0
    except RegistryError:
        chain_broken = 1
    registry.close()
    outcome.anomalies = {
        "accepted twice": sum(1 for count in accepted.values() if count > 1),
        "audit rows != accepted": abs(redeemed - outcome.accepted),
        "audit chain broken": chain_broken,
        "untyped errors": sum(v for k, v in errors.items() if k not in TYPED),
        "tokens neither accepted nor refused as reused": len(
            [t for t in tokens if t not in accepted]),
    }
    if any(k not in TYPED for k in errors):
        print(f"  errors: {errors}")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redemptions", type=int, default=1200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--instances", default="1,2,4", help="PostgreSQL instance counts")
    parser.add_argument("--duplicate-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    if find_bin_dir() is None:
        raise SystemExit("no PostgreSQL binaries: install Debian's postgresql package")
    setup = _Setup()
    directory = Path(tempfile.mkdtemp(prefix="pkbench-", dir="/tmp"))
    pk, kzz = directory / "pk.pem", directory / "kzz.pem"
    pk.write_bytes(setup.pki.pk_ca.cert.public_bytes(Encoding.PEM))
    kzz.write_bytes(setup.pki.kzz_ca.cert.public_bytes(Encoding.PEM))
    server = PostgresServer.create(fsync=True)
    outcomes: list[Outcome] = []
    try:
        server.start()
        outcomes.append(run_config(setup, (pk, kzz), "sqlite", str(directory / "bench.sqlite"),
                                   1, args, directory))
        for count in (int(n) for n in args.instances.split(",")):
            url = server.create_database(f"bench_{count}_instances")
            outcomes.append(run_config(setup, (pk, kzz), "postgresql", url, count, args,
                                       directory))
    finally:
        server.remove()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.redemptions} tokens, {args.clients} client threads, every "
          f"{args.duplicate_every}th token also raced at a second instance; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{'engine':12s} {'instances':>9s} {'accepted':>8s} {'rate/s':>8s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'anomalies':>9s}   cores busy (machine / backend processes)")
    for o in outcomes:
        print(f"{o.label:12s} {o.instances:9d} {o.accepted:8d} {o.rate():8.0f} "
              f"{o.percentile(0.50):7.1f} {o.percentile(0.99):7.1f} "
              f"{sum(o.anomalies.values()):9d}   {o.machine_busy:.2f} / {o.backend_cores:.2f}")
        for name, count in o.anomalies.items():
            if count:
                print(f"    anomaly: {name}: {count}")
    sqlite = outcomes[0]
    single = next(o for o in outcomes if o.label == "postgresql" and o.instances == 1) \
        if any(o.label == "postgresql" and o.instances == 1 for o in outcomes) else outcomes[1]
    print(f"ratio postgresql/sqlite (one instance each): {single.rate() / sqlite.rate():.2f}")
    for o in outcomes[1:]:
        print(f"ratio postgresql {o.instances} instances / 1 instance: "
              f"{o.rate() / single.rate():.2f}")
    print(f"anomalies {sum(sum(o.anomalies.values()) for o in outcomes)}")


if __name__ == "__main__":
    main()
