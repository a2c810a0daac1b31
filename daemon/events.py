"""Fan-out of reader events to every WatchEvents stream.

One :class:`EventHub` owns the reader system's single watcher
(:meth:`pkcard.readers.ReaderSystem.start_watching`) and copies each event
into a bounded queue per subscriber. A subscriber whose queue is full is
dropped at once (its stream ends with RESOURCE_EXHAUSTED); the watcher and
the other subscribers never wait for it.

A new subscriber is registered before the snapshot of the current state is
taken, so no change is lost; an event right after the snapshot may repeat a
change the snapshot already shows.

Listeners (:meth:`EventHub.add_listener`, the session registry) see each
reader event on the watcher thread right after the streams got it, and may
publish a :class:`SessionEndedEvent` in turn.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pkcard.errors import DaemonBusy, DaemonUnavailable, SessionEndReason
from pkcard.readers import EventSink, ReaderEvent, ReaderState, ReaderSystem

_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class SessionEndedEvent:
    """A dual-card session ended. ``reader``: whose event ended it (empty if none)."""

    session_id: str
    end_reason: SessionEndReason
    reader: str = ""


HubEvent = ReaderEvent | SessionEndedEvent


class Subscription:
    """One stream's view of the hub: a snapshot, then live events."""

    def __init__(self, hub: EventHub, size: int) -> None:
        self._hub = hub
        self._events: queue.Queue[HubEvent] = queue.Queue(maxsize=size)
        self._overflowed = threading.Event()
        self._closed = threading.Event()
        self.snapshot: list[ReaderState] = []

    def offer(self, event: HubEvent) -> bool:
        """Queue ``event``; False (and marked overflowed) when the queue is full."""
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self._overflowed.set()
            return False
        return True

    def close(self) -> None:
        self._closed.set()

    def next_event(self, is_active: Callable[[], bool]) -> HubEvent | None:
        """The next event; None when the caller is gone.

        Raises :class:`DaemonBusy` after an overflow and
        :class:`DaemonUnavailable` when the hub shuts down.
        """
        while True:
            if self._overflowed.is_set():
                raise DaemonBusy(
                    "event stream dropped: the client did not read events fast enough"
                )
            try:
                return self._events.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._closed.is_set():
                    raise DaemonUnavailable("pkcardd is shutting down") from None
                if not is_active():
                    return None

    def cancel(self) -> None:
        """Unsubscribe. Idempotent."""
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventHub:
    """Owns the reader watcher; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(self, readers: ReaderSystem, queue_size: int, max_subscribers: int) -> None:
        self._readers = readers
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._subscribers: set[Subscription] = set()
        self._listeners: list[EventSink] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: EventSink) -> None:
        """Also hand every reader event to ``listener`` (on the watcher thread). Before start."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._readers.start_watching(self._publish)

    def stop(self) -> None:
        """Stop the watcher and end every stream. Idempotent."""
        self._readers.stop_watching()
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for subscription in subscribers:
            subscription.close()

    def subscribe(self) -> Subscription:
        """Register a new stream and take its snapshot. :class:`DaemonBusy` beyond the limit."""
        subscription = Subscription(self, self._queue_size)
        with self._lock:
            if len(self._subscribers) >= self._max_subscribers:
                raise DaemonBusy(f"too many event streams (limit {self._max_subscribers})")
            self._subscribers.add(subscription)
        try:
            subscription.snapshot = self._readers.list_readers()
        except BaseException:
            self.unsubscribe(subscription)
            raise
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, event: HubEvent) -> None:
        """Deliver an event the daemon itself made (PIN pad entry, session end)."""
        self._fan_out(event)

    def _publish(self, event: ReaderEvent) -> None:
        self._fan_out(event)
        for listener in self._listeners:
            listener(event)

    def _fan_out(self, event: HubEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            if not subscription.offer(event):
                self.unsubscribe(subscription)
