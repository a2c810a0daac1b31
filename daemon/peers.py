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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MAX_UNIX_PATH = 107


class InsecureSocketDir(RuntimeError):
    """The socket directory is not safe to listen in. The message says why and how to fix it."""


@dataclass(frozen=True)
class PeerCredentials:
    """Who is at the other end of a Unix socket, per the kernel."""

    pid: int
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


class _Half(asyncio.Protocol):
    """One side of a spliced connection: what it reads, the other side writes.

    asyncio protocols, not streams: the bytes go from ``data_received`` straight
    to the other transport's ``write``, with no coroutine hop per chunk. Flow
    control pairs the two: when one side's write buffer is full, the other side
    stops reading until it drains.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Half | None = None
        self._pending: list[bytes] = []
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        other = self.other
        if other is None or other.transport is None:
            self._pending.append(data)  # upstream not connected yet
            return
        other.transport.write(data)

    def join(self, other: _Half) -> None:
        """Pair with ``other`` and flush what arrived before it was there."""
        self.other, other.other = other, self
        assert other.transport is not None
        for chunk in self._pending:
            other.transport.write(chunk)
        self._pending.clear()

    def eof_received(self) -> bool:
        other = self.other
        if other is not None and other.transport is not None and other.transport.can_write_eof():
            other.transport.write_eof()
            return True  # keep our write side open: a half-close
        return False

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)


class PeerGateway:
    """Accepts callers on the public socket and splices them to the private gRPC socket."""

    def __init__(self, listener: socket.socket, backend_path: Path, private_dir: Path) -> None:
        self._listener = listener
        self._backend_path = backend_path
        self._private_dir = private_dir
        self._credentials: dict[str, PeerCredentials] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
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
        if self._loop is not None and self._server is not None:
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._accepted, sock=self._listener)

    def _accepted(self) -> _Half:
        """A caller connected: its side of the splice; the upstream side follows in a task."""
        client = _Half()
        task = asyncio.get_running_loop().create_task(self._serve(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _shutdown(self) -> None:
        await self._close_listener()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client: _Half) -> None:
        await client.made
        transport = client.transport
        assert transport is not None
        client_sock: socket.socket = transport.get_extra_info("socket")
        link = self._private_dir / f"peer-{next(self._counter)}.sock"
        peer = f"unix:{link}"
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connected = False
        try:
            credentials = peer_credentials(client_sock)
            upstream.bind(str(link))
            upstream.setblocking(False)
            with self._lock:
                self._credentials[peer] = credentials
            loop = asyncio.get_running_loop()
            await loop.sock_connect(upstream, str(self._backend_path))
            _, server_side = await loop.create_unix_connection(_Half, sock=upstream)
            connected = True
            client.join(server_side)
            if client.closed.done() and server_side.transport is not None:
                server_side.transport.close()  # the caller left before upstream was there
            await client.closed
            await server_side.closed
        except OSError as exc:
            _log.debug("gateway connection %s ended: %s", peer, exc.__class__.__name__)
            transport.close()
        except asyncio.CancelledError:
            _log.debug("gateway connection %s closed at shutdown", peer)
            transport.close()
            if client.other is not None and client.other.transport is not None:
                client.other.transport.close()
        finally:
            with self._lock:
                self._credentials.pop(peer, None)
            if not connected:
                upstream.close()
            link.unlink(missing_ok=True)
