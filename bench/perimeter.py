"""Benchmark the cost of knowing the caller (issue #14, G2), in one run, interleaved.

A real ``pkcardd --simulated`` process; one gRPC health ``Check`` after
another, each on its own channel and connection, round-robin over:

- ``private``: the daemon's private gRPC socket (``private/grpc.sock``): no
  caller check at all, the floor;
- ``user``: our own user socket (``users/<uid>/pkcardd.sock``): the kernel
  checked the caller at ``connect``, the same gRPC server code answers; this
  is the socket pkcard's clients use (:func:`pkcard.endpoint.connect_socket`);
- ``public``: the public socket through the peer-credential gateway (the
  path of clients that do not know about user sockets, and of users who
  have none).

G2 is ``user / private`` (median); ``public / private`` is printed as the
fallback's figure. Prints one ``GOAL G2`` line and the load average at
start and end.

Usage: .venv/bin/python -m bench.perimeter [--quick] [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.daemon import BenchError, Stats, start_pkcardd
from pkcard.daemon.server import GRPC_SOCKET_NAME, PRIVATE_DIR_NAME
from pkcard.endpoint import connect_socket, user_socket

GOAL_G2 = 1.10
WARM_UP_CALLS = 50
NAMES = ("private", "user", "public")


def _channel(path: Path) -> grpc.Channel:
    """A channel with its own connection (not shared through gRPC's global subchannel pool)."""
    return grpc.insecure_channel(f"unix:{path}", options=[("grpc.use_local_subchannel_pool", 1)])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} {five:.2f}"


def measure(public: Path, calls: int) -> dict[str, Stats]:
    """Interleave a health Check on the private, user and public sockets ``calls`` times."""
    mine = user_socket(public, os.geteuid())
    if connect_socket(public, {}) != mine:
        raise BenchError(f"pkcardd offers us no user socket at {mine}")
    paths = (public.parent / PRIVATE_DIR_NAME / GRPC_SOCKET_NAME, mine, public)
    channels = [_channel(path) for path in paths]
    request = health_pb2.HealthCheckRequest()
    stubs = [health_pb2_grpc.HealthStub(channel) for channel in channels]
    runs: list[Callable[[], object]] = [
        (lambda stub=stub: stub.Check(request, timeout=10)) for stub in stubs
    ]
    samples: dict[str, list[float]] = {name: [] for name in NAMES}
    try:
        for _ in range(WARM_UP_CALLS):
            for call in runs:
                call()
        for _ in range(calls):
            for name, call in zip(NAMES, runs, strict=True):
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    finally:
        for channel in channels:
            channel.close()
    return {name: Stats.of(values) for name, values in samples.items()}


def report(stats: dict[str, Stats]) -> None:
    floor = stats["private"].median
    print(f"gRPC health Check, {stats['private'].count} calls each, interleaved")
    for name in NAMES:
        s = stats[name]
        print(f"  {name:8s} median {s.median * 1e3:7.3f} ms  p99 {s.p99 * 1e3:7.3f} ms  "
              f"x{s.median / floor:5.2f} of private")
    ratio = stats["user"].median / floor
    fallback = stats["public"].median / floor
    print(f"  caller check on the user socket: {(stats['user'].median - floor) * 1e3:+.3f} ms;"
          f" through the public socket's gateway: {(stats['public'].median - floor) * 1e3:+.3f}"
          f" ms (x{fallback:.2f}, the fallback)")
    verdict = "ok" if ratio <= GOAL_G2 else "MISSED"
    print(f"GOAL G2 measured={ratio:.2f} goal<={GOAL_G2:.2f} {verdict}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.perimeter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 calls: a smoke run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    calls = 200 if args.quick else args.calls
    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory(prefix="pkbench-", dir="/tmp") as workdir:
        daemon = start_pkcardd(Path(workdir), "simulated", audit=True)
        try:
            stats = measure(daemon.socket_path, calls)
        except BenchError as exc:
            print(f"bench.perimeter: {exc}", file=sys.stderr)
            return 1
        finally:
            daemon.stop()
    report(stats)
    print(f"load average at end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
