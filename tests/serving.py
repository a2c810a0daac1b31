"""Waiting for a freshly started pkcardd process: the one health poll every test rig uses."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

STARTUP_LIMIT = 30.0


def wait_serving(
    process: subprocess.Popen[bytes],
    socket_path: Path,
    log: Callable[[], str],
    stop: Callable[[], None],
) -> None:
    """Poll the health service on ``socket_path`` until SERVING.

    If the process exits, or does not serve within :data:`STARTUP_LIMIT`
    seconds, ``stop`` it and fail the test with its ``log``.
    """
    give_up = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < give_up:
        if process.poll() is not None:
            pytest.fail(f"pkcardd exited with {process.returncode}:\n{log()}")
        if socket_path.exists():
            with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                except grpc.RpcError:
                    pass
                else:
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
        time.sleep(0.05)
    stop()
    pytest.fail(f"pkcardd did not start:\n{log()}")
