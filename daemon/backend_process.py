"""The embedded test backend of ``pkcardd --simulated``, run as the daemon's child process.

In production the backend is a separate service; ``--simulated`` without a
configured ``backend`` starts the reference backend
(:mod:`pkcard.daemon.embedded_backend`) for the developer instead. It runs in
a child process of its own (``python -m pkcard.daemon.embedded_backend``), on
the same sockets as before: ``private/backend.sock`` for the daemon's
:class:`~daemon.backend_link.BackendLink` and ``DIR/backend.sock`` for the
developer's client. The daemon's process then carries none of it (the backend,
SQLite, its gRPC server and threads: ~17 MB of RSS, issue #14 G6); the child's
memory is its own and ``bench.daemon`` reports both.

The child's lifetime follows the daemon's:

- :meth:`BackendProcess.spawn` starts it; :meth:`BackendProcess.wait_ready`
  waits for its ``READY`` line on a pipe (the daemon builds its own server in
  the meantime) and raises :class:`~pkcard.errors.BackendProcessFailed` if it
  exits or stays silent;
- the child's standard input is a pipe from the daemon: it stops when the pipe
  closes, so it also stops when the daemon dies (SIGKILL included);
- :meth:`BackendProcess.stop` closes that pipe (and sends SIGTERM), waits
  ``grace`` seconds plus a margin, and kills it if it is still there;
- a thread of the daemon (``pkcardd-backend-watch``, started by
  :meth:`wait_ready`, joined by :meth:`stop`) waits for the child and reports
  an exit the daemon did not ask for: logged at ERROR with its status and
  handed to ``on_exit``.

Its log lines go to the daemon's standard error.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pkcard.errors import BackendProcessFailed

READY_LINE = b"READY\n"  # the child's standard output once it listens
DATABASE_NAME = "backend.sqlite"  # in the state directory
SOCKET_NAME = "backend.sock"  # both in the socket dir (for clients) and in its private dir
DEFAULT_READY_TIMEOUT_S = 60.0
STOP_MARGIN_S = 5.0
_log = logging.getLogger(__name__)


class BackendPlace:
    """Where the embedded backend keeps its registry and listens: the child
    (:class:`~daemon.embedded_backend.EmbeddedBackend`) and the daemon that starts it."""

    def __init__(self, state_dir: Path, private_socket: Path, public_socket: Path) -> None:
        self.state_dir = state_dir
        self.private_socket = private_socket
        self.public_socket = public_socket

    @property
    def address(self) -> str:
        """The gRPC target of the private socket, for :class:`~daemon.config.BackendConfig`."""
        return f"unix:{self.private_socket}"

    @property
    def database(self) -> Path:
        return self.state_dir / DATABASE_NAME


class BackendProcess(BackendPlace):
    """One embedded backend child; see the module's text."""

    def __init__(
        self,
        state_dir: Path,
        private_socket: Path,
        public_socket: Path,
        *,
        grace_s: float = 0.0,
        on_exit: Callable[[int], None] | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    ) -> None:
        super().__init__(state_dir, private_socket, public_socket)
        self._grace_s = grace_s
        self._on_exit = on_exit
        self._ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._watch: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def spawn(self) -> None:
        """Start the child; it seeds its registry and listens while the daemon goes on."""
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        command = [
            sys.executable, "-m", "pkcard.daemon.embedded_backend",
            "--state-dir", str(self.state_dir),
            "--private-socket", str(self.private_socket),
            "--public-socket", str(self.public_socket),
            "--grace", str(self._grace_s),
            "--log-level", level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
        ]
        # Its own session: a terminal's Ctrl-C reaches the daemon, which stops the child;
        # the child does not stop on its own under a daemon still serving.
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Block until the child said READY. Raises :class:`BackendProcessFailed` (and stops
        the child) if it exits first or says nothing for ``ready_timeout`` seconds."""
        process = self._process
        if process is None or process.stdout is None:
            raise BackendProcessFailed("the embedded backend was not started")
        line = b""
        deadline = time.monotonic() + self._ready_timeout
        fd = process.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0.0))
            if not readable:
                self.stop(0)
                raise BackendProcessFailed(
                    f"the embedded backend said nothing for {self._ready_timeout:.0f} s")
            chunk = os.read(fd, 64)
            if not chunk:
                status = process.wait()
                self.stop(0)
                raise BackendProcessFailed(
                    f"the embedded backend exited with status {status} (its log is above)")
            line += chunk
        if line != READY_LINE:
            self.stop(0)
            raise BackendProcessFailed("the embedded backend said something unexpected")
        process.stdout.close()
        self._watch = threading.Thread(target=self._watch_exit, args=(process,),
                                       name="pkcardd-backend-watch", daemon=True)
        self._watch.start()

    def _watch_exit(self, process: subprocess.Popen[bytes]) -> None:
        status = process.wait()
        if self._stopping.is_set():
            return
        _log.error("the embedded test backend (pid %d) exited with status %d: backend calls "
                   "fail until pkcardd is restarted", process.pid, status)
        if self._on_exit is not None:
            self._on_exit(status)

    def stop(self, grace: float | None = None) -> None:
        """Stop the child; it gives in-flight backend calls its ``grace_s``; after ``grace``
        (or ``grace_s``) seconds and a margin it is killed."""
        self._stopping.set()
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=max(grace or 0.0, self._grace_s) + STOP_MARGIN_S)
            except subprocess.TimeoutExpired:
                _log.error("the embedded test backend (pid %d) did not stop: killed", process.pid)
                process.kill()
                process.wait()
        if process.stdout is not None and not process.stdout.closed:
            process.stdout.close()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join()
        self._process = None
