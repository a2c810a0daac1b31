"""Test rig for the PK/KZZ application tests: simulated cards behind a spying connection."""

from __future__ import annotations

from dataclasses import dataclass, field

from pkcard.errors import CardReset
from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.transport import SmartCardConnection

PIN_INS = frozenset({0x20, 0x24, 0x2C})


@dataclass(frozen=True)
class Sent:
    """One command as the spy saw it: header and body length, never the body."""

    ins: int
    p1: int
    p2: int
    body_length: int
    in_transaction: bool


@dataclass
class SpyConnection(SmartCardConnection):
    """Wraps a connection; records command headers and transactions; can inject a reset."""

    inner: SmartCardConnection
    sent: list[Sent] = field(default_factory=list)
    transactions: int = 0
    depth: int = 0
    reset_next: bool = False

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, command: bytes) -> bytes:
        if self.reset_next:
            self.reset_next = False
            raise CardReset("injected reset")
        lc = command[4] if len(command) > 5 else 0
        self.sent.append(Sent(command[1], command[2], command[3], lc, self.depth > 0))
        return self.inner.transmit(command)

    def begin_transaction(self) -> None:
        self.depth += 1
        self.transactions += 1
        self.inner.begin_transaction()

    def end_transaction(self) -> None:
        self.depth -= 1
        self.inner.end_transaction()

    def close(self) -> None:
        self.inner.close()

    def secret_commands(self) -> list[Sent]:
        """PIN commands that carried a body (status reads excluded)."""
        return [s for s in self.sent if s.ins in PIN_INS and s.body_length]


@dataclass
class PkRig:
    card: SimulatedCard
    spy: SpyConnection
    app: ProfessionalCard

    def secret(self, ref: SecretRef) -> str:
        return self.card.profile.secret_value(ref)


@dataclass
class KzzRig:
    card: SimulatedCard
    spy: SpyConnection
    app: HealthInsuranceCard


def make_card(name: str) -> tuple[SimulatedCard, SpyConnection]:
    card = SimulatedCard.from_profile(load_profile(name))
    return card, SpyConnection(InProcessConnection(card))
