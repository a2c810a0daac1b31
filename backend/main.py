"""``pkcard-backend``: run the reference backend (pkcard.backend.v1) on a TCP port.

``--db`` is a SQLite file or a ``postgresql://`` URL (several instances may
share one PostgreSQL database); ``--config FILE`` (TOML) may give ``db``,
``listen`` and ``pool_size`` instead, and a command-line option wins.

Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad arguments, unreadable files or
an unreachable database.
"""

from __future__ import annotations

import argparse
import logging
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography import x509

from pkcard import __version__
from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from pkcard.backend.service import ClientIdentity, build_server
from pkcard.coredump import forbid_core_dumps
from pkcard.errors import RegistryError, UnsafeFile
from pkcard.stop_signals import StopSignals
from pkcard.token import Environment
from pkcard.verify import TrustAnchors

_log = logging.getLogger("pkcard.backend")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _load_certs(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    certs: list[x509.Certificate] = []
    for path in paths:
        certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return tuple(certs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pkcard-backend", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path,
                        help="TOML file with db, listen and pool_size (options win)")
    parser.add_argument("--db", help="SQLite database file, or postgresql://user@host/db")
    parser.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:50551)")
    parser.add_argument("--pool-size", type=int,
                        help="PostgreSQL connections per instance (default 20)")
    parser.add_argument("--environment", choices=["test", "production"], required=True)
    parser.add_argument("--pk-anchor", type=Path, action="append", required=True,
                        help="PEM file of PK CA certificates (repeatable)")
    parser.add_argument("--kzz-anchor", type=Path, action="append", required=True,
                        help="PEM file of KZZ CA certificates (repeatable)")
    parser.add_argument("--admin", action="append", default=[],
                        help="client id allowed to call RegistryAdminService (repeatable)")
    parser.add_argument("--restricted-authorization", action="append", default=[],
                        help="authorization code a restricted session may hold (repeatable)")
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM); enables mTLS")
    parser.add_argument("--tls-key", type=Path, help="server key (PEM)")
    parser.add_argument("--client-ca", type=Path, help="CA of the clients' certificates (PEM)")
    parser.add_argument("--dev-metadata-identity", action="store_true",
                        help="without TLS: trust the x-pkcard-backend-client metadata (dev only)")
    return parser


_CONFIG_KEYS = {"db": str, "listen": str, "pool_size": int}


def _apply_config(args: argparse.Namespace) -> str | None:
    """Fill options the command line left unset from ``--config``; an error text or None."""
    if args.config is not None:
        try:
            with args.config.open("rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            return f"cannot read {args.config}: {exc}"
        for key, value in data.items():
            kind = _CONFIG_KEYS.get(key)
            if kind is None:
                return f"{args.config}: unknown setting {key!r} (known: {', '.join(_CONFIG_KEYS)})"
            if not isinstance(value, kind) or isinstance(value, bool):
                return f"{args.config}: {key} must be a {kind.__name__}"
            if getattr(args, key) is None:
                setattr(args, key, value)
    if args.db is None:
        return "no database: pass --db or set db in the --config file"
    args.listen = args.listen or "127.0.0.1:50551"
    args.pool_size = args.pool_size or 20
    return None


def main(argv: Sequence[str] | None = None) -> int:
    forbid_core_dumps()  # reactivation passwords pass through memory (docs/security.md)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    problem = _apply_config(args)
    if problem is not None:
        _log.error("%s", problem)
        return 2
    environment = Environment.TEST if args.environment == "test" else Environment.PRODUCTION
    tls = args.tls_cert is not None
    if tls and (args.tls_key is None or args.client_ca is None):
        _log.error("--tls-cert needs --tls-key and --client-ca")
        return 2
    if not tls and not args.dev_metadata_identity:
        _log.error("without --tls-cert, pass --dev-metadata-identity (development only)")
        return 2
    try:
        trust = TrustAnchors(environment, _load_certs(args.pk_anchor),
                             _load_certs(args.kzz_anchor))
        registry = Registry(args.db if args.db.startswith(("postgresql://", "postgres://"))
                            else Path(args.db), pool_size=args.pool_size)
    except (OSError, ValueError, RegistryError, UnsafeFile) as exc:
        _log.error("cannot start: %s", exc)
        return 2
    backend = SessionBackend(registry, trust, _utc_now, environment=environment,
                             restricted_authorizations=args.restricted_authorization)
    identity = ClientIdentity.MTLS if tls else ClientIdentity.METADATA
    server = build_server(backend, registry, _utc_now, identity=identity,
                          admins=frozenset(args.admin))
    if tls:
        credentials = grpc.ssl_server_credentials(
            [(args.tls_key.read_bytes(), args.tls_cert.read_bytes())],
            root_certificates=args.client_ca.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port(args.listen, credentials)
    else:
        port = server.add_insecure_port(args.listen)
    with StopSignals() as stop:
        server.start()
        _log.info("pkcard-backend listening on port %d (%s, %s registry)", port,
                  args.environment, registry.engine.name.lower())
        stop.wait()
    server.stop(grace=5).wait()
    registry.close()
    return 0
