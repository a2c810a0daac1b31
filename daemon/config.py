"""pkcardd configuration: a TOML file, overridden by command-line flags.

Example (every key optional)::

    socket_dir = "/run/pkcardd"      # holds pkcardd.sock; must be ours and not group/other writable
    socket_group = "pkcard"          # group of pkcardd.sock (mode 0660); unset: our primary group
    reader_system = "pcsc"           # or "simulated"
    audit_log = "/var/lib/pkcardd/audit.jsonl"
    audit_rotate_bytes = 67108864    # start audit.jsonl.000001, ... beyond this size (64 MiB)
    allow_host_pin_entry = false     # accept PINs from clients for PIN-pad readers (default:
                                     # false with pcsc, true with the simulated readers)
    workstation_id = "ws-amb-3"      # the session tokens' iss; default: the host name
    backend = "unix:/run/pkcard-backend.sock"  # or "host:port"; needed for pkpin reactivate;
                                     # unset with simulated readers: the embedded test backend
    state_dir = "/var/lib/pkcardd"   # the embedded backend's database (simulated readers only);
                                     # default: the socket directory's private/ subdirectory

    [backend_tls]                    # optional: mutual TLS to a host:port backend
    client_certificate = "/etc/pkcardd/backend-client.pem"
    client_key = "/etc/pkcardd/backend-client.key"
    server_ca = "/etc/pkcardd/backend-ca.pem"

    [access]                         # who may call; default: our uid, root, group "pkcard"
    users = ["root", "clinic"]       # names or numeric uids
    groups = ["pkcard"]              # names or numeric gids (primary or supplementary)
    admin_groups = ["pkcard-admin"]  # may get, refresh and close any caller's session

    [limits]
    worker_threads = 16
    max_concurrent_rpcs = 64
    max_message_bytes = 1048576
    event_queue_size = 64            # per WatchEvents client
    grace_seconds = 5.0              # in-flight calls get this long on SIGTERM
    failed_pin_limit = 5             # failed PIN checks per card within the window, then
    failed_pin_window_s = 300.0      # RATE_LIMITED until the oldest one leaves the window
    call_timeout_s = 60.0            # the longest a call may wait for its card (a client's
                                     # shorter deadline wins; calls without one get this)
    card_idle_release_s = 5.0        # a reader's worker closes its held PC/SC connection
                                     # after this long without a call (pcscd may then power
                                     # the idle card down, and its verified PIN goes)
    max_connections_per_uid = 128    # public-socket connections per uid; more are closed
    max_connections = 512            # public-socket connections in all
    max_user_sockets = 32            # allowed users with a socket of their own (users/<uid>/)
    max_streams_per_caller = 4       # open streams per caller (uid or TLS identity)
    open_stream_slots = 4            # open Health.Watch/reflection streams in all
    max_sessions_per_caller = 8      # open sessions per caller
    session_idle_timeout_s = 900.0   # a session not refreshed this long ends (IDLE_TIMEOUT)
    session_max_lifetime_s = 43200.0 # a session ends this long after opening (LIFETIME_EXCEEDED)
    pin_reuse_s = 300.0              # OpenSession without a PIN relies on the same caller's
                                     # own PIN verification of that card this recent at most

    signature_trust_anchors = ["/etc/pkcardd/pk-ca.pem"]  # VerifyDocument's CAs (PEM);
                                     # default: the test PK CAs with simulated readers, none else

    [[card_backends]]                # which driver serves a reader's PK; first match wins;
    reader = "Gemalto GemPC Pinpad"  # reader-name prefix ("" or absent: every reader)
    driver = "pkcs11"                # "apdu" (default: ISO profile over PC/SC) or "pkcs11"
    module = "/usr/lib/softhsm/libsofthsm2.so"
    card_token = { serial = "..." }  # slot_description (prefix) / serial / label
    signature_token = { label = "... KPEP" }  # optional: the token with the KPEP key

    [tcp]                            # optional localhost TCP, mutual TLS only
    address = "127.0.0.1:50443"
    server_certificate = "/etc/pkcardd/server.pem"
    server_key = "/etc/pkcardd/server.key"
    client_ca = "/etc/pkcardd/clients-ca.pem"
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from pkcard.endpoint import DEFAULT_SOCKET_DIR, SOCKET_NAME
from pkcard.pkcs11_select import TokenSelector

DEFAULT_GROUP = "pkcard"
DEFAULT_AUDIT_ROTATE_BYTES = 64 * 1024 * 1024
MIN_AUDIT_ROTATE_BYTES = 4096
_WORKSTATION_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ConfigError(ValueError):
    """The configuration file or flags are invalid. The message says which key."""


class ReaderBackend(IntEnum):
    PCSC = 1
    SIMULATED = 2


class CardDriver(IntEnum):
    """How pkcardd talks to a PK: APDUs over the reader, or the card maker's PKCS#11 module."""

    APDU = 1
    PKCS11 = 2


@dataclass(frozen=True)
class CardBackendRule:
    """One ``[[card_backends]]`` entry: the driver for readers whose name starts with ``reader``.

    With :attr:`CardDriver.PKCS11`, ``module`` is the PKCS#11 library,
    ``card_token`` selects the card token and ``signature_token`` (optional)
    the token holding the KPEP key and the SPIN.
    """

    reader: str = ""
    driver: CardDriver = CardDriver.APDU
    module: Path | None = None
    card_token: TokenSelector | None = None
    signature_token: TokenSelector | None = None

    def matches(self, reader: str) -> bool:
        return reader.startswith(self.reader)


@dataclass(frozen=True)
class AccessPolicy:
    """Callers allowed on the Unix socket: by uid, or by any of their groups."""

    uids: frozenset[int]
    gids: frozenset[int]
    admin_gids: frozenset[int] = frozenset()  # may act on any caller's session

    def is_admin(self, uid: int, gid: int) -> bool:
        return _in_groups(self.admin_gids, uid, gid)

    @classmethod
    def default(cls) -> AccessPolicy:
        gids: set[int] = set()
        with contextlib.suppress(KeyError):
            gids.add(grp.getgrnam(DEFAULT_GROUP).gr_gid)
        return cls(uids=frozenset({os.getuid(), 0}), gids=frozenset(gids))

    def allows(self, uid: int, gid: int) -> bool:
        return uid in self.uids or _in_groups(self.gids, uid, gid)


def _in_groups(gids: frozenset[int], uid: int, gid: int) -> bool:
    """Whether ``uid`` (primary group ``gid``) is in any of ``gids``, supplementary included."""
    if gid in gids:
        return True
    if not gids:
        return False
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return not gids.isdisjoint(os.getgrouplist(name, gid))


@dataclass(frozen=True)
class Limits:
    worker_threads: int = 16
    max_concurrent_rpcs: int = 64
    max_message_bytes: int = 1 << 20
    event_queue_size: int = 64
    grace_seconds: float = 5.0
    failed_pin_limit: int = 5  # failed PIN checks per card within the window (daemon/ratelimit.py)
    failed_pin_window_s: float = 300.0
    call_timeout_s: float = 60.0  # per-call limit, also for clients without a deadline
    card_idle_release_s: float = 5.0  # a worker's held connection is closed when idle this long
    # Per-peer limits (daemon/peer_limits.py, daemon/stream_limits.py; issue #12 break 3)
    max_connections_per_uid: int = 128  # open connections on the public socket per uid
    max_connections: int = 512  # open connections on the public socket in all
    max_user_sockets: int = 32  # allowed users offered a socket of their own (user_sockets.py)
    max_streams_per_caller: int = 4  # open streams (WatchEvents, Health.Watch, ...) per caller
    open_stream_slots: int = 4  # open Health.Watch and reflection streams in all
    # Sessions (daemon/sessions.py; issue #12 break 7)
    max_sessions_per_caller: int = 8  # open sessions per caller (uid or TLS identity)
    session_idle_timeout_s: float = 900.0  # ended when not refreshed for this long
    session_max_lifetime_s: float = 43200.0  # ended this long after opening, whatever
    pin_reuse_s: float = 300.0  # how long a caller's PIN verification lets it open sessions


@dataclass(frozen=True)
class TcpConfig:
    """Optional TCP listener; always mutual TLS."""

    address: str
    server_certificate: Path
    server_key: Path
    client_ca: Path


@dataclass(frozen=True)
class BackendTls:
    """Mutual TLS to the backend: our client certificate and the backend's CA."""

    client_certificate: Path
    client_key: Path
    server_ca: Path


@dataclass(frozen=True)
class BackendConfig:
    """Where pkcardd reaches the backend (``unix:/path`` or ``host:port``).

    Without ``tls`` the workstation id travels as the development identity
    (metadata ``x-pkcard-backend-client``).
    """

    address: str
    tls: BackendTls | None = None


def default_workstation_id() -> str:
    """The host name, cut to what a token's ``iss`` allows."""
    cleaned = re.sub(r"[^A-Za-z0-9._:-]", "-", socket.gethostname())[:64]
    return cleaned or "workstation"


@dataclass(frozen=True)
class DaemonConfig:
    socket_dir: Path = DEFAULT_SOCKET_DIR
    socket_group: str | None = None
    reader_backend: ReaderBackend = ReaderBackend.PCSC
    audit_log: Path | None = None
    audit_rotate_bytes: int = DEFAULT_AUDIT_ROTATE_BYTES
    access: AccessPolicy = field(default_factory=AccessPolicy.default)
    limits: Limits = field(default_factory=Limits)
    tcp: TcpConfig | None = None
    # With a PIN-pad reader the PIN is typed on the reader; a secret sent by a
    # client for such a reader is refused unless host entry is allowed. None:
    # refused with real readers, allowed with the simulated ones (their pad has
    # no holder at it unless a test scripts one).
    allow_host_pin_entry: bool | None = None
    workstation_id: str = field(default_factory=default_workstation_id)
    backend: BackendConfig | None = None
    # The embedded backend's state (simulated readers without `backend`); None:
    # the socket directory's private subdirectory.
    state_dir: Path | None = None
    card_backends: tuple[CardBackendRule, ...] = ()
    # VerifyDocument's trust anchors (PEM files); None: the test PKI's PK CAs
    # with the simulated readers, none with real ones.
    signature_trust_anchors: tuple[Path, ...] | None = None

    @property
    def host_pin_entry_allowed(self) -> bool:
        if self.allow_host_pin_entry is not None:
            return self.allow_host_pin_entry
        return self.reader_backend is ReaderBackend.SIMULATED

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / SOCKET_NAME


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}")


def _uid(value: object) -> int:
    if isinstance(value, int):
        return value
    try:
        return pwd.getpwnam(str(value)).pw_uid
    except KeyError:
        raise ConfigError(f"access.users: no such user {value!s}") from None


def _gid(value: object) -> int:
    if isinstance(value, int):
        return value
    try:
        return grp.getgrnam(str(value)).gr_gid
    except KeyError:
        raise ConfigError(f"access.groups: no such group {value!s}") from None


def _access(data: Mapping[str, Any]) -> AccessPolicy:
    _check_keys(data, ("users", "groups", "admin_groups"), "[access]")
    default = AccessPolicy.default()
    users = data.get("users")
    groups = data.get("groups")
    admins = data.get("admin_groups")
    for name, value in (("users", users), ("groups", groups), ("admin_groups", admins)):
        if value is not None and not isinstance(value, list):
            raise ConfigError(f"access.{name} must be a list")
    return AccessPolicy(
        uids=default.uids if users is None else frozenset(_uid(u) for u in users),
        gids=default.gids if groups is None else frozenset(_gid(g) for g in groups),
        admin_gids=frozenset() if admins is None else frozenset(_gid(g) for g in admins),
    )


def _limits(data: Mapping[str, Any]) -> Limits:
    defaults = Limits()
    _check_keys(data, defaults.__dataclass_fields__, "[limits]")
    values: dict[str, Any] = {}
    for key, default in vars(defaults).items():
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"limits.{key} must be a positive number")
        values[key] = type(default)(value)
    return Limits(**values)


def _tcp(data: Mapping[str, Any]) -> TcpConfig | None:
    if not data:
        return None
    keys = ("address", "server_certificate", "server_key", "client_ca")
    _check_keys(data, keys, "[tcp]")
    missing = [k for k in keys if not isinstance(data.get(k), str)]
    if missing:
        raise ConfigError(f"[tcp] needs {', '.join(missing)} (mutual TLS only)")
    return TcpConfig(
        address=data["address"],
        server_certificate=Path(data["server_certificate"]),
        server_key=Path(data["server_key"]),
        client_ca=Path(data["client_ca"]),
    )


def _audit_rotate_bytes(data: Mapping[str, Any]) -> int:
    value = data.get("audit_rotate_bytes", DEFAULT_AUDIT_ROTATE_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_AUDIT_ROTATE_BYTES:
        raise ConfigError(f"audit_rotate_bytes must be an integer >= {MIN_AUDIT_ROTATE_BYTES}")
    return value


def parse_config(data: Mapping[str, Any]) -> DaemonConfig:
    """Build a config from parsed TOML. Raises :class:`ConfigError`."""
    top = (
        "socket_dir", "socket_group", "reader_system", "audit_log", "access", "limits", "tcp",
        "allow_host_pin_entry", "workstation_id", "backend", "backend_tls", "state_dir",
        "card_backends", "signature_trust_anchors", "audit_rotate_bytes",
    )
    _check_keys(data, top, "the configuration")
    backend_name = str(data.get("reader_system", "pcsc")).upper()
    if backend_name not in ReaderBackend.__members__:
        raise ConfigError("reader_system must be \"pcsc\" or \"simulated\"")
    audit = data.get("audit_log")
    group = data.get("socket_group")
    state = data.get("state_dir")
    if state is not None and (not isinstance(state, str) or not state):
        raise ConfigError("state_dir must be a directory path")
    return DaemonConfig(
        socket_dir=Path(data.get("socket_dir", DEFAULT_SOCKET_DIR)),
        socket_group=None if group is None else str(group),
        reader_backend=ReaderBackend[backend_name],
        audit_log=None if audit is None else Path(audit),
        audit_rotate_bytes=_audit_rotate_bytes(data),
        access=_access(_table(data, "access")),
        limits=_limits(_table(data, "limits")),
        tcp=_tcp(_table(data, "tcp")),
        allow_host_pin_entry=_flag(data, "allow_host_pin_entry"),
        workstation_id=_workstation_id(data),
        backend=_backend(data),
        state_dir=None if state is None else Path(state),
        card_backends=_card_backends(data.get("card_backends", [])),
        signature_trust_anchors=_trust_anchors(data.get("signature_trust_anchors")),
    )


def _token_selector(data: object, where: str) -> TokenSelector | None:
    if data is None:
        return None
    keys = ("slot_description", "serial", "label")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where} must be a table with one or more of {', '.join(keys)}")
    _check_keys(data, keys, where)
    if not all(isinstance(v, str) and v for v in data.values()):
        raise ConfigError(f"{where}: values must be non-empty strings")
    return TokenSelector(
        slot_description=data.get("slot_description"),
        serial=data.get("serial"),
        label=data.get("label"),
    )


def _card_backend(data: object, index: int) -> CardBackendRule:
    where = f"card_backends[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    _check_keys(data, ("reader", "driver", "module", "card_token", "signature_token"), where)
    reader = data.get("reader", "")
    if not isinstance(reader, str):
        raise ConfigError(f"{where}.reader must be a reader-name prefix")
    driver_name = str(data.get("driver", "apdu")).upper()
    if driver_name not in CardDriver.__members__:
        raise ConfigError(f"{where}.driver must be \"apdu\" or \"pkcs11\"")
    driver = CardDriver[driver_name]
    module = data.get("module")
    card = _token_selector(data.get("card_token"), f"{where}.card_token")
    signature = _token_selector(data.get("signature_token"), f"{where}.signature_token")
    if driver is CardDriver.APDU:
        if module is not None or card is not None or signature is not None:
            raise ConfigError(f"{where}: module and tokens need driver = \"pkcs11\"")
        return CardBackendRule(reader=reader)
    if not isinstance(module, str) or not module:
        raise ConfigError(f"{where}.module must be the path of the PKCS#11 library")
    if card is None:
        raise ConfigError(f"{where}.card_token must select the card's token")
    return CardBackendRule(reader, driver, Path(module), card, signature)


def _card_backends(data: object) -> tuple[CardBackendRule, ...]:
    if not isinstance(data, list):
        raise ConfigError("card_backends must be an array of tables ([[card_backends]])")
    return tuple(_card_backend(entry, index) for index, entry in enumerate(data))


def _trust_anchors(data: object) -> tuple[Path, ...] | None:
    if data is None:
        return None
    if not isinstance(data, list) or not all(isinstance(p, str) and p for p in data):
        raise ConfigError("signature_trust_anchors must be a list of PEM file paths")
    return tuple(Path(p) for p in data)


def _workstation_id(data: Mapping[str, Any]) -> str:
    value = data.get("workstation_id")
    if value is None:
        return default_workstation_id()
    if not isinstance(value, str) or not _WORKSTATION_ID_RE.fullmatch(value):
        raise ConfigError("workstation_id must be 1-64 of A-Z a-z 0-9 . _ : -")
    return value


def _backend(data: Mapping[str, Any]) -> BackendConfig | None:
    address = data.get("backend")
    tls_table = _table(data, "backend_tls")
    if address is None:
        if tls_table:
            raise ConfigError("[backend_tls] needs backend = \"host:port\"")
        return None
    if not isinstance(address, str) or not address.strip():
        raise ConfigError("backend must be \"unix:/path\" or \"host:port\"")
    if not tls_table:
        return BackendConfig(address)
    keys = ("client_certificate", "client_key", "server_ca")
    _check_keys(tls_table, keys, "[backend_tls]")
    missing = [k for k in keys if not isinstance(tls_table.get(k), str)]
    if missing:
        raise ConfigError(f"[backend_tls] needs {', '.join(missing)}")
    return BackendConfig(address, BackendTls(
        Path(tls_table["client_certificate"]), Path(tls_table["client_key"]),
        Path(tls_table["server_ca"]),
    ))


def _flag(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def load_config(path: Path | None) -> DaemonConfig:
    """Read the TOML file at ``path``; defaults when ``path`` is None."""
    if path is None:
        return DaemonConfig()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data)
