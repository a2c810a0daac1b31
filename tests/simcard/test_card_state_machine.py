"""The card's secret handling against a plain model of docs/card-profile.md.

Random sequences of VERIFY (right, wrong, status read), CHANGE REFERENCE
DATA, signature activation, RESET RETRY COUNTER, signatures, authentication
and power-off, sent as raw APDUs; after every step the card's answer and its
counters must equal the model's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef, SecretState, pad_secret, secret_format

PIN, PUK, SPIN, TPIN, PW = (
    SecretRef.PIN,
    SecretRef.PUK,
    SecretRef.SPIN,
    SecretRef.TPIN,
    SecretRef.REACTIVATION,
)
CANDIDATES = {
    PIN: ["58392671", "60418357", "4907", "748291"],
    PUK: ["73920584", "40719382"],
    SPIN: ["69472538", "7205916", "583027"],
    TPIN: ["836194", "470193"],
    PW: ["Reakt!pkcard-7Q", "Other#secret-99"],
}
DIGEST = hashlib.sha256(b"state machine").digest()
SLOW = os.environ.get("HYPOTHESIS_PROFILE") == "slow"


@dataclass
class Model:
    value: dict[SecretRef, str | None]
    tries: dict[SecretRef, int]
    state: dict[SecretRef, SecretState]
    verified: set[SecretRef] = field(default_factory=set)

    def refusal(self, ref: SecretRef) -> int | None:
        if self.state[ref] != SecretState.ACTIVE:
            return 0x6984
        if self.tries[ref] == 0:
            return 0x6983
        return None

    def present(self, ref: SecretRef, value: str) -> int:
        if value == self.value[ref]:
            self.tries[ref] = secret_format(ref).max_tries
            return 0x9000
        self.verified.discard(ref)
        self.tries[ref] -= 1
        if ref == PUK and self.tries[ref] == 0:
            self.tries[PIN] = 0
            self.verified.discard(PIN)
        return 0x63C0 | self.tries[ref]


def block(ref: SecretRef, value: str) -> bytes:
    return pad_secret(value.encode(), secret_format(ref).block_length)


class CardAgainstModel(RuleBasedStateMachine):
    card: SimulatedCard
    model: Model

    @initialize(
        name=st.sampled_from(["pk-regular", "pk-transport", "pk-blocked"]),
        puk_tries=st.integers(1, 5),
    )
    def insert(self, name: str, puk_tries: int) -> None:
        loaded = load_profile(name)
        profile = dataclasses.replace(
            loaded,
            secrets=tuple(
                dataclasses.replace(s, tries_left=puk_tries) if s.ref == PUK else s
                for s in loaded.secrets
            ),
        )
        self.card = SimulatedCard.from_profile(profile)
        self.model = Model(
            value={s.ref: s.value for s in profile.secrets},
            tries={s.ref: s.tries_left for s in profile.secrets},
            state={s.ref: s.state for s in profile.secrets},
        )

    def sw(self, apdu: bytes) -> int:
        response = self.card.execute(apdu)
        return int.from_bytes(response[-2:], "big")

    def other_than(self, ref: SecretRef, pick: int) -> str:
        options = [v for v in CANDIDATES[ref] if v != self.model.value[ref]]
        return options[pick % len(options)]

    @rule(
        ref=st.sampled_from([PIN, PUK, SPIN, TPIN, PW]), right=st.booleans(), pick=st.integers(0, 3)
    )
    def verify(self, ref: SecretRef, right: bool, pick: int) -> None:
        m = self.model
        value = m.value[ref] if right and m.value[ref] is not None else self.other_than(ref, pick)
        assert value is not None
        expected = m.refusal(ref)
        if expected is None:
            expected = m.present(ref, value)
            if expected == 0x9000:
                m.verified.add(ref)
        body = block(ref, value)
        assert self.sw(bytes([0, 0x20, 0, ref, len(body)]) + body) == expected

    @rule(ref=st.sampled_from([PIN, PUK, SPIN, TPIN, PW]))
    def status(self, ref: SecretRef) -> None:
        m = self.model
        expected = m.refusal(ref)
        if expected is None:
            expected = 0x9000 if ref in m.verified else 0x63C0 | m.tries[ref]
        assert self.sw(bytes([0, 0x20, 0, ref])) == expected

    @rule(
        ref=st.sampled_from([PIN, SPIN, PW]),
        right=st.booleans(),
        pick=st.integers(0, 3),
        new_pick=st.integers(0, 3),
    )
    def change(self, ref: SecretRef, right: bool, pick: int, new_pick: int) -> None:
        m = self.model
        new = CANDIDATES[ref][new_pick % len(CANDIDATES[ref])]
        old_ref = TPIN if ref == SPIN and m.state[SPIN] == SecretState.TRANSPORT else ref
        old = m.value[old_ref] if right and m.value[old_ref] else self.other_than(old_ref, pick)
        assert old is not None
        expected = m.refusal(old_ref)
        if expected is None:
            expected = m.present(old_ref, old)
            if expected == 0x9000:
                m.value[ref] = new
                m.tries[ref] = secret_format(ref).max_tries
                if old_ref == TPIN:
                    m.state[SPIN] = SecretState.ACTIVE
                    m.state[TPIN] = SecretState.DISABLED
                    m.verified -= {SPIN, TPIN}
                else:
                    m.verified.add(ref)
        body = block(old_ref, old) + block(ref, new)
        assert self.sw(bytes([0, 0x24, 0, ref, len(body)]) + body) == expected

    @rule(right=st.booleans(), pick=st.integers(0, 3), new_pick=st.integers(0, 3))
    def unblock(self, right: bool, pick: int, new_pick: int) -> None:
        m = self.model
        puk = m.value[PUK] if right else self.other_than(PUK, pick)
        assert puk is not None
        new = CANDIDATES[PIN][new_pick % len(CANDIDATES[PIN])]
        if m.tries[PUK] == 0:
            expected = 0x6983
        else:
            expected = m.present(PUK, puk)
            if expected == 0x9000:
                m.value[PIN] = new
                m.tries[PIN] = 3
                m.verified.discard(PIN)
        body = block(PUK, puk) + block(PIN, new)
        assert self.sw(bytes([0, 0x2C, 0, 0x81, len(body)]) + body) == expected

    @rule()
    def sign(self) -> None:
        m = self.model
        if m.state[SPIN] != SecretState.ACTIVE:
            expected = 0x6984
        elif SPIN not in m.verified:
            expected = 0x6982
        else:
            expected = 0x9000
            m.verified.discard(SPIN)
        assert self.sw(b"\x00\x2a\x9e\x9a\x20" + DIGEST + b"\x00") == expected

    @rule()
    def authenticate(self) -> None:
        expected = 0x9000 if PIN in self.model.verified else 0x6982
        assert self.sw(b"\x00\x88\x00\x01\x20" + DIGEST + b"\x00") == expected

    @precondition(lambda self: hasattr(self, "card"))
    @rule()
    def power_off(self) -> None:
        self.card.power_off()
        self.model.verified.clear()

    @invariant()
    def counters_agree(self) -> None:
        if not hasattr(self, "card"):
            return
        for ref, tries in self.model.tries.items():
            assert self.card.tries_left(ref) == tries
            assert self.card.secret_state(ref) == self.model.state[ref]
            assert self.card.is_verified(ref) == (ref in self.model.verified)
        assert self.card.is_dead == (self.model.tries[PUK] == 0)


CardAgainstModel.TestCase.settings = settings(
    max_examples=1000 if SLOW else 100, stateful_step_count=40, deadline=None
)
TestCardAgainstModel = CardAgainstModel.TestCase
