"""Helpers for the session tests: a real backend gRPC server, a real pkcardd process."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from cryptography import x509
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from serving import wait_serving

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from pkcard.backend.service import CLIENT_METADATA_KEY, ClientIdentity, build_server
from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.backend.v1 import backend_pb2_grpc as bpb_grpc
from pkcard.client import PkcardClient, ReaderSnapshot, WatchItem, watch_item
from pkcard.pk import ProfessionalCard
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.token import CardRole, Environment
from pkcard.v1 import readers_pb2, readers_pb2_grpc, simulation_pb2, simulation_pb2_grpc
from pkcard.verify import TrustAnchors

ROOT = Path(__file__).resolve().parents[2]
PKI = ROOT / "fixtures" / "pki"
WORKSTATION = "ws-sessions-01"
REGISTRY_ADMIN = "registry-admin"
AUTHORIZATIONS = ("I002", "I003")
RESTRICTED_SET = ("I002",)
FAST_SCRYPT_N = 2**10
EVENT_LIMIT = 10.0  # how long a test waits for an expected event before failing
T = TypeVar("T")


def profile_secret(profile: str, ref: SecretRef) -> str:
    return load_profile(profile).secret_value(ref)


def _anchors() -> TrustAnchors:
    def load(kind: str) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_pem_x509_certificates(
            (PKI / "ca" / f"test-{kind}" / "ca-cert.pem").read_bytes()))

    return TrustAnchors(Environment.TEST, load("pk"), load("kzz"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BackendRig:
    """The reference backend on a Unix socket, with the pk-regular/pk-backup holder registered.

    The cards are registered by a separate admin client id; the workstation is
    no admin (pkcardd reactivates through the holder-facing
    SessionService.ReactivateCard). Clients identify themselves by metadata
    (development identity).
    """

    def __init__(self, root: Path) -> None:
        self.socket = root / "backend.sock"
        self.registry = Registry(root / "backend.sqlite", scrypt_n=FAST_SCRYPT_N)
        backend = SessionBackend(self.registry, _anchors(), _utc_now,
                                 environment=Environment.TEST,
                                 restricted_authorizations=RESTRICTED_SET)
        self.server = build_server(backend, self.registry, _utc_now,
                                   identity=ClientIdentity.METADATA,
                                   admins=frozenset({REGISTRY_ADMIN}))
        if self.server.add_insecure_port(f"unix:{self.socket}") == 0:
            raise RuntimeError("cannot listen on the backend socket")
        self.server.start()
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        self.sessions = bpb_grpc.SessionServiceStub(self.channel)
        self.admin = bpb_grpc.RegistryAdminServiceStub(self.channel)
        self._register()

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    _metadata = ((CLIENT_METADATA_KEY, WORKSTATION),)
    _admin_metadata = ((CLIENT_METADATA_KEY, REGISTRY_ADMIN),)

    def _register(self) -> None:
        first = True
        for profile in ("pk-regular", "pk-backup"):
            data = ProfessionalCard.over(InProcessConnection(
                SimulatedCard.from_profile(load_profile(profile)))).read_card()
            if first:
                self.admin.AddHolder(bpb.AddHolderRequest(holder_id=data.holder_id,
                                                          name=data.holder_name),
                                     metadata=self._admin_metadata)
                for code in AUTHORIZATIONS:
                    self.admin.GrantAuthorization(bpb.GrantAuthorizationRequest(
                        holder_id=data.holder_id, code=code), metadata=self._admin_metadata)
                first = False
            regular = data.role is CardRole.REGULAR
            self.admin.AddCard(bpb.AddCardRequest(
                card_serial=data.card_serial, holder_id=data.holder_id,
                role=bpb.CARD_ROLE_REGULAR if regular else bpb.CARD_ROLE_BACKUP,
                auth_cert_der=data.auth_certificate.der,
                reactivation_password=(profile_secret(profile, SecretRef.REACTIVATION)
                                       if regular else ""),
            ), metadata=self._admin_metadata)

    def challenge(self) -> bytes:
        reply = self.sessions.IssueChallenge(bpb.IssueChallengeRequest(),
                                             metadata=self._metadata, timeout=10)
        return bytes(reply.nonce)

    def redeem(self, token: str) -> bpb.RedeemTokenResponse:
        reply: bpb.RedeemTokenResponse = self.sessions.RedeemToken(
            bpb.RedeemTokenRequest(token=token), metadata=self._metadata, timeout=10)
        return reply

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        self.registry.close()


def refusal_reason(error: grpc.RpcError) -> str:
    """The backend's ErrorInfo reason of a refused call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


@dataclass
class Pkcardd:
    """A pkcardd subprocess on a private socket."""

    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    socket_path: Path
    audit_path: Path
    _channels: list[grpc.Channel] = field(default_factory=list)

    def client(self) -> PkcardClient:
        return PkcardClient(self.socket_path, timeout=60)

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        self._channels.append(channel)
        return channel

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def insert(self, reader: str, profile: str) -> None:
        """Put a fresh card of ``profile`` into a simulated reader."""
        simulation_pb2_grpc.SimulationServiceStub(self.channel()).InsertCard(
            simulation_pb2.InsertCardRequest(reader=reader, profile=profile), timeout=10)

    def remove(self, reader: str) -> bool:
        reply = simulation_pb2_grpc.SimulationServiceStub(self.channel()).RemoveCard(
            simulation_pb2.RemoveCardRequest(reader=reader), timeout=10)
        return bool(reply.removed)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pks-", dir="/tmp"))
    root.chmod(0o700)
    return root


def start_pkcardd(root: Path, *, simulated: bool, backend: str | None,
                  extra_config: str = "") -> Pkcardd:
    """``extra_config``: TOML appended to the config (tables such as ``[[card_backends]]``)."""
    config = root / "pkcardd.toml"
    lines = [f'workstation_id = "{WORKSTATION}"']
    if backend is not None:
        lines.append(f'backend = "{backend}"')
    if not simulated:
        lines.append("allow_host_pin_entry = true")
    config.write_text("\n".join(lines) + "\n" + extra_config)
    log_path = root / "pkcardd.log"
    command = [
        sys.executable, "-m", "pkcard.daemon.main", "--simulated" if simulated else "--pcsc",
        "--config", str(config), "--socket-dir", str(root / "run"),
        "--audit-log", str(root / "audit.jsonl"), "--log-level", "DEBUG",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT)
    daemon = Pkcardd(root, process, log_path, root / "run" / "pkcardd.sock",
                     root / "audit.jsonl")
    _wait_serving(daemon)
    return daemon


def _wait_serving(daemon: Pkcardd) -> None:
    wait_serving(daemon.process, daemon.socket_path, daemon.log, daemon.close)


@dataclass
class Rig:
    backend: BackendRig
    daemon: Pkcardd


def rig(*, simulated: bool, extra_config: Callable[[Path], str] | None = None) -> Iterator[Rig]:
    """A backend and a pkcardd pointing at it; torn down after use.

    ``extra_config(root)`` may prepare files under the rig's root and returns
    TOML for the daemon's configuration.
    """
    root = make_root()
    backend = BackendRig(root)
    try:
        extra = "" if extra_config is None else extra_config(root)
        daemon = start_pkcardd(root, simulated=simulated, backend=backend.address,
                               extra_config=extra)
        try:
            yield Rig(backend, daemon)
        finally:
            daemon.close()
    finally:
        backend.close()
        shutil.rmtree(root, ignore_errors=True)


class EventCollector:
    """Reads a WatchEvents stream on a thread the test owns; :meth:`stop` cancels it."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._items: queue.Queue[WatchItem] = queue.Queue()
        self._call = readers_pb2_grpc.ReaderServiceStub(channel).WatchEvents(
            readers_pb2.WatchEventsRequest())
        self._thread = threading.Thread(target=self._run, name="test-watch-events")
        self._thread.start()
        self.next(ReaderSnapshot)  # the stream is live once its snapshot arrived

    def _run(self) -> None:
        try:
            for message in self._call:
                self._items.put(watch_item(message))
        except grpc.RpcError:
            return

    def next(self, wanted: type[T], limit: float = EVENT_LIMIT) -> T:
        """The next item of type ``wanted`` (others are skipped); fails after ``limit`` s."""
        give_up = time.monotonic() + limit
        while (left := give_up - time.monotonic()) > 0:
            try:
                item = self._items.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(item, wanted):
                return item
        pytest.fail(f"no {wanted.__name__} within {limit} s")

    def stop(self) -> None:
        self._call.cancel()  # type: ignore[no-untyped-call]
        self._thread.join()
