"""Is this Unix socket really pkcardd's? Checked before a client sends it a byte.

A client that sends a PIN to whatever listens on a path trusts every
directory on that path: anyone who may rename an entry in one of them can
put their own socket there (issue #12, break 4). So before the first call,
:class:`DaemonSocketCheck` makes sure that

- every directory from the socket's directory up to ``/`` (and, for a path
  through a symlink, up from its target too) is owned by a trusted uid and is
  not writable by group or others, unless it has the sticky bit (``/tmp``);
- the socket file is a socket owned by a trusted uid; and
- the process listening on it, as the kernel reports with ``SO_PEERCRED`` on
  a probe connection that sends nothing, runs as a trusted uid.

Trusted uids: root, our own effective uid, and the daemon's service user
(``PKCARD_DAEMON_USER``, a user name or uid; default ``pkcardd`` when that
user exists). A failed check raises :class:`~pkcard.errors.UntrustedDaemonSocket`
naming the uid found and the trusted ones. :func:`insecure_directory`
is the same directory rule, used by pkcardd on its own socket directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import socket
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

from pkcard.errors import DaemonUnavailable, UntrustedDaemonSocket

SERVICE_USER_ENV = "PKCARD_DAEMON_USER"
DEFAULT_SERVICE_USER = "pkcardd"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_T = TypeVar("_T")

if TYPE_CHECKING:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    _AioUnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _AioUnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.UnaryStreamClientInterceptor
    _AioUnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _AioUnaryStream = grpc.aio.UnaryStreamClientInterceptor


def trusted_uids(environ: Mapping[str, str] | None = None) -> frozenset[int]:
    """Root, our effective uid and the service user's uid (if it exists)."""
    env = os.environ if environ is None else environ
    uids = {0, os.geteuid()}
    name = env.get(SERVICE_USER_ENV, "").strip() or DEFAULT_SERVICE_USER
    if name.isdigit():
        uids.add(int(name))
    else:
        with contextlib.suppress(KeyError):  # no such user: only root and ourselves
            uids.add(pwd.getpwnam(name).pw_uid)
    return frozenset(uids)


def insecure_directory(path: Path, trusted: Iterable[int]) -> tuple[str, int] | None:
    """Why ``path`` (a directory or symlink) may be tampered with, and its owner; None if safe."""
    info = path.lstat()
    owners = set(trusted)
    if info.st_uid not in owners:
        return f"{path} is owned by uid {info.st_uid}", info.st_uid
    if stat.S_ISLNK(info.st_mode):
        return None  # only its owner or its directory's writers can replace it
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory", info.st_uid
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        return (f"{path} (mode {mode:04o}) is writable by group or others and not sticky",
                info.st_uid)
    return None


def directories_to_check(path: Path) -> list[Path]:
    """``path``'s directory and each ancestor, along the path as written and as resolved."""
    absolute = Path(os.path.abspath(path))
    seen: list[Path] = []
    for start in (absolute.parent, Path(os.path.realpath(absolute.parent))):
        for directory in (start, *start.parents):
            if directory not in seen:
                seen.append(directory)
    return seen


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(raw)[1])


class DaemonSocketCheck:
    """Checks a daemon socket once; later calls of :meth:`ensure` return at once. Thread-safe."""

    def __init__(self, target: str, trusted: frozenset[int] | None = None) -> None:
        self._target = target
        self._trusted = trusted
        self._lock = threading.Lock()
        self._verified = False

    @property
    def verified(self) -> bool:
        return self._verified

    def ensure(self) -> None:
        """Raise :class:`UntrustedDaemonSocket` or :class:`DaemonUnavailable`, or return."""
        if self._verified:
            return
        with self._lock:
            if not self._verified:
                self._check()
                self._verified = True

    def _refuse(self, why: str, found: int, trusted: frozenset[int]) -> UntrustedDaemonSocket:
        listed = tuple(sorted(trusted))
        return UntrustedDaemonSocket(
            f"refusing to talk to {self._target}: {why} (uid {found}); only uids "
            f"{', '.join(map(str, listed))} may serve pkcardd (root, us, "
            f"{SERVICE_USER_ENV})",
            found_uid=found, trusted_uids=listed,
        )

    def _check(self) -> None:
        trusted = self._trusted if self._trusted is not None else trusted_uids()
        if self._target.startswith("unix-abstract:"):
            address = "\0" + self._target.removeprefix("unix-abstract:")
        else:
            path = Path(self._target.removeprefix("unix:"))
            resolved = Path(os.path.realpath(path))
            address = str(resolved)
            try:
                for directory in (*directories_to_check(path), *directories_to_check(resolved)):
                    problem = insecure_directory(directory, trusted)
                    if problem is not None:
                        raise self._refuse(problem[0], problem[1], trusted)
                link = path.lstat()
                info = resolved.lstat()
            except FileNotFoundError:
                raise DaemonUnavailable(f"pkcardd is not reachable: no socket at {path}") from None
            if link.st_uid not in trusted:
                raise self._refuse(f"{path} is owned by another user", link.st_uid, trusted)
            if not stat.S_ISSOCK(info.st_mode):
                raise self._refuse(f"{resolved} is not a socket", info.st_uid, trusted)
            if info.st_uid not in trusted:
                raise self._refuse(f"the socket {resolved} is owned by another user",
                                   info.st_uid, trusted)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(address)
            except OSError as exc:
                name = errno.errorcode.get(exc.errno or 0, str(exc))
                raise DaemonUnavailable(
                    f"pkcardd is not reachable on {self._target}: {name}") from None
            uid = peer_uid(probe)
        if uid not in trusted:
            raise self._refuse("the process listening on it runs as another user", uid, trusted)


class _Check(_UnaryUnary, _UnaryStream):
    """Runs the socket check before a call starts (so before its first byte)."""

    def __init__(self, check: DaemonSocketCheck) -> None:
        self._check = check

    def intercept_unary_unary(self, continuation: Callable[..., _T], details: Any,
                              request: Any) -> _T:
        self._check.ensure()
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Callable[..., _T], details: Any,
                               request: Any) -> _T:
        self._check.ensure()
        return continuation(details, request)


class _AioCheck(_AioUnaryUnary, _AioUnaryStream):
    """The asyncio form of :class:`_Check` (the check itself is a few syscalls)."""

    def __init__(self, check: DaemonSocketCheck) -> None:
        self._check = check

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any,
                                    request: Any) -> Any:
        self._check.ensure()
        return await continuation(details, request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any,
                                     request: Any) -> Any:
        self._check.ensure()
        return await continuation(details, request)


def checked_channel(target: str) -> grpc.Channel:
    """An insecure channel to a local daemon socket that checks the socket before any call."""
    return grpc.intercept_channel(grpc.insecure_channel(target),
                                  _Check(DaemonSocketCheck(target)))


def checked_aio_channel(target: str) -> grpc.aio.Channel:
    """The asyncio form of :func:`checked_channel`."""
    interceptor = cast(Any, _AioCheck(DaemonSocketCheck(target)))
    return grpc.aio.insecure_channel(target, interceptors=[interceptor])
