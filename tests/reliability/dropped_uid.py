"""Run test code in a child process as another local user, without importing after the drop.

CI clones the repository into a ``mktemp -d`` folder (mode 0700), so a
dropped user may be unable to read the checkout, its venv and even the
interpreter's standard library (the interpreter may live under /root). The
child is therefore spawned while root, imports everything it needs (the
target's module, ``LAZY_MODULES`` and the caller's ``preload``), installs a
finder that refuses any further import (so a missing preload fails loudly on
every machine instead of hanging where the files are unreadable), and only
then drops to the user with setgroups/setgid/setuid.

Whatever the child raises is sent back to the parent as a ``ChildFailed``;
``Child.get`` raises it at once, and notices a child that died without a word,
so the parent never waits for its whole timeout on a broken child.
"""

from __future__ import annotations

import importlib
import importlib.abc
import multiprocessing
import os
import queue
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

# Imported lazily, on the first channel or call: loaded before the uid drops.
LAZY_MODULES = ("grpc._channel", "grpc._interceptor")


class NoMoreImports(importlib.abc.MetaPathFinder):
    """Refuses to find any module not imported yet, as the file system may after the drop."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"{name} is imported after the uid drop; preload it before the drop")


@dataclass(frozen=True)
class ChildFailed:
    """What a child raised, as text (its traceback)."""

    text: str


def drop_to(uid: int, gid: int, groups: Iterable[int], preload: Iterable[str] = ()) -> None:
    """Import ``LAZY_MODULES`` and ``preload``, refuse further imports, become ``uid``."""
    for module in (*LAZY_MODULES, *preload):
        importlib.import_module(module)
    sys.meta_path.insert(0, NoMoreImports())
    os.setgroups(list(groups))
    os.setgid(gid)
    os.setuid(uid)


def _run_dropped(uid: int, gid: int, groups: list[int], preload: tuple[str, ...],
                 target: Callable[..., None], args: tuple[Any, ...],
                 reports: Queue[Any]) -> None:
    """In the spawned child: drop, then ``target(*args, reports)``; report any failure."""
    try:
        drop_to(uid, gid, groups, preload)
        target(*args, reports)
    except BaseException:  # every failure goes to the parent, which fails the test
        reports.put(ChildFailed(traceback.format_exc()))
        raise


class Child:
    """A spawned child running as another user; ``get`` reads what it reported."""

    def __init__(self, process: SpawnProcess, reports: Queue[Any]) -> None:
        self.process = process
        self.reports = reports

    def get(self, timeout: float) -> Any:
        """The child's next report; raises at once if the child failed or died."""
        give_up = time.monotonic() + timeout
        while True:
            try:
                report = self.reports.get(timeout=0.2)
            except queue.Empty:
                if not self.process.is_alive():
                    try:  # a last report may have arrived just before the exit
                        report = self.reports.get(timeout=1)
                    except queue.Empty:
                        raise AssertionError(
                            f"the child process ended with {self.process.exitcode} "
                            "without reporting") from None
                elif time.monotonic() > give_up:
                    raise AssertionError(f"the child reported nothing in {timeout} s") from None
                else:
                    continue
            if isinstance(report, ChildFailed):
                raise AssertionError(f"the child process failed:\n{report.text}")
            return report

    def close(self, timeout: float = 30) -> int | None:
        """Wait for the child (killing it after ``timeout``); its exit code."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(5)
        return self.process.exitcode


def spawn_as(uid: int, gid: int, groups: Iterable[int], target: Callable[..., None],
             *args: Any, preload: Iterable[str] = ()) -> Child:
    """Spawn ``target(*args, reports)`` (a module-level function) as ``uid``/``gid``/``groups``."""
    context = multiprocessing.get_context("spawn")
    reports: Queue[Any] = context.Queue()
    process = context.Process(
        target=_run_dropped,
        args=(uid, gid, list(groups), tuple(preload), target, args, reports),
    )
    process.start()
    return Child(process, reports)
