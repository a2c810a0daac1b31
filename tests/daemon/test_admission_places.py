"""CallExecutor.admit: a place taken by the admission decision, used by the submit after it.

pkcardd runs several gRPC servers (the private socket's and one per user
socket) on one executor, so several polling threads decide and submit at
once. A call admitted on one thread must not lose its place to another
thread's call between the decision and the submit.
"""

from __future__ import annotations

import threading

from pkcard.daemon.admission import CallExecutor


def _names(executor: CallExecutor, calls: int) -> list[str]:
    """Submit ``calls`` calls that block; the name of the thread each runs on."""
    names: list[str] = []
    release = threading.Event()

    def call() -> None:
        names.append(threading.current_thread().name)
        release.wait(10)

    futures = [executor.submit(call) for _ in range(calls)]
    release.set()
    for future in futures:
        future.result(10)
    return names


def test_an_admitted_call_keeps_its_place_against_another_threads_call() -> None:
    executor = CallExecutor(max_workers=2, max_calls=1, thread_name_prefix="t-rpc")
    try:
        assert executor.admit()  # this thread's next call has the one place
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(executor.admit()))
        thread.start()
        thread.join()
        assert other == [False]  # another polling thread finds none left
        assert executor.full
        release = threading.Event()
        ran_on: list[str] = []

        def call() -> None:
            ran_on.append(threading.current_thread().name)
            release.wait(10)

        future = executor.submit(call)  # uses the place: runs on the pool, not refused
        release.set()
        future.result(10)
        assert ran_on[0].startswith("t-rpc_")
        assert not ran_on[0].startswith("t-rpc-refusals")
        assert not executor.full  # released when it ended, counted once
    finally:
        executor.shutdown()


def test_a_place_not_used_carries_over_and_is_not_counted_twice() -> None:
    executor = CallExecutor(max_workers=2, max_calls=2, thread_name_prefix="t-rpc")
    try:
        assert executor.admit()
        assert executor.admit()  # the same place (gRPC dropped the call before submitting)
        assert not executor.full
        names = _names(executor, 1)
        assert not names[0].startswith("t-rpc-refusals")
        assert not executor.full
    finally:
        executor.shutdown()
