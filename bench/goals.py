"""The goals of issue #14 and their machine-readable ``GOAL`` lines.

Each benchmark module prints one line per goal it measures, computed from
the figures it printed above it::

    GOAL G1 measured=1.18 goal<=1.25 ok (p99 1.32 goal<=1.50 ok)
    GOAL G3 measured=2.10 goal<=1.30 MISSED

``measured`` and ``goal`` are the goal's main ratio; a parenthesised list of
further conditions follows where the goal has more than one (a p99, a second
backend, an error count). The verdict is ``ok`` only when every condition is
met. ``python -m bench`` collects these lines from its children and reprints
them at the end in goal order, with ``GOAL Gn not measured`` for a goal whose
benchmark did not run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LINE = re.compile(r"^GOAL (?P<name>G\d+) (?:measured=\S+ goal(?:<=|>=)\S+ (?:ok|MISSED)\b.*"
                  r"|not measured)$")


@dataclass(frozen=True)
class Goal:
    """A goal: a ratio and its bound (``at_most``: measured <= bound, else >=)."""

    name: str
    what: str
    bound: float
    at_most: bool = True


GOALS: tuple[Goal, ...] = (
    Goal("G1", "pkcardd GetPinStatus (audit on) / (raw pyscard session + private gRPC call),"
               " median (p99 <= 1.5)", 1.25),
    Goal("G2", "gRPC call on the public socket / the same on the private socket", 1.10),
    Goal("G3", "SignDocument through pkcardd / raw PyKCS11 C_Login + C_Sign (SoftHSM2)", 1.30),
    Goal("G4", "pkcard.verify / bare signature verification, both token kinds", 1.15),
    Goal("G5", "64 clients on 2 readers: throughput / (2 x single-client rate)"
               " (0 errors, p99 <= 1.3 x p50)", 0.95, at_most=False),
    Goal("G6", "RSS after warm-up / python -c 'import grpc': --pcsc (--simulated <= 1.6)", 1.40),
    Goal("G7", "card insert/remove: WatchEvents delivery / raw SCardGetStatusChange wake-up,"
               " median", 1.05),
    Goal("G8", "audit group commit: fsyncs per call, 64 concurrent VerifyPin callers", 0.25),
    Goal("G9", "APDU round trip, library / raw SCardTransmit, median", 1.05),
)
_BY_NAME = {goal.name: goal for goal in GOALS}


@dataclass(frozen=True)
class Condition:
    """A further condition of a goal, e.g. ``p99 1.32 goal<=1.50``."""

    label: str
    measured: float
    bound: float
    at_most: bool = True

    @property
    def met(self) -> bool:
        return met(self.measured, self.bound, self.at_most)

    def describe(self) -> str:
        return (f"{self.label} {self.measured:.2f} goal{_op(self.at_most)}{self.bound:.2f}"
                f" {_verdict(self.met)}")


def met(measured: float, bound: float, at_most: bool) -> bool:
    return measured <= bound if at_most else measured >= bound


def _op(at_most: bool) -> str:
    return "<=" if at_most else ">="


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def goal_line(name: str, measured: float, *conditions: Condition) -> str:
    """The ``GOAL`` line of goal ``name`` for its main ratio ``measured``."""
    goal = _BY_NAME[name]
    ok = met(measured, goal.bound, goal.at_most) and all(c.met for c in conditions)
    line = f"GOAL {name} measured={measured:.2f} goal{_op(goal.at_most)}{goal.bound:.2f}"
    line += f" {_verdict(ok)}"
    if conditions:
        line += " (" + "; ".join(c.describe() for c in conditions) + ")"
    return line


def print_goal(name: str, measured: float, *conditions: Condition) -> None:
    print(goal_line(name, measured, *conditions), flush=True)


def collect(lines: Iterable[str], into: dict[str, str]) -> None:
    """Record each ``GOAL`` line of ``lines`` under its goal (a later line wins)."""
    for line in lines:
        match = LINE.match(line.rstrip("\n"))
        if match is not None and match["name"] in _BY_NAME:
            into[match["name"]] = line.rstrip("\n")


def summary(found: Mapping[str, str]) -> list[str]:
    """One line per goal, in order: the collected one, or ``GOAL Gn not measured``."""
    return [found.get(goal.name, f"GOAL {goal.name} not measured") for goal in GOALS]
