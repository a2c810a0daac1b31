"""One worker thread per reader, so card operations never interleave.

Every card operation is a job on its reader's queue. Jobs on one reader run
one at a time in arrival order; readers do not wait on each other. A job
whose call was cancelled, or whose deadline passed, while it was queued is
skipped without touching the card. The worker connects to the card for each
job and closes the connection after it (leaving the card powered); the card
application wraps each multi-APDU operation in ``connection.transaction()``.

Every call is bounded by the daemon's own per-call limit (``call_timeout``,
``limits.call_timeout_s``): a client that sets no deadline (grpcurl and most
Java, .NET and Node clients by default) gets that limit, a client deadline
shorter than it is honoured as it is.

Threads are created on a reader's first job and owned by :class:`ReaderWorkers`;
when ``max_readers`` workers exist, those of readers no longer attached are
retired; :meth:`ReaderWorkers.stop` ends and joins them all.
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

from pkcard.errors import CallTimeout, DaemonBusy, DaemonUnavailable, ReaderNotFound
from pkcard.readers import ReaderSystem
from pkcard.transport import SmartCardConnection

_log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT_S = 60.0  # limits.call_timeout_s
CardOperation = Callable[[SmartCardConnection], T]


class CallCancelled(DaemonUnavailable):
    """The caller went away before its queued operation started."""


@dataclass
class _Job:
    operation: Callable[[SmartCardConnection], Any]
    deadline: float | None  # time.monotonic() value
    is_active: Callable[[], bool]
    result: Future[Any] = field(default_factory=Future)


_STOP = None


class _ReaderWorker:
    def __init__(self, reader: str, readers: ReaderSystem, queue_size: int) -> None:
        self.reader = reader
        self._readers = readers
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(
            target=self._run, name=f"pkcardd-reader-{reader}", daemon=True
        )

    def _run(self) -> None:
        while (job := self.jobs.get()) is not _STOP:
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
            try:
                with self._readers.connect(self.reader) as connection:
                    job.result.set_result(job.operation(connection))
            except BaseException as exc:  # handed to the waiting caller, re-raised there
                job.result.set_exception(exc)


class ReaderWorkers:
    """Runs card operations on per-reader worker threads."""

    def __init__(
        self, readers: ReaderSystem, *, max_readers: int = 32, queue_size: int = 64,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self._readers = readers
        self._call_timeout = call_timeout
        self._max_readers = max_readers
        self._queue_size = queue_size
        self._workers: dict[str, _ReaderWorker] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._retired: list[_ReaderWorker] = []

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
                worker = _ReaderWorker(reader, self._readers, self._queue_size)
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
        """Run ``operation`` on a fresh connection to ``reader``'s card; return its result.

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
