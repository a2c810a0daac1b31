"""Helpers of the embedded-backend tests: ``pkcardd --simulated`` as a real process.

The daemon runs with nothing else: no ``backend`` in its configuration, so
it starts the reference backend in process. The tests reach the daemon on
``DIR/pkcardd.sock`` and the embedded backend on ``DIR/backend.sock``.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from serving import wait_serving

from pkcard.backend.registry import AuditRecord, Registry
from pkcard.backend.service import CLIENT_METADATA_KEY
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.backend.v1 import backend_pb2_grpc as bpb_grpc
from pkcard.client import PkcardClient
from pkcard.daemon.backend_process import DATABASE_NAME, SOCKET_NAME
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import make_possession_proof
from pkcard.tools.pkpin.cli import run
from pkcard.tools.pkpin.messages import ExitCode
from pkcard.tools.pkpin.terminal import Terminal

ROOT = Path(__file__).resolve().parents[2]
WORKSTATION = "ws-embedded-01"
DEVELOPER = "dev-client"  # the client id a developer's script uses at backend.sock


def profile_secret(profile: str, ref: SecretRef) -> str:
    return load_profile(profile).secret_value(ref)


def refusal_reason(error: grpc.RpcError) -> str:
    """The backend's ErrorInfo reason of a refused call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def possession_proof(stub: bpb_grpc.SessionServiceStub, client: str, serial: str,
                     profile: str = "pk-regular") -> bpb.PossessionProof:
    """A simulated ``profile`` card (PIN verified) signs a fresh challenge of ``client``."""
    nonce = stub.IssueChallenge(bpb.IssueChallengeRequest(),
                                metadata=((CLIENT_METADATA_KEY, client),), timeout=10).nonce
    card = ProfessionalCard.over(InProcessConnection(
        SimulatedCard.from_profile(load_profile(profile))))
    data = card.read_card()
    with Secret(profile_secret(profile, SecretRef.PIN)) as pin:
        card.verify(PinRef.PIN, pin)
    proof = make_possession_proof(nonce, serial, (data.auth_certificate.der,), card.authenticate)
    return bpb.PossessionProof(nonce=proof.nonce, certificate_chain=list(proof.chain),
                               signature=proof.signature)


@dataclass
class EmbeddedDaemon:
    """A ``pkcardd --simulated`` process and channels to its two sockets."""

    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / "pkcardd.sock"

    @property
    def backend_socket(self) -> Path:
        return self.socket_dir / SOCKET_NAME

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> PkcardClient:
        return PkcardClient(self.socket_path, timeout=60)

    def challenge(self) -> bytes:
        with grpc.insecure_channel(f"unix:{self.backend_socket}") as channel:
            reply = bpb_grpc.SessionServiceStub(channel).IssueChallenge(
                bpb.IssueChallengeRequest(), metadata=((CLIENT_METADATA_KEY, DEVELOPER),),
                timeout=10)
        return bytes(reply.nonce)

    def redeem(self, token: str) -> bpb.RedeemTokenResponse:
        with grpc.insecure_channel(f"unix:{self.backend_socket}") as channel:
            reply: bpb.RedeemTokenResponse = bpb_grpc.SessionServiceStub(channel).RedeemToken(
                bpb.RedeemTokenRequest(token=token),
                metadata=((CLIENT_METADATA_KEY, DEVELOPER),), timeout=10)
        return reply

    def audit(self) -> tuple[AuditRecord, ...]:
        """The embedded backend's audit table, read from its database file."""
        registry = Registry(self.state_dir / DATABASE_NAME)
        try:
            return registry.audit_records()
        finally:
            registry.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_daemon(root: Path) -> EmbeddedDaemon:
    """Start ``pkcardd --simulated`` on ``root/run`` with its state in ``root/state``."""
    config = root / "pkcardd.toml"
    config.write_text(f'workstation_id = "{WORKSTATION}"\n')
    log_path = root / "pkcardd.log"
    command = [
        sys.executable, "-m", "pkcard.daemon.main", "--simulated", "--config", str(config),
        "--socket-dir", str(root / "run"), "--state-dir", str(root / "state"),
        "--log-level", "DEBUG",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    daemon = EmbeddedDaemon(root, process, log_path)
    _wait_serving(daemon)
    return daemon


def _wait_serving(daemon: EmbeddedDaemon) -> None:
    wait_serving(daemon.process, daemon.socket_path, daemon.log, daemon.stop)


class ScriptedTerminal(Terminal):
    """A terminal whose holder types ``answers`` in turn."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__(-1)
        self._answers = answers

    def read_secret(self, prompt: str) -> Secret:
        return Secret(self._answers.pop(0))


def pkpin_reactivate(daemon: EmbeddedDaemon, reader: str, password: str) -> tuple[ExitCode, str]:
    """``pkpin --socket ... --reader READER reactivate`` with ``password`` and the PIN typed."""
    out, err = io.StringIO(), io.StringIO()
    pin = profile_secret("pk-regular", SecretRef.PIN)  # the card proves it is in the reader
    terminal: Callable[[], Terminal] = lambda: ScriptedTerminal([password, pin])  # noqa: E731
    code = run(["--socket", str(daemon.socket_path), "--reader", reader, "reactivate"],
               environ={"LANG": "C"}, out=out, err=err, open_terminal=terminal)
    return code, out.getvalue() + err.getvalue()
