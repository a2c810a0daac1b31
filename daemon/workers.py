"""One worker thread per reader, so card operations never interleave.

Every card operation is a job on its reader's queue. Jobs on one reader run
one at a time in arrival order; readers do not wait on each other. A job
whose call was cancelled, or whose deadline passed, while it was queued is
skipped without touching the card. The card application wraps each
multi-APDU operation in ``connection.transaction()``.

**One held connection per worker.** The worker connects on its reader's first
job and keeps that connection for the jobs that follow, instead of connecting,
checking status and disconnecting every time. Before it hands the connection
to the next job it asks :meth:`~pkcard.transport.SmartCardConnection.check`
(one ``SCardStatus``: ATR, power and pcscd's card event counter):

- ``SAME``: the job runs on it.
- ``RESET`` (another application reset the card, or it lost power): the
  connection has acknowledged it; every card listener hears of it (pkcardd
  ends the reader's sessions with CARD_RESET and drops the card's PIN reuse
  credits), then the job runs and sees the card as it now is.
- ``GONE`` (the card left, even if one is back; the reader left; pcscd
  restarted): the listeners hear of it, the connection is closed and a new
  one is made for the job, so a new card never inherits the old one's
  connection. The jobs read the card's serial from the card.

A job that fails with :class:`~pkcard.errors.CardReset` (a reset between two
of its transactions) is reported the same way; one that fails with another
transport error (card pulled mid-command, pcscd gone, a card that never
answers) closes the connection, and the caller gets the typed error as before.
After ``idle_release_s`` without a job the worker closes the connection
(``SCARD_LEAVE_CARD``): while a connection is open pcscd never powers the card
down, so holding it forever would keep a verified PIN verified forever; once
released, pcscd powers an idle card down after its own grace period as it
always did, and the next job connects afresh.

Every call is bounded by the daemon's own per-call limit (``call_timeout``,
``limits.call_timeout_s``): a client that sets no deadline (grpcurl and most
Java, .NET and Node clients by default) gets that limit, a client deadline
shorter than it is honoured as it is.

Threads are created on a reader's first job and owned by :class:`ReaderWorkers`;
when ``max_readers`` workers exist, those of readers no longer attached are
retired; :meth:`ReaderWorkers.stop` ends and joins them all. A worker closes
its connection on its own thread when it ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pkcard.errors import (
    CallTimeout,
    CardReset,
    DaemonBusy,
    DaemonUnavailable,
    PkcardError,
    ReaderNotFound,
    TransportError,
)
from pkcard.readers import ReaderSystem
from pkcard.transport import CardContinuity, SmartCardConnection

_log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT_S = 60.0  # limits.call_timeout_s
DEFAULT_IDLE_RELEASE_S = 5.0  # limits.card_idle_release_s
CardOperation = Callable[[SmartCardConnection], T]
CardListener = Callable[[str, CardContinuity], None]
"""Told ``(reader, RESET or GONE)`` on the reader's worker thread: the card there lost
every verified state (it was reset or lost power, or it left or pcscd restarted)."""


class CallCancelled(DaemonUnavailable):
    """The caller went away before its queued operation started."""


@dataclass
class _Job:
    operation: Callable[[SmartCardConnection], Any]
    deadline: float | None  # time.monotonic() value
    is_active: Callable[[], bool]
    result: Future[Any] = field(default_factory=Future)


_STOP = None


def _keeps_connection(exc: BaseException) -> bool:
    """Whether the held connection survives a job that raised ``exc``.

    It does when the card answered (an application error) and after an
    acknowledged reset; any other transport error, or a bug, closes it.
    """
    if isinstance(exc, CardReset):
        return True
    return isinstance(exc, PkcardError) and not isinstance(exc, TransportError)


class _ReaderWorker:
    def __init__(self, reader: str, readers: ReaderSystem, queue_size: int,
                 idle_release_s: float, listeners: tuple[CardListener, ...]) -> None:
        self.reader = reader
        self._readers = readers
        self._idle_release_s = idle_release_s
        self._listeners = listeners
        self._held: SmartCardConnection | None = None  # used on this worker's thread only
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(
            target=self._run, name=f"pkcardd-reader-{reader}", daemon=True
        )

    def _run(self) -> None:
        try:
            while (job := self._next_job()) is not _STOP:
                if not job.result.set_running_or_notify_cancel():
                    continue
                if not job.is_active():
                    job.result.set_exception(CallCancelled("the call was cancelled while queued"))
                    continue
                if job.deadline is not None and time.monotonic() >= job.deadline:
                    job.result.set_exception(
                        CallTimeout("the deadline expired while queued; the card was not touched")
                    )
                    continue
                self._serve(job)
        finally:
            self._release()

    def _next_job(self) -> _Job | None:
        """The next job; while none comes for ``idle_release_s``, release the connection."""
        while True:
            try:
                if self._held is None:
                    return self.jobs.get()
                return self.jobs.get(timeout=self._idle_release_s)
            except queue.Empty:
                self._release()

    def _serve(self, job: _Job) -> None:
        try:
            connection = self._connection()
            result = job.operation(connection)
        except BaseException as exc:  # handed to the waiting caller, re-raised there
            if isinstance(exc, CardReset) and self._held is not None:
                self._report(CardContinuity.RESET)
            if not _keeps_connection(exc):
                self._release()
            job.result.set_exception(exc)
        else:
            job.result.set_result(result)

    def _connection(self) -> SmartCardConnection:
        """The held connection if it still reaches the same card; else a new one."""
        held = self._held
        if held is not None:
            continuity = held.check()
            if continuity is CardContinuity.SAME:
                return held
            self._report(continuity)
            if continuity is CardContinuity.RESET:
                return held
            self._release()
        self._held = self._readers.connect(self.reader)
        return self._held

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            try:
                held.close()
            except PkcardError as exc:  # a dead handle: nothing left to release
                _log.debug("reader %r: closing its connection: %s", self.reader, exc)

    def _report(self, continuity: CardContinuity) -> None:
        if continuity is CardContinuity.RESET:
            _log.info("reader %r: the card was reset or lost power; its verified states are "
                      "gone", self.reader)
        for listener in self._listeners:
            try:
                listener(self.reader, continuity)
            except Exception:  # a listener's bug must not stop the reader
                _log.exception("reader %r: card listener failed", self.reader)


class ReaderWorkers:
    """Runs card operations on per-reader worker threads."""

    def __init__(
        self, readers: ReaderSystem, *, max_readers: int = 32, queue_size: int = 64,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_S,
        idle_release_s: float = DEFAULT_IDLE_RELEASE_S,
    ) -> None:
        self._readers = readers
        self._call_timeout = call_timeout
        self._idle_release_s = idle_release_s
        self._listeners: tuple[CardListener, ...] = ()
        self._max_readers = max_readers
        self._queue_size = queue_size
        self._workers: dict[str, _ReaderWorker] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._retired: list[_ReaderWorker] = []

    def add_listener(self, listener: CardListener) -> None:
        """Tell ``listener`` when a reader's card loses its verified states (before any job)."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def _worker(self, reader: str) -> _ReaderWorker:
        with self._lock:
            if self._stopped:
                raise DaemonUnavailable("pkcardd is shutting down")
            worker = self._workers.get(reader)
            if worker is not None:
                return worker
        present = {state.reader.name for state in self._readers.list_readers()}
        if reader not in present:
            raise ReaderNotFound(f"no reader named {reader!r}")
        with self._lock:
            worker = self._workers.get(reader)
            if worker is None:
                if len(self._workers) >= self._max_readers:
                    self._retire_absent(present)
                if len(self._workers) >= self._max_readers:
                    raise DaemonBusy("too many readers in use")
                worker = _ReaderWorker(reader, self._readers, self._queue_size,
                                       self._idle_release_s, self._listeners)
                self._workers[reader] = worker
                worker.thread.start()
            return worker

    def _retire_absent(self, present: set[str]) -> None:
        """End the workers of unplugged readers (they finish their queue first). Under lock."""
        for name in [name for name in self._workers if name not in present]:
            worker = self._workers.pop(name)
            worker.jobs.put(_STOP)
            self._retired.append(worker)

    def run(
        self,
        reader: str,
        operation: CardOperation[T],
        *,
        timeout: float | None = None,
        is_active: Callable[[], bool] = lambda: True,
    ) -> T:
        """Run ``operation`` on the worker's connection to ``reader``'s card; return its result.

        The connection is the worker's held one when it still reaches the same
        card, unchanged (see the module text); ``operation`` must not close it.

        ``timeout`` is the call's remaining time in seconds, at most the
        per-call limit (None, or gRPC's "infinite" remaining time of a call
        without a deadline, mean the limit): if it runs out
        while queued, the operation never starts (:class:`CallTimeout`).
        Once started, an operation always runs to its end on the reader's
        thread, but the caller stops waiting at the deadline (CallTimeout):
        PC/SC has no timeout on a card that never answers, and a stuck card
        must not hold the gRPC thread.
        """
        timeout = self._call_timeout if timeout is None else min(timeout, self._call_timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        job = _Job(operation=operation, deadline=deadline, is_active=is_active)
        try:
            self._worker(reader).jobs.put_nowait(job)
        except queue.Full:
            raise DaemonBusy(f"too many calls queued on reader {reader!r}") from None
        wait = max(0.0, deadline - time.monotonic())
        try:
            result: T = job.result.result(timeout=wait)
        except TimeoutError:
            raise CallTimeout(
                "the card did not answer before the deadline; the operation may still complete"
            ) from None
        return result

    def stop(self, timeout: float | None = None) -> list[str]:
        """Finish the jobs already queued, then end and join every worker. Idempotent.

        With ``timeout``, wait at most that long in all: a worker stuck on a card
        that never answers (PC/SC has no timeout for it) is left behind, and its
        reader is returned so the caller can say so. Worker threads are daemon
        threads for exactly this case: a stuck card must not keep the process alive.
        """
        with self._lock:
            self._stopped = True
            workers = list(self._workers.values())
            self._workers.clear()
            retired, self._retired = self._retired, []
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        for worker in workers:
            try:
                worker.jobs.put(_STOP, timeout=remaining())
            except queue.Full:
                _log.warning("reader %r: worker queue still full at shutdown", worker.reader)
        stuck = []
        for worker in (*workers, *retired):
            worker.thread.join(remaining())
            if worker.thread.is_alive():
                stuck.append(worker.reader)
        return stuck
