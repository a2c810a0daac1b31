"""``pkcardd``: the local gRPC daemon serving PK and KZZ cards to clinic software.

Exit codes: 0 clean shutdown (SIGTERM/SIGINT); 1 refused to start (unsafe
socket directory, corrupt or unsafe audit log, cannot listen, a ``pkcs11`` card
backend without the ``pkcs11`` extra); 2 bad configuration or flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pkcard
from pkcard.coredump import forbid_core_dumps
from pkcard.daemon.audit import AuditLogCorrupt
from pkcard.daemon.config import (
    MIN_AUDIT_ROTATE_BYTES,
    BackendConfig,
    ConfigError,
    DaemonConfig,
    ReaderBackend,
    TcpConfig,
    load_config,
)
from pkcard.daemon.logsetup import configure_logging
from pkcard.daemon.peers import InsecureSocketDir
from pkcard.daemon.server import Daemon, StartupError
from pkcard.endpoint import DEFAULT_SOCKET_DIR, SOCKET_NAME
from pkcard.errors import AuditUnavailable, MissingExtra, UnsafeFile
from pkcard.readers import ReaderSystem
from pkcard.stop_signals import StopSignals

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CONFIG = 2
_SD_LISTEN_FDS_START = 3
_log = logging.getLogger("pkcardd")


class _VersionAction(argparse.Action):
    """``--version``: the installed version, read only when asked for.

    ``pkcard.__version__`` loads ``importlib.metadata`` (~2 MB of RSS); a daemon
    that is not asked does not (issue #14, G6).
    """

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        sys.stdout.write(f"{parser.prog} {pkcard.__version__}\n")
        parser.exit()


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter at the terminal's width, found without ``shutil``.

    argparse's own default imports ``shutil`` (and with it bz2 and lzma, ~0.5 MB of
    RSS kept for the daemon's life) to ask the width once (issue #14, G6).
    """
    try:
        columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
    except (ValueError, OSError):
        columns = 80
    return argparse.HelpFormatter(prog, width=max(columns - 2, 20))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pkcardd", description=__doc__.splitlines()[0],
                                     formatter_class=_help_formatter)
    parser.add_argument("--version", action=_VersionAction,
                        help="show the version and exit")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket-dir", type=Path, metavar="DIR",
                       help=f"directory of {SOCKET_NAME} and of its private/ subdirectory "
                       f"(default {DEFAULT_SOCKET_DIR})")
    where.add_argument("--socket", type=Path, metavar="PATH",
                       help=f"the public socket, which must be named {SOCKET_NAME}: "
                       "the same as --socket-dir of its directory (clients' --socket)")
    parser.add_argument("--socket-group", help="group owning pkcardd.sock (mode 0660)")
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--simulated", action="store_const", dest="backend",
                         const=ReaderBackend.SIMULATED,
                         help="serve two in-process simulated readers (no pcscd needed)")
    backend.add_argument("--pcsc", action="store_const", dest="backend", const=ReaderBackend.PCSC,
                         help="serve the readers of the system's pcscd (the default)")
    parser.add_argument("--simulated-readers", type=int, default=2, metavar="N",
                        help="with --simulated: serve N readers (2..16, default 2)")
    parser.add_argument("--audit-log", type=Path, help="append-only hash-chained audit log")
    parser.add_argument("--audit-rotate-bytes", type=int, metavar="N",
                        help="rotate the audit log beyond N bytes (default 64 MiB)")
    parser.add_argument("--backend", dest="backend_address", metavar="ADDRESS",
                        help="the backend (unix:/path or host:port); default with --simulated: "
                        "the embedded test backend")
    parser.add_argument("--state-dir", type=Path,
                        help="with --simulated: the embedded backend's database directory "
                        "(default: the socket directory's private/)")
    parser.add_argument("--tcp", metavar="HOST:PORT",
                        help="also listen on TCP with mutual TLS (needs the three --tls-* files)")
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--tls-client-ca", type=Path, help="CA that signs client certificates")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _socket_dir(socket_dir: Path | None, socket_path: Path | None) -> Path | None:
    """The socket directory from ``--socket-dir DIR`` or ``--socket DIR/pkcardd.sock``.

    ``--socket DIR`` (a directory, or a path not ending in ``.sock``) is the
    deprecated spelling of ``--socket-dir DIR``, from when ``--socket`` named the directory.
    """
    if socket_path is None:
        return socket_dir
    if socket_path.name == SOCKET_NAME and not socket_path.is_dir():
        return socket_path.parent
    if socket_path.suffix == ".sock" and not socket_path.is_dir():
        raise ConfigError(f"--socket must end in /{SOCKET_NAME} (pkcardd keeps its private "
                          "sockets beside it); or give the directory with --socket-dir")
    _log.warning("--socket %s: naming the directory with --socket is deprecated; "
                 "use --socket-dir %s", socket_path, socket_path)
    return socket_path


def build_config(args: argparse.Namespace) -> DaemonConfig:
    """The file's configuration with the flags applied on top. Raises ConfigError."""
    config = load_config(args.config)
    socket_dir = _socket_dir(args.socket_dir, args.socket)
    if socket_dir is not None:
        config = replace(config, socket_dir=socket_dir.absolute())
    if args.socket_group is not None:
        config = replace(config, socket_group=args.socket_group)
    if args.backend is not None:
        config = replace(config, reader_backend=args.backend)
    if args.audit_log is not None:
        config = replace(config, audit_log=args.audit_log.absolute())
    if args.audit_rotate_bytes is not None:
        if args.audit_rotate_bytes < MIN_AUDIT_ROTATE_BYTES:
            raise ConfigError(f"--audit-rotate-bytes must be >= {MIN_AUDIT_ROTATE_BYTES}")
        config = replace(config, audit_rotate_bytes=args.audit_rotate_bytes)
    if args.backend_address is not None:
        if not args.backend_address.strip():
            raise ConfigError("--backend must be unix:/path or host:port")
        tls = None if config.backend is None else config.backend.tls
        config = replace(config, backend=BackendConfig(args.backend_address, tls))
    if args.state_dir is not None:
        config = replace(config, state_dir=args.state_dir.absolute())
    if args.tcp is not None:
        if not (args.tls_cert and args.tls_key and args.tls_client_ca):
            raise ConfigError("--tcp needs --tls-cert, --tls-key and --tls-client-ca")
        config = replace(config, tcp=TcpConfig(args.tcp, args.tls_cert, args.tls_key,
                                               args.tls_client_ca))
    return config


def reader_system(backend: ReaderBackend, simulated_readers: int = 2) -> ReaderSystem:
    if backend is ReaderBackend.SIMULATED:
        from pkcard.daemon.simulation import simulated_reader_system  # noqa: PLC0415

        return simulated_reader_system(simulated_readers)
    from pkcard.pcsc_bridge import PcscReaderSystem  # noqa: PLC0415 - pyscard only when used

    system: ReaderSystem = PcscReaderSystem()
    return system


def inherited_listener() -> socket.socket | None:
    """The listening socket systemd passed (socket activation), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    return socket.socket(fileno=_SD_LISTEN_FDS_START)


def notify_ready() -> None:
    """Tell systemd (Type=notify) that the daemon is serving."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


def main(argv: Sequence[str] | None = None) -> int:
    forbid_core_dumps()  # before any secret can reach memory (docs/security.md)
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, sys.stderr, os.environ)
    try:
        config = build_config(args)
        if not 2 <= args.simulated_readers <= 16:
            raise ConfigError("--simulated-readers must be 2..16")
    except ConfigError as exc:
        _log.error("configuration: %s", exc)
        return EXIT_CONFIG
    with StopSignals() as stop:
        try:
            daemon = Daemon(config, reader_system(config.reader_backend, args.simulated_readers),
                            listener=inherited_listener())
            daemon.start()
        except (InsecureSocketDir, AuditLogCorrupt, UnsafeFile, AuditUnavailable,
                StartupError, MissingExtra, OSError) as exc:
            _log.error("refusing to start: %s", exc)
            return EXIT_REFUSED
        notify_ready()
        stop.wait()
    _log.info("stopping: in-flight calls get %.1f s", config.limits.grace_seconds)
    daemon.stop()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
