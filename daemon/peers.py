"""The Unix-socket front of pkcardd: directory checks and peer credentials.

gRPC's Python server does not tell a servicer who is calling on a Unix
socket. So pkcardd's gRPC server listens only on ``private/grpc.sock`` inside
a 0700 directory, and :class:`PeerGateway` listens on the public
``pkcardd.sock``. For each accepted connection it reads the caller's
``SO_PEERCRED`` (pid, uid, gid as the kernel saw them at ``connect``), opens
a connection to the gRPC socket from a socket *bound* to a unique path in the
private directory, and splices bytes both ways. gRPC reports that bound path
as the call's ``context.peer()``, and :meth:`PeerGateway.credentials_for`
maps it back to the caller's credentials.

The gateway runs one asyncio loop in one thread that :meth:`PeerGateway.start`
starts and :meth:`PeerGateway.stop` stops and joins.

The splice costs every call a few tenths of a millisecond, so allowed users
also get a socket of their own that skips it (:mod:`pkcard.daemon.user_sockets`);
the public socket and this gateway serve everyone else (foreign clients,
users without a user socket).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from pkcard.daemon.peer_limits import ConnectionLimits, ThrottledLog
from pkcard.socket_trust import directories_to_check, insecure_directory

_log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_CHUNK = 64 * 1024
_MAX_UNIX_PATH = 107
ACCEPT_RETRY_S = 0.1  # after a failed accept (EMFILE, ...), before the next try
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class InsecureSocketDir(RuntimeError):
    """The socket directory is not safe to listen in. The message says why and how to fix it."""


@dataclass(frozen=True)
class PeerCredentials:
    """Who is at the other end of a Unix socket, per the kernel.

    ``pid`` is None on a user socket, where the kernel's permission check
    told us the user but no connection's process (:mod:`pkcard.daemon.user_sockets`).
    """

    pid: int | None
    uid: int
    gid: int


def ensure_private_dir(path: Path, *, max_mode: int = 0o755) -> None:
    """Create ``path`` (mode 0700) if missing; refuse a directory others could tamper with.

    Like gpg-agent: the directory must be a real directory (not a symlink),
    owned by our effective uid, not writable by group or others, and not
    looser than ``max_mode``. Raises :class:`InsecureSocketDir`.
    """
    try:
        path.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise InsecureSocketDir(f"cannot create socket directory {path}: {exc.strerror}") from None
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise InsecureSocketDir(f"{path} is not a directory (symlinks are refused)")
    if info.st_uid != os.geteuid():
        raise InsecureSocketDir(
            f"refusing socket directory {path}: owned by uid {info.st_uid}, not by us "
            f"(uid {os.geteuid()}); chown it or choose another directory"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022 or mode & ~max_mode:
        raise InsecureSocketDir(
            f"refusing socket directory {path}: mode {mode:04o} is too open "
            f"(group/other writable or beyond {max_mode:04o}); "
            f"run chmod {max_mode & 0o750:04o} {path}"
        )


def ensure_trusted_ancestors(path: Path) -> None:
    """Refuse a directory whose ancestors others could rename entries in (issue #12, break 4).

    Each ancestor of ``path`` (as written and as resolved) must be owned by
    root or by us (the service user) and not be writable by group or others
    unless it is sticky, as ``/tmp`` is. Raises :class:`InsecureSocketDir`.
    """
    trusted = (0, os.geteuid())
    for directory in directories_to_check(path):
        try:
            problem = insecure_directory(directory, trusted)
        except FileNotFoundError:
            continue  # creating the socket directory will fail and say so
        if problem is not None:
            raise InsecureSocketDir(
                f"refusing socket directory {path}: {problem[0]}; another user could replace "
                f"{path} and the socket in it. Only root or uid {os.geteuid()} may own the "
                "directories above it, and they must not be group/other writable unless sticky"
            )


def ensure_not_listening(path: Path) -> None:
    """Raise :class:`InsecureSocketDir` if something accepts connections on ``path``.

    A stale socket (nobody listening) is fine: it will be replaced.
    """
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return
    raise InsecureSocketDir(f"{path} is in use: is another pkcardd running?")


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The SO_PEERCRED of a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


def bind_public_socket(path: Path, group_gid: int | None) -> socket.socket:
    """Bind and listen on ``path`` with mode 0660 (group ``group_gid`` when given)."""
    if len(str(path)) > _MAX_UNIX_PATH:
        raise InsecureSocketDir(f"socket path {path} is longer than {_MAX_UNIX_PATH} bytes")
    if path.is_socket():
        path.unlink()  # a stale socket from a previous run, in a directory only we can write
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    if group_gid is not None:
        os.chown(path, -1, group_gid)
    path.chmod(0o660)
    listener.listen(128)
    return listener


class PeerGateway:
    """Accepts callers on the public socket and splices them to the private gRPC socket.

    ``limits`` caps the open connections per caller uid and in all (issue #12,
    break 3); a connection over a cap is closed as soon as it is accepted.
    Accept failures (``EMFILE`` and the like) and refusals are logged once per
    interval with a count (:class:`~pkcard.daemon.peer_limits.ThrottledLog`).
    """

    def __init__(self, listener: socket.socket, backend_path: Path, private_dir: Path,
                 limits: ConnectionLimits | None = None) -> None:
        self._listener = listener
        self._backend_path = backend_path
        self._private_dir = private_dir
        self._limits = limits or ConnectionLimits(per_uid=1 << 30, total=1 << 30)
        self._throttled = ThrottledLog(_log)
        self._credentials: dict[str, PeerCredentials] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def credentials_for(self, peer: str) -> PeerCredentials | None:
        """The caller behind a gRPC ``context.peer()`` string, or None if it did not come via us."""
        with self._lock:
            return self._credentials.get(peer)

    def start(self) -> None:
        """Start the gateway thread and begin accepting."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="pkcardd-gateway")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), loop).result()

    def stop_accepting(self) -> None:
        """Close the public listener; connections already accepted keep working."""
        if self._loop is not None and self._acceptor is not None:
            asyncio.run_coroutine_threadsafe(self._close_listener(), self._loop).result()

    def stop(self) -> None:
        """Stop accepting, drop every connection and join the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    async def _open(self) -> None:
        self._listener.setblocking(False)
        self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop())

    async def _close_listener(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.cancel()
            await asyncio.gather(acceptor, return_exceptions=True)
            self._listener.close()

    async def _shutdown(self) -> None:
        await self._close_listener()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._throttled.flush()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                # EMFILE, ENFILE, ENOBUFS, ...: log once per interval, back off, go on
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                self._throttled.note(f"accept {name}",
                                     f"cannot accept a connection on the public socket: {name}")
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        try:
            credentials = peer_credentials(conn)
        except OSError:
            conn.close()
            return
        if not self._limits.admit(credentials.uid):
            conn.close()
            self._throttled.note(
                f"refused uid {credentials.uid}",
                f"refused a connection of uid {credentials.uid}: it holds "
                f"{self._limits.held(credentials.uid)} (limits.max_connections_per_uid "
                f"{self._limits.per_uid}, limits.max_connections {self._limits.total})",
            )
            return
        task = asyncio.get_running_loop().create_task(self._serve(conn, credentials))
        self._tasks.add(task)

    async def _serve(self, client_sock: socket.socket, credentials: PeerCredentials) -> None:
        task = asyncio.current_task()
        assert task is not None
        link = self._private_dir / f"peer-{next(self._counter)}.sock"
        peer = f"unix:{link}"
        writer: asyncio.StreamWriter | None = None
        up_writer: asyncio.StreamWriter | None = None
        upstream: socket.socket | None = None
        try:
            client_sock.setblocking(False)
            reader, writer = await asyncio.open_unix_connection(sock=client_sock)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.bind(str(link))
            upstream.setblocking(False)
            with self._lock:
                self._credentials[peer] = credentials
            await asyncio.get_running_loop().sock_connect(upstream, str(self._backend_path))
            up_reader, up_writer = await asyncio.open_unix_connection(sock=upstream)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError) as exc:
            if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
                name = errno.errorcode.get(exc.errno or 0, "")
                self._throttled.note(f"splice {name}",
                                     f"cannot reach the gRPC socket for a caller: {name}")
            _log.debug("gateway connection %s ended: %s", peer, exc.__class__.__name__)
        except asyncio.CancelledError:
            _log.debug("gateway connection %s closed at shutdown", peer)
        finally:
            with self._lock:
                self._credentials.pop(peer, None)
            if writer is None:
                client_sock.close()
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            if up_writer is None and upstream is not None:
                upstream.close()
            link.unlink(missing_ok=True)
            self._limits.release(credentials.uid)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
