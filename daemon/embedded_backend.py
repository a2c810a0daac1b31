"""The reference backend embedded in ``pkcardd --simulated``.

:class:`EmbeddedBackend` runs :mod:`backend` in process, on two Unix
sockets: a private one the daemon's :class:`~daemon.backend_link.BackendLink`
uses, and ``DIR/backend.sock`` (mode 0600) where a developer's client asks
for challenges and redeems tokens. Its SQLite registry lives in a state
directory and is seeded, once, from the test-environment PK profiles of the
simulated cards: every test holder with their regular and backup cards (the
registered authentication certificate and the reactivation password hash
taken from the profile) and the authorizations :data:`SEED_AUTHORIZATIONS`.
Trust anchors are the test PKI's test CAs; the environment is test. Callers
identify themselves by the development metadata ``x-pkcard-backend-client``.

Nothing runs before :meth:`EmbeddedBackend.start`; :meth:`EmbeddedBackend.stop`
stops the gRPC server (whose pool is its only threads) and closes the registry.

``pkcardd --simulated`` runs it in a child process of its own (:func:`main`,
``python -m pkcard.daemon.embedded_backend``, managed by
:mod:`pkcard.daemon.backend_process`): the child writes ``READY`` to its
standard output once it listens, and stops on SIGTERM, SIGINT or the end of
its standard input (the daemon's end of that pipe closes when the daemon stops
or dies).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import logging
import os
import select
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import SCRYPT_N, Registry
from pkcard.backend.service import ClientIdentity, build_server
from pkcard.coredump import forbid_core_dumps
from pkcard.daemon.backend_process import READY_LINE, BackendPlace
from pkcard.daemon.logsetup import configure_logging
from pkcard.daemon.peers import ensure_not_listening, ensure_private_dir
from pkcard.errors import RegistryConflict
from pkcard.secret import Secret
from pkcard.simcard.profile import TEST_CA_DIR, load_profile, profile_names
from pkcard.simcard.spec import CardKind, KeyUse, SecretRef
from pkcard.simcard.spec import CardRole as ProfileRole
from pkcard.simcard.spec import Environment as ProfileEnvironment
from pkcard.stop_signals import StopSignals
from pkcard.token import CardRole, Environment
from pkcard.verify import Clock, TrustAnchors

SEED_AUTHORIZATIONS = ("I002", "I003")
RESTRICTED_AUTHORIZATIONS = ("I002",)
_MAX_WORKERS = 4
EXIT_OK = 0
EXIT_REFUSED = 1
_log = logging.getLogger("pkcard.daemon.embedded_backend")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SeedCard:
    """A PK the embedded registry knows: from one test card profile."""

    serial: str
    role: CardRole
    holder_id: str
    holder_name: str
    auth_cert_der: bytes = field(repr=False)
    reactivation_password: str | None = field(default=None, repr=False)


def simulated_pk_cards() -> tuple[SeedCard, ...]:
    """The test-environment PK profiles, as registry entries (profile name order)."""
    cards: list[SeedCard] = []
    for name in profile_names():
        profile = load_profile(name)
        if (profile.kind is not CardKind.PK or profile.holder is None
                or profile.card_info.environment is not ProfileEnvironment.TEST):
            continue
        cert_path = profile.key(KeyUse.AUTHENTICATION).certificate_path
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        regular = profile.card_info.role is ProfileRole.REGULAR
        cards.append(SeedCard(
            serial=profile.card_info.serial,
            role=CardRole.REGULAR if regular else CardRole.BACKUP,
            holder_id=profile.holder.holder_id,
            holder_name=profile.holder.name,
            auth_cert_der=cert.public_bytes(Encoding.DER),
            reactivation_password=(profile.secret_value(SecretRef.REACTIVATION)
                                   if regular else None),
        ))
    return tuple(cards)


def seed_registry(
    registry: Registry,
    cards: Iterable[SeedCard],
    authorizations: Iterable[str],
    now: datetime,
) -> int:
    """Register what is missing; returns the number of cards added.

    Idempotent: a holder already registered keeps its authorizations as they
    are (a withdrawal is not undone), a registered card keeps its status and
    reactivation state. Only a newly added holder is granted ``authorizations``.
    """
    codes = tuple(authorizations)
    added = 0
    for card in cards:
        try:
            registry.add_holder(card.holder_id, card.holder_name, now)
        except RegistryConflict:
            pass
        else:
            for code in codes:
                registry.grant(card.holder_id, code, now)
        if registry.card(card.serial) is not None:
            continue
        password = (None if card.reactivation_password is None
                    else Secret(card.reactivation_password))
        try:
            registry.add_card(card.serial, card.holder_id, card.role, now,
                              auth_cert_sha256=hashlib.sha256(card.auth_cert_der).digest(),
                              reactivation_password=password)
        finally:
            if password is not None:
                password.wipe()
        added += 1
    return added


def simulated_trust_anchors() -> TrustAnchors:
    """The test PKI's test PK and KZZ CAs."""

    def load(kind: str) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_pem_x509_certificates(
            (TEST_CA_DIR / f"test-{kind}" / "ca-cert.pem").read_bytes()))

    return TrustAnchors(Environment.TEST, load("pk"), load("kzz"))


class EmbeddedBackend(BackendPlace):
    """The reference backend on ``private_socket`` (the daemon's link) and ``public_socket``."""

    def __init__(
        self,
        state_dir: Path,
        private_socket: Path,
        public_socket: Path,
        *,
        clock: Clock = _utc_now,
        scrypt_n: int = SCRYPT_N,
    ) -> None:
        super().__init__(state_dir, private_socket, public_socket)
        self._clock = clock
        self._scrypt_n = scrypt_n
        self._registry: Registry | None = None
        self._server: grpc.Server | None = None

    def start(self) -> None:
        """Open and seed the registry, listen on both sockets. Raises OSError or
        :class:`~daemon.peers.InsecureSocketDir`; on failure nothing keeps running."""
        ensure_private_dir(self.state_dir, max_mode=0o700)
        for path in (self.private_socket, self.public_socket):
            ensure_not_listening(path)
            path.unlink(missing_ok=True)
        try:
            registry = self._registry = Registry(self.database, scrypt_n=self._scrypt_n)
            seed_registry(registry, simulated_pk_cards(), SEED_AUTHORIZATIONS, self._clock())
            backend = SessionBackend(registry, simulated_trust_anchors(), self._clock,
                                     environment=Environment.TEST,
                                     restricted_authorizations=RESTRICTED_AUTHORIZATIONS)
            server = self._server = build_server(backend, registry, self._clock,
                                                 identity=ClientIdentity.METADATA,
                                                 admins=frozenset(), max_workers=_MAX_WORKERS)
            for path in (self.private_socket, self.public_socket):
                if server.add_insecure_port(f"unix:{path}") == 0:
                    raise OSError(f"cannot listen on {path}")
            server.start()
            self.public_socket.chmod(0o600)
        except BaseException:
            self.stop(0)
            raise

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and close the registry."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        for path in (self.private_socket, self.public_socket):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pkcard.daemon.embedded_backend",
        description="pkcardd --simulated's embedded test backend, as the daemon's child process")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--private-socket", type=Path, required=True)
    parser.add_argument("--public-socket", type=Path, required=True)
    parser.add_argument("--grace", type=float, default=0.0,
                        help="seconds in-flight calls get when stopped")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _return_freed_memory() -> None:
    """Give the C heap's free pages back to the kernel (glibc's ``malloc_trim``).

    Seeding hashes the reactivation passwords with scrypt (tens of MB each, freed at
    once); glibc keeps that heap: ~16 MB of the child's RSS for nothing (issue #14, G6).
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)


def _wait_for_stop(stop: StopSignals) -> None:
    """Until a stop signal arrives or standard input ends (the daemon closed it, or died)."""
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([stdin, stop.fileno()], [], [])
        if stop.fileno() in readable and stop.poll() is not None:
            return
        if stdin in readable and not os.read(stdin, 512):
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the embedded backend until stopped; exit 0, or 1 if it cannot start."""
    forbid_core_dumps()  # reactivation passwords pass through memory (docs/security.md)
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, sys.stderr, os.environ)
    with StopSignals() as stop:
        backend = EmbeddedBackend(args.state_dir, args.private_socket, args.public_socket)
        try:
            backend.start()
        except Exception as exc:  # any failure to start is reported, then exit 1
            _log.error("embedded test backend: cannot start: %s", exc)
            return EXIT_REFUSED
        _return_freed_memory()
        try:
            os.write(sys.stdout.fileno(), READY_LINE)
            _wait_for_stop(stop)
        finally:
            backend.stop(args.grace)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
