"""The peer-credential gateway under many simultaneous connections (each its own channel)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from daemon_harness import RunningDaemon, make_root, start_daemon
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLIENTS = 64
CALLS = 5


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    root = make_root()
    running = start_daemon(root)
    yield running
    running.close()
    shutil.rmtree(root, ignore_errors=True)


def _client(socket_path: Path) -> list[int]:
    answers = []
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(CALLS):
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
            answers.append(reply.status)
    return answers


def test_every_simultaneous_client_is_spliced_through(daemon: RunningDaemon) -> None:
    socket_path = daemon.root / "run" / "pkcardd.sock"
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(_client, [socket_path] * CLIENTS))
    serving = health_pb2.HealthCheckResponse.SERVING
    assert results == [[serving] * CALLS] * CLIENTS
