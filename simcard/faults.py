"""Fault injection for simulated cards: broken answers, slow cards, cards pulled mid-command.

A :class:`FaultPlan` is a list of :class:`FaultRule`: which commands (by INS,
after how many matching ones) get which :class:`Fault`. Two wrappers apply it:

* :class:`FaultyCard` wraps a card for a vpcd slot or any ``CardLike`` user:
  answers are truncated, padded, garbled, stuck in 61xx or 6Cxx, slow, or
  never come (until :meth:`FaultPlan.release`). A card pulled mid-command is
  the slot's job there (:meth:`pkcard.simcard.vpcd.VpcdCardSlot.pull_on_next_apdu`).
* :class:`FaultyConnection` wraps a :class:`~pkcard.transport.SmartCardConnection`
  and adds the pulls: before the card sees the command, or after it executed
  it but before the answer reached the host.

Nothing here keeps module state; each plan counts its own commands under a lock.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import IntEnum

from pkcard.errors import CardRemoved
from pkcard.simcard.vpcd import CardLike
from pkcard.transport import ReaderCapabilities, SmartCardConnection

OVERLONG_PADDING = 300  # bytes added by Fault.OVERLONG: beyond any short response


class Fault(IntEnum):
    """What happens to one command."""

    PULL_BEFORE = 1  # the card leaves before it sees the command
    PULL_AFTER = 2  # the card executes the command, then leaves before answering
    TRUNCATED = 3  # one byte of answer: no status word
    EMPTY = 4  # no bytes at all
    OVERLONG = 5  # the real data with padding beyond 256 bytes, then the real SW
    GARBAGE = 6  # random bytes of random length (seeded) instead of the answer
    ENDLESS_61 = 7  # 61 10 to this and to every later command: a GET RESPONSE chain without end
    WRONG_LE_LOOP = 8  # 6C 10 to this command and to every resend
    SLOW = 9  # the real answer after ``delay_s``
    SILENT = 10  # no answer until the plan is released (or ``delay_s`` passes, when set)


_STICKY = frozenset({Fault.ENDLESS_61, Fault.WRONG_LE_LOOP})


@dataclass(frozen=True)
class FaultRule:
    """Apply ``fault`` to commands with instruction ``ins`` (any when None).

    The first ``skip`` matching commands pass untouched; the next ``count``
    get the fault (``count`` 0: every later one). ENDLESS_61, once
    triggered, also answers every GET RESPONSE after it, and WRONG_LE_LOOP
    every resend (same INS), until another command comes.
    """

    fault: Fault
    ins: int | None = None
    skip: int = 0
    count: int = 1
    delay_s: float = 0.0


@dataclass(frozen=True)
class SentHeader:
    """A command as the plan saw it: header and body length, never the body."""

    ins: int
    p1: int
    p2: int
    body_length: int

    @classmethod
    def of(cls, command: bytes) -> SentHeader:
        padded = command[:4].ljust(4, b"\0")
        body = command[4] if len(command) > 5 else 0
        return cls(padded[1], padded[2], padded[3], body)


@dataclass
class FaultPlan:
    """The rules, and what has fired so far. Thread-safe."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    fired: list[Fault] = field(default_factory=list)
    sent: list[SentHeader] = field(default_factory=list)
    _seen: dict[int, int] = field(default_factory=dict)
    _sticky: Fault | None = None
    _sticky_ins: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - test data, not secrets

    def release(self) -> None:
        """Let every SILENT command answer now (and later ones at once)."""
        self._released.set()

    def next_fault(self, command: bytes) -> FaultRule | None:
        """The rule that applies to ``command``, counting it."""
        ins = command[1] if len(command) > 1 else -1
        with self._lock:
            self.sent.append(SentHeader.of(command))
            if self._sticky is not None and ins == self._sticky_ins:
                self.fired.append(self._sticky)
                return FaultRule(self._sticky)
            self._sticky = None
            for index, rule in enumerate(self.rules):
                if rule.ins is not None and rule.ins != ins:
                    continue
                seen = self._seen.get(index, 0)
                self._seen[index] = seen + 1
                if seen < rule.skip or (rule.count and seen >= rule.skip + rule.count):
                    continue
                if rule.fault in _STICKY:
                    self._sticky = rule.fault
                    self._sticky_ins = 0xC0 if rule.fault is Fault.ENDLESS_61 else ins
                self.fired.append(rule.fault)
                return rule
        return None

    def wait(self, rule: FaultRule) -> None:
        """Block as SLOW or SILENT says."""
        if rule.fault is Fault.SLOW:
            self._released.wait(rule.delay_s)
        elif rule.fault is Fault.SILENT:
            self._released.wait(rule.delay_s or None)

    def garble(self, rule: FaultRule, answer: bytes) -> bytes:
        """The answer the host sees under ``rule`` instead of ``answer``."""
        fault = rule.fault
        if fault is Fault.TRUNCATED:
            return answer[:1]
        if fault is Fault.EMPTY:
            return b""
        if fault is Fault.OVERLONG:
            return answer[:-2] + bytes(OVERLONG_PADDING) + answer[-2:]
        if fault is Fault.GARBAGE:
            with self._lock:
                size = self._rng.randrange(0, 600)
                return self._rng.randbytes(size)
        if fault is Fault.ENDLESS_61:
            return b"\x61\x10"
        if fault is Fault.WRONG_LE_LOOP:
            return b"\x6c\x10"
        return answer


class FaultyCard:
    """A ``CardLike`` that answers through a :class:`FaultPlan` (for vpcd slots)."""

    def __init__(self, card: CardLike, plan: FaultPlan) -> None:
        self._card = card
        self.plan = plan

    @property
    def atr(self) -> bytes:
        return self._card.atr

    def execute(self, apdu: bytes) -> bytes:
        rule = self.plan.next_fault(apdu)
        if rule is None:
            return self._card.execute(apdu)
        self.plan.wait(rule)
        if rule.fault in (Fault.ENDLESS_61, Fault.WRONG_LE_LOOP):
            return self.plan.garble(rule, b"")
        return self.plan.garble(rule, self._card.execute(apdu))

    def power_off(self) -> None:
        self._card.power_off()

    def reset(self) -> None:
        self._card.reset()


class FaultyConnection(SmartCardConnection):
    """A connection whose transmits go through a :class:`FaultPlan`, pulls included."""

    def __init__(self, inner: SmartCardConnection, plan: FaultPlan) -> None:
        self._inner = inner
        self.plan = plan

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._inner.capabilities

    def transmit(self, command: bytes) -> bytes:
        rule = self.plan.next_fault(command)
        if rule is None:
            return self._inner.transmit(command)
        if rule.fault is Fault.PULL_BEFORE:
            raise CardRemoved("the card was pulled before it saw the command")
        self.plan.wait(rule)
        if rule.fault in (Fault.ENDLESS_61, Fault.WRONG_LE_LOOP):
            return self.plan.garble(rule, b"")
        answer = self._inner.transmit(command)
        if rule.fault is Fault.PULL_AFTER:
            raise CardRemoved("the card was pulled before its answer arrived")
        return self.plan.garble(rule, answer)

    def begin_transaction(self) -> None:
        self._inner.begin_transaction()

    def end_transaction(self) -> None:
        self._inner.end_transaction()

    def close(self) -> None:
        self._inner.close()
