"""Run a real ``pkcardd --simulated`` process on a private socket, for tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import serving

from pkcard.client import PkcardClient
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name


@dataclass
class RunningDaemon:
    """A pkcardd subprocess and the paths it uses."""

    root: Path
    process: subprocess.Popen[bytes]
    stderr_path: Path
    audit_path: Path
    socket_path: Path
    _channels: list[grpc.Channel] = field(default_factory=list)

    def client(self, **kwargs: object) -> PkcardClient:
        return PkcardClient(self.socket_path, **kwargs)  # type: ignore[arg-type]

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        self._channels.append(channel)
        return channel

    def insert(self, reader: str, profile: str) -> None:
        stub = simulation_pb2_grpc.SimulationServiceStub(self.channel())
        stub.InsertCard(simulation_pb2.InsertCardRequest(reader=reader, profile=profile),
                        timeout=10)

    def remove(self, reader: str) -> bool:
        stub = simulation_pb2_grpc.SimulationServiceStub(self.channel())
        response = stub.RemoveCard(simulation_pb2.RemoveCardRequest(reader=reader), timeout=10)
        return response.removed

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def terminate(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.process.poll() is None:
            self.terminate()


def make_root() -> Path:
    """A short private directory (Unix socket paths are limited to 107 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="pkd-", dir="/tmp"))
    root.chmod(0o700)
    return root


def daemon_command(root: Path, *extra: str, readers: str = "--simulated") -> list[str]:
    """The pkcardd command line; ``readers`` is ``--simulated`` or ``--pcsc``."""
    return [
        sys.executable, "-m", "pkcard.daemon.main", readers,
        "--socket-dir", str(root / "run"), "--audit-log", str(root / "audit.jsonl"),
        "--log-level", "DEBUG", *extra,
    ]


def start_daemon(root: Path, *extra: str, readers: str = "--simulated") -> RunningDaemon:
    stderr_path = root / "pkcardd.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(daemon_command(root, *extra, readers=readers), stderr=stderr,
                                   stdout=subprocess.DEVNULL)
    daemon = RunningDaemon(root, process, stderr_path, root / "audit.jsonl",
                           root / "run" / "pkcardd.sock")
    wait_serving(daemon)
    return daemon


def wait_serving(daemon: RunningDaemon) -> None:
    """Poll the health service until SERVING (the daemon exits: fail with its log)."""
    serving.wait_serving(daemon.process, daemon.socket_path, daemon.stderr, daemon.close)


