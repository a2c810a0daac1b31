"""Clients pkcard did not write, against a real ``pkcardd --simulated`` on its Unix socket.

Node's @grpc/grpc-js with the protos loaded at run time (node/conformance.js),
Python's generated stubs used raw, and ``grpc.aio``; each calls every
pkcard.v1 RPC without a deadline (what grpcurl, grpc-js, Java and .NET
clients send by default) and with one, reads the ErrorInfo reason from the
``grpc-status-details-bin`` trailer and the tries left from a failing VerifyPin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance import check_report, params, run_aio, run_raw
from daemon_harness import RunningDaemon, make_root, start_daemon

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_DEPS = Path(__file__).resolve().parents[2] / "scripts" / "node-deps"
DEADLINES = [None, 30.0]


@pytest.fixture
def pkcardd() -> Iterator[RunningDaemon]:
    root = make_root()
    daemon = start_daemon(root)
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with tests/interop/node's packages installed (npm ci when missing)."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not installed (apt-get install nodejs npm)")
    subprocess.run([str(NODE_DEPS)], check=True, timeout=300)
    return binary


@pytest.mark.parametrize("deadline_s", DEADLINES, ids=["no-deadline", "deadline"])
def test_node_grpc_js_client(node: str, pkcardd: RunningDaemon, deadline_s: float | None) -> None:
    result = subprocess.run(
        [node, str(NODE_DIR / "conformance.js"), json.dumps(params(pkcardd.socket_path,
                                                                   deadline_s))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    check_report(json.loads(result.stdout))


@pytest.mark.parametrize("deadline_s", DEADLINES, ids=["no-deadline", "deadline"])
def test_python_raw_generated_stubs(pkcardd: RunningDaemon, deadline_s: float | None) -> None:
    check_report(run_raw(pkcardd.socket_path, deadline_s))


@pytest.mark.parametrize("deadline_s", DEADLINES, ids=["no-deadline", "deadline"])
def test_python_grpc_aio(pkcardd: RunningDaemon, deadline_s: float | None) -> None:
    check_report(run_aio(pkcardd.socket_path, deadline_s))
