"""The pkcardd server object: owns every thread and resource of the daemon.

:class:`Daemon` wires the reader system, the per-reader workers, the event
hub, the audit log, the gRPC server (private socket, optional mutual-TLS
TCP), health and reflection, the public-socket :class:`PeerGateway`, one
gRPC server for each allowed user's own socket (:mod:`pkcard.daemon.user_sockets`;
they share the services, the thread pool and the interceptors), and
with simulated readers and no configured backend the embedded reference
backend (:mod:`pkcard.daemon.embedded_backend`) as a child process
(:mod:`pkcard.daemon.backend_process`).
Nothing runs before :meth:`Daemon.start`; :meth:`Daemon.stop` undoes it all.
"""

from __future__ import annotations

import functools
import grp
import logging
import os
import socket
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from pkcard.daemon.access import AccessControl, KnownCallerInterceptor
from pkcard.daemon.activation import ActivationPrerequisites
from pkcard.daemon.admission import AdmissionInterceptor, CallExecutor, unknown_method_handler
from pkcard.daemon.audit import AuditEntry, AuditLog
from pkcard.daemon.backend_link import BackendLink
from pkcard.daemon.calllog import CallLogInterceptor
from pkcard.daemon.card_backends import CardBackends
from pkcard.daemon.config import BackendConfig, DaemonConfig, ReaderBackend
from pkcard.daemon.errors import ErrorMappingInterceptor
from pkcard.daemon.events import EventHub, SessionEndedEvent
from pkcard.daemon.health import HealthServicer, ServiceHealth
from pkcard.daemon.holder import HolderCalls, HolderServicer
from pkcard.daemon.peer_limits import connection_limits, raise_fd_limit
from pkcard.daemon.peers import (
    PeerGateway,
    bind_public_socket,
    ensure_not_listening,
    ensure_private_dir,
    ensure_trusted_ancestors,
)
from pkcard.daemon.pin_credits import PinCredits
from pkcard.daemon.pin_entry import PinEntryPolicy
from pkcard.daemon.ratelimit import FailedPinLimiter
from pkcard.daemon.reflection import add_reflection
from pkcard.daemon.services import Auditor, CardServicer, ReaderServicer
from pkcard.daemon.sessions import SessionRegistry, SessionServicer, audit_session_end
from pkcard.daemon.signatures import (
    SignatureServicer,
    load_trust_anchors,
    simulated_trust_anchor_paths,
)
from pkcard.daemon.stream_limits import StreamLimitInterceptor, stream_slots
from pkcard.daemon.user_sockets import (
    AclUnsupported,
    UserSocket,
    clear_users_dir,
    prepare_user_dir,
    remove_user_sockets,
    restrict_socket,
    served_users,
)
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import AuditUnavailable, BackendProcessFailed, SessionEndReason
from pkcard.readers import ReaderSystem
from pkcard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    holder_pb2,
    holder_pb2_grpc,
    readers_pb2,
    readers_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    signatures_pb2,
    signatures_pb2_grpc,
    simulation_pb2,
    simulation_pb2_grpc,
)

if TYPE_CHECKING:
    from cryptography import x509

    from pkcard.daemon.backend_process import BackendProcess
    from pkcard.daemon.interceptors import ServerInterceptor

Register = Callable[[grpc.Server], None]

_log = logging.getLogger(__name__)

PRIVATE_DIR_NAME = "private"
GRPC_SOCKET_NAME = "grpc.sock"
MAX_UNIX_PATH = 107  # sun_path is 108 bytes with the terminating NUL


class StartupError(RuntimeError):
    """The daemon cannot start; the message says why."""


def _group_id(name: str | None) -> int | None:
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartupError(f"socket group {name!r} does not exist") from None


def _service_names(simulated: bool) -> list[str]:
    names = [
        readers_pb2.DESCRIPTOR.services_by_name["ReaderService"].full_name,
        cards_pb2.DESCRIPTOR.services_by_name["CardService"].full_name,
        sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
        signatures_pb2.DESCRIPTOR.services_by_name["SignatureService"].full_name,
        holder_pb2.DESCRIPTOR.services_by_name["HolderService"].full_name,
    ]
    if simulated:
        names.append(simulation_pb2.DESCRIPTOR.services_by_name["SimulationService"].full_name)
    return names


class Daemon:
    """One pkcardd instance. ``listener``: an inherited, listening public socket (systemd)."""

    def __init__(
        self,
        config: DaemonConfig,
        readers: ReaderSystem,
        *,
        listener: socket.socket | None = None,
    ) -> None:
        self.config = config
        self._readers = readers
        self._inherited_listener = listener
        self._private_dir = config.socket_dir / PRIVATE_DIR_NAME
        self._audit: AuditLog | None = None
        self._gateway: PeerGateway | None = None
        self._server: grpc.Server | None = None
        self._user_servers: list[grpc.Server] = []
        self._user_sockets: list[UserSocket] = []
        self._health = HealthServicer()
        self._service_health = ServiceHealth(self._health)
        self._executor: CallExecutor | None = None
        self._workers = ReaderWorkers(readers, queue_size=config.limits.max_concurrent_rpcs,
                                      call_timeout=config.limits.call_timeout_s,
                                      idle_release_s=config.limits.card_idle_release_s)
        self._card_backends = CardBackends(config.card_backends, self._workers)
        self._hub = EventHub(
            readers,
            queue_size=config.limits.event_queue_size,
            max_subscribers=max(1, config.limits.worker_threads // 2),
        )
        self._auditor: Auditor | None = None
        self._backend: BackendLink | None = None
        self._embedded_backend: BackendProcess | None = None
        limits = config.limits
        self._sessions = SessionRegistry(
            self._session_ended, max_per_caller=limits.max_sessions_per_caller,
            idle_timeout_s=limits.session_idle_timeout_s,
            max_lifetime_s=limits.session_max_lifetime_s,
        )
        self._hub.add_listener(self._sessions.on_reader_event)
        self._workers.add_listener(self._sessions.on_card_lost)  # CARD_RESET for a reset
        self._hub.add_listener(self._service_health.on_reader_event)

    def _session_ended(self, event: SessionEndedEvent) -> None:
        self._hub.publish(event)
        if self._auditor is not None:
            audit_session_end(self._auditor)(event)

    @property
    def socket_path(self) -> Path:
        return self.config.socket_path

    @property
    def audit_log(self) -> AuditLog | None:
        return self._audit

    def start(self) -> None:
        """Check directories, open the audit log, start serving.

        Raises :class:`~daemon.peers.InsecureSocketDir`, :class:`~daemon.audit.AuditLogCorrupt`,
        :class:`~pkcard.errors.UnsafeFile` (the audit log or its head file),
        :class:`~pkcard.errors.AuditUnavailable`, :class:`StartupError` or :class:`OSError`;
        whatever was started is stopped again.
        """
        config = self.config
        longest = self._private_dir / f"peer-{'9' * 12}.sock"
        if len(bytes(longest)) > MAX_UNIX_PATH:
            raise StartupError(
                f"socket directory {config.socket_dir} is too long for Unix socket paths "
                f"(at most {MAX_UNIX_PATH - len(bytes(longest)) + len(bytes(config.socket_dir))}"
                " bytes)"
            )
        ensure_trusted_ancestors(config.socket_dir)
        ensure_private_dir(config.socket_dir, max_mode=0o755)
        ensure_private_dir(self._private_dir, max_mode=0o700)
        ensure_not_listening(self._private_dir / GRPC_SOCKET_NAME)
        if self._inherited_listener is None:
            ensure_not_listening(config.socket_path)
        for stale in self._private_dir.glob("*.sock"):
            stale.unlink()
        clear_users_dir(config.socket_path)
        embedded = None
        if config.backend is None and self._simulated:
            embedded = self._spawn_embedded_backend()  # it starts while the daemon does
        if config.audit_log is not None:
            self._audit = AuditLog(config.audit_log, max_file_bytes=config.audit_rotate_bytes)
        listener = self._inherited_listener
        try:
            if listener is None:
                listener = bind_public_socket(config.socket_path, _group_id(config.socket_group))
            self._gateway = PeerGateway(
                listener, self._private_dir / GRPC_SOCKET_NAME, self._private_dir,
                connection_limits(config.limits),
            )
            access = AccessControl(config.access, self._gateway)
            auditor = Auditor(self._audit, access)
            self._auditor = auditor
            backend = config.backend
            if embedded is not None:
                backend = BackendConfig(embedded.address)
            if backend is not None:
                self._backend = BackendLink(backend, config.workstation_id)
            self._server = self._build_server(access, auditor)
            if embedded is not None:
                self._wait_embedded_backend(embedded)
            self._record("DAEMON_START")
            self._hub.start()
            self._server.start()
            for user_server in self._user_servers:
                user_server.start()
            self._gateway.start()
        except BaseException:
            self._abort_start(listener)
            raise
        self._service_health.serve(_service_names(self._simulated))
        _log.info("pkcardd listening on %s", config.socket_path)

    @property
    def embedded_backend(self) -> BackendProcess | None:
        """The reference backend child process, when this daemon runs one."""
        return self._embedded_backend

    def _spawn_embedded_backend(self) -> BackendProcess:
        # Imported only here: a production daemon never starts the test backend.
        from pkcard.daemon.backend_process import (  # noqa: PLC0415
            SOCKET_NAME,
            BackendProcess,
        )

        state_dir = self.config.state_dir or self._private_dir
        embedded = BackendProcess(state_dir, self._private_dir / SOCKET_NAME,
                                  self.config.socket_dir / SOCKET_NAME,
                                  grace_s=self.config.limits.grace_seconds)
        try:
            embedded.spawn()
        except OSError as exc:
            raise StartupError(f"cannot start the embedded backend: {exc}") from None
        self._embedded_backend = embedded
        return embedded

    def _wait_embedded_backend(self, embedded: BackendProcess) -> None:
        try:
            embedded.wait_ready()
        except BackendProcessFailed as exc:
            raise StartupError(f"cannot start the embedded backend: {exc}") from None
        _log.info("embedded test backend (pid %s) on %s (database %s)", embedded.pid,
                  embedded.public_socket, embedded.database)

    @property
    def _simulated(self) -> bool:
        return self.config.reader_backend is ReaderBackend.SIMULATED

    def _build_server(self, access: AccessControl, auditor: Auditor) -> grpc.Server:
        """The private-socket (and TCP) server; also builds :attr:`_user_servers`."""
        limits = self.config.limits
        # Our own cap instead of grpc's maximum_concurrent_rpcs: its refusals carry ErrorInfo.
        self._executor = CallExecutor(limits.worker_threads, limits.max_concurrent_rpcs,
                                      thread_name_prefix="pkcardd-rpc")
        interceptors: list[ServerInterceptor] = [
            CallLogInterceptor(access),
            AdmissionInterceptor(self._executor),
            StreamLimitInterceptor(access, stream_slots(limits)),
            ErrorMappingInterceptor(access, on_refused=auditor.refused),
        ]
        register = self._services(access, auditor)
        server = self._new_server(interceptors, register)
        grpc_socket = self._private_dir / GRPC_SOCKET_NAME
        if server.add_insecure_port(f"unix:{grpc_socket}") == 0:
            raise StartupError(f"cannot listen on {grpc_socket}")
        tcp = self.config.tcp
        if tcp is not None:
            credentials = grpc.ssl_server_credentials(
                [(tcp.server_key.read_bytes(), tcp.server_certificate.read_bytes())],
                root_certificates=tcp.client_ca.read_bytes(),
                require_client_auth=True,
            )
            if server.add_secure_port(tcp.address, credentials) == 0:
                raise StartupError(f"cannot listen on {tcp.address}")
        self._build_user_servers(interceptors, register)
        return server

    def _new_server(self, interceptors: Sequence[ServerInterceptor], register: Register,
                    options: Sequence[tuple[str, int]] = ()) -> grpc.Server:
        limits = self.config.limits
        assert self._executor is not None, "made by _build_server"
        server = grpc.server(
            self._executor,
            interceptors=list(interceptors),
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
                *options,
            ],
        )
        register(server)
        return server

    def _build_user_servers(self, interceptors: Sequence[ServerInterceptor],
                            register: Register) -> None:
        """A server on each allowed user's own socket (see :mod:`pkcard.daemon.user_sockets`)."""
        limits = self.config.limits
        # Like the gateway's cap per uid, so one user cannot take every descriptor.
        cap = min(limits.max_connections_per_uid, limits.max_connections)
        users = served_users(self.config.access, limits.max_user_sockets)
        raise_fd_limit(limits.max_connections, direct=len(users) * cap)
        for user in users:
            try:
                path = prepare_user_dir(self.config.socket_path, user)
            except AclUnsupported:
                _log.info("no POSIX ACLs under %s: uid %d uses the public socket",
                          self.config.socket_dir, user.uid)
                continue
            server = self._new_server(
                [KnownCallerInterceptor(user), *interceptors], register,
                [("grpc.max_allowed_incoming_connections", cap)],
            )
            if server.add_insecure_port(f"unix:{path}") == 0:
                raise StartupError(f"cannot listen on {path}")
            self._user_servers.append(server)
            self._user_sockets.append(UserSocket(path, user))
            restrict_socket(path, user)

    def _services(self, access: AccessControl, auditor: Auditor) -> Register:
        """Make every servicer once; the function that adds them all to a server."""
        limits = self.config.limits
        readers = ReaderServicer(self._readers, self._hub)
        pin_limiter = FailedPinLimiter(limits.failed_pin_limit, limits.failed_pin_window_s)
        credits = PinCredits(limits.pin_reuse_s, lambda context: access.identify(context).key)
        # One policy for every secret the daemon presents, whichever service presents it.
        pin_entry = PinEntryPolicy(
            allow_host_pin_entry=self.config.host_pin_entry_allowed, limiter=pin_limiter,
            credits=credits, announce=self._hub.publish)
        self._workers.add_listener(credits.on_card_lost)  # a reset card's credits are void
        holder = HolderCalls(self._card_backends, self._backend, pin_entry=pin_entry)
        cards = CardServicer(
            self._card_backends, auditor, pin_entry=pin_entry,
            activation=ActivationPrerequisites(self._readers, self._backend),
            change_reactivation=holder.change_password,
        )
        missing = self._card_backends.missing_modules()
        if missing:
            raise StartupError(f"card_backends: no PKCS#11 module at {missing[0]}")
        anchor_paths = self.config.signature_trust_anchors
        anchors: Sequence[x509.Certificate] | Callable[[], Sequence[x509.Certificate]]
        if anchor_paths is None and self._simulated:
            # The built-in test PKI: parsed at the first VerifySignature (issue #14, G6).
            anchors = functools.cache(partial(load_trust_anchors,
                                              simulated_trust_anchor_paths()))
        else:
            try:
                anchors = load_trust_anchors(anchor_paths or ())
            except (OSError, ValueError) as exc:
                raise StartupError(f"cannot load signature_trust_anchors: {exc}") from None
        signatures = SignatureServicer(
            self._card_backends, auditor, anchors, pin_entry=pin_entry,
            check_signature=holder.check_signature,
        )
        holder_servicer = HolderServicer(holder, auditor)
        sessions = SessionServicer(
            self._card_backends, self._sessions, auditor,
            workstation_id=self.config.workstation_id, pin_entry=pin_entry,
            backend=self._backend, access=access,
        )
        simulation = None
        if self._simulated:
            # Imported only here: a production daemon never loads the simulator.
            from pkcard.daemon.simulation import SimulationServicer  # noqa: PLC0415

            simulation = SimulationServicer(self._readers, auditor)
        names = (*_service_names(self._simulated), health.SERVICE_NAME)

        def register(server: grpc.Server) -> None:
            readers_pb2_grpc.add_ReaderServiceServicer_to_server(readers, server)
            cards_pb2_grpc.add_CardServiceServicer_to_server(cards, server)
            signatures_pb2_grpc.add_SignatureServiceServicer_to_server(signatures, server)
            holder_pb2_grpc.add_HolderServiceServicer_to_server(holder_servicer, server)
            sessions_pb2_grpc.add_SessionServiceServicer_to_server(sessions, server)
            if simulation is not None:
                simulation_pb2_grpc.add_SimulationServiceServicer_to_server(simulation, server)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            add_reflection(server, names)
            server.add_generic_rpc_handlers((unknown_method_handler(),))  # after every service

        return register

    def _abort_start(self, listener: socket.socket | None) -> None:
        """Undo a failed :meth:`start` as far as it got."""
        if self._server is not None:
            self._server.stop(None)
        for user_server in self._user_servers:
            user_server.stop(None)
        remove_user_sockets(self._user_sockets)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._hub.stop()
        if self._backend is not None:
            self._backend.close()
        if self._embedded_backend is not None:
            self._embedded_backend.stop(0)
        if self._gateway is not None:
            self._gateway.stop()
        if listener is not None and self._inherited_listener is None:
            listener.close()
            self.config.socket_path.unlink(missing_ok=True)
        if self._audit is not None:
            self._audit.close()

    def _record(self, operation: str) -> None:
        """A durable start or stop record. Raises :class:`AuditUnavailable`."""
        if self._audit is not None:
            head = self._audit.append(
                AuditEntry(operation=operation, outcome="OK", pid=os.getpid(), uid=os.getuid()),
                durable=True,
            )
            stats = self._audit.stats
            _log.info("audit log head: seq %d %s (%d records, %d commits since start)",
                      head.seq, head.hash, stats.records, stats.commits)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting; let in-flight calls finish within ``grace`` seconds; release all."""
        grace = self.config.limits.grace_seconds if grace is None else grace
        self._service_health.stop()
        if self._gateway is not None:
            self._gateway.stop_accepting()
        if self._server is not None:
            stopping = [server.stop(grace) for server in (self._server, *self._user_servers)]
            self._hub.stop()
            for done in stopping:
                done.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._hub.stop()
        self._sessions.end_all(SessionEndReason.DAEMON_STOPPING)
        if self._backend is not None:
            self._backend.close()
        if self._embedded_backend is not None:
            self._embedded_backend.stop(grace)
        if self._gateway is not None:
            self._gateway.stop()
        stuck = self._workers.stop(timeout=grace)
        for reader in stuck:
            _log.warning("reader %r: its card never answered; leaving its worker behind", reader)
        self._card_backends.close()
        self._readers.close()
        if self._inherited_listener is None:
            self.config.socket_path.unlink(missing_ok=True)
        (self._private_dir / GRPC_SOCKET_NAME).unlink(missing_ok=True)
        remove_user_sockets(self._user_sockets)
        try:
            self._record("DAEMON_STOP")
        except AuditUnavailable as exc:
            _log.error("audit record DAEMON_STOP lost: %s", exc)
        if self._audit is not None:
            self._audit.close()
