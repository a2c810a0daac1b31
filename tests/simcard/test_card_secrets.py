"""VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER on the simulated PK."""

from __future__ import annotations

import dataclasses

from simcard_terminal import MakeTerminal, Terminal

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.os import Application, CardOS, SecretSlot
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef, SecretState

PIN, PUK, SPIN, TPIN, PASSWORD = (
    SecretRef.PIN,
    SecretRef.PUK,
    SecretRef.SPIN,
    SecretRef.TPIN,
    SecretRef.REACTIVATION,
)
NEW_PIN = "60418357"
NEW_SPIN = "7205916"


def status(t: Terminal, ref: SecretRef) -> int:
    return t.sw(bytes([0x00, 0x20, 0x00, ref]))


def change(t: Terminal, ref: SecretRef, old_block: bytes, new_block: bytes) -> int:
    body = old_block + new_block
    return t.sw(bytes([0x00, 0x24, 0x00, ref, len(body)]) + body)


def unblock(t: Terminal, puk_block: bytes, new_block: bytes) -> int:
    body = puk_block + new_block
    return t.sw(bytes([0x00, 0x2C, 0x00, 0x81, len(body)]) + body)


def test_status_read_spends_nothing(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    for _ in range(5):
        assert status(t, PIN) == 0x63C3
    assert t.card.tries_left(PIN) == 3
    assert status(t, PUK) == 0x63C5
    assert status(t, SPIN) == 0x63C3
    assert status(t, PASSWORD) == 0x63C5


def test_right_pin_verifies(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.verify(PIN) == 0x9000
    assert status(t, PIN) == 0x9000
    assert t.card.is_verified(PIN)


def test_wrong_pin_counts_down_to_blocked(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.verify(PIN) == 0x9000
    assert t.verify(PIN, "60418357") == 0x63C2
    assert not t.card.is_verified(PIN)  # a wrong try drops the verified state
    assert t.verify(PIN, "60418357") == 0x63C1
    assert t.verify(PIN, "60418357") == 0x63C0
    assert t.verify(PIN) == 0x6983  # even the right PIN
    assert status(t, PIN) == 0x6983
    assert t.card.tries_left(PIN) == 0


def test_right_pin_resets_the_counter(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.verify(PIN, "60418357") == 0x63C2
    assert t.verify(PIN, "60418357") == 0x63C1
    assert t.verify(PIN) == 0x9000
    assert t.card.tries_left(PIN) == 3


def test_verify_refusals_spend_nothing(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.sw("0020008104" + "35383339") == 0x6700  # unpadded: wrong length
    assert t.sw("0020018100") == 0x6A86
    assert t.sw("00200086") == 0x6A88
    assert t.sw("00200001") == 0x6A88
    assert t.card.tries_left(PIN) == 3
    assert terminal("kzz").sw("00200081") == 0x6A88
    assert terminal("pk-nurse").sw("00200083") == 0x6A88


def test_password_uses_a_16_byte_block(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.verify(PASSWORD) == 0x9000
    assert t.verify(PASSWORD, "Wrong!pkcard-00") == 0x63C4


def test_change_pin(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert change(t, PIN, t.block(PIN, "60418357"), t.block(PIN, "49270386")) == 0x63C2
    assert change(t, PIN, t.block(PIN), t.block(PIN, NEW_PIN)) == 0x9000
    assert t.card.is_verified(PIN)
    assert t.card.tries_left(PIN) == 3
    t.card.power_off()
    assert t.verify(PIN) == 0x63C2
    assert t.verify(PIN, NEW_PIN) == 0x9000


def test_change_refuses_malformed_new_value_without_spending(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert change(t, PIN, t.block(PIN), t.block(PIN, "12")) == 0x6A80
    assert change(t, PIN, t.block(PIN), t.block(PIN, "12ab")) == 0x6A80
    assert change(t, PIN, t.block(PIN), b"1234\xff\xff5\xff") == 0x6A80
    assert t.card.tries_left(PIN) == 3
    assert change(t, PUK, t.block(PUK), t.block(PUK)) == 0x6A88
    assert t.sw("0024008108" + t.block(PIN).hex()) == 0x6700


def test_puk_unblocks_the_pin(terminal: MakeTerminal) -> None:
    t = terminal("pk-blocked")
    assert status(t, PIN) == 0x6983
    assert t.verify(PIN) == 0x6983
    assert unblock(t, t.block(PUK, "10293847"), t.block(PIN, NEW_PIN)) == 0x63C4
    assert unblock(t, t.block(PUK), t.block(PIN, NEW_PIN)) == 0x9000
    assert t.card.tries_left(PUK) == 5
    assert t.card.tries_left(PIN) == 3
    assert not t.card.is_verified(PIN)
    assert t.verify(PIN) == 0x63C2  # the old PIN is gone
    assert t.verify(PIN, NEW_PIN) == 0x9000


def test_unblock_refuses_malformed_pin_without_spending_a_puk_try(terminal: MakeTerminal) -> None:
    t = terminal("pk-blocked")
    assert unblock(t, t.block(PUK), t.block(PIN, "123")) == 0x6A80
    assert t.card.tries_left(PUK) == 5
    assert t.sw("002C008108" + t.block(PUK).hex()) == 0x6700
    assert t.sw("002C008210" + (t.block(PUK) + t.block(PIN)).hex()) == 0x6A88


def test_puk_exhaustion_kills_the_card(terminal: MakeTerminal) -> None:
    t = terminal("pk-blocked")
    wrong = t.block(PUK, "10293847")
    answers = [unblock(t, wrong, t.block(PIN, NEW_PIN)) for _ in range(5)]
    assert answers == [0x63C4, 0x63C3, 0x63C2, 0x63C1, 0x63C0]
    assert t.card.is_dead
    assert unblock(t, t.block(PUK), t.block(PIN, NEW_PIN)) == 0x6983
    assert status(t, PUK) == 0x6983
    assert t.verify(PIN) == 0x6983
    t.card.power_off()
    assert status(t, PIN) == 0x6983


def test_puk_exhaustion_by_verify_blocks_a_working_pin(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    for _ in range(5):
        t.verify(PUK, "10293847")
    assert t.card.is_dead
    assert t.verify(PIN) == 0x6983


def test_signature_activation_with_the_tpin(terminal: MakeTerminal) -> None:
    t = terminal("pk-transport")
    assert status(t, SPIN) == 0x6984
    assert t.verify(SPIN, NEW_SPIN) == 0x6984
    assert status(t, TPIN) == 0x63C3
    assert change(t, SPIN, t.block(TPIN, "947316"), t.block(SPIN, NEW_SPIN)) == 0x63C2
    assert t.card.secret_state(SPIN) == SecretState.TRANSPORT
    assert change(t, SPIN, t.block(TPIN), t.block(SPIN, NEW_SPIN)) == 0x9000
    assert t.card.secret_state(SPIN) == SecretState.ACTIVE
    assert t.card.secret_state(TPIN) == SecretState.DISABLED
    assert not t.card.is_verified(SPIN)  # activation does not authorise a signature
    assert status(t, SPIN) == 0x63C3
    assert status(t, TPIN) == 0x6984
    assert t.verify(TPIN) == 0x6984
    # the TPIN cannot be used again: the SPIN now changes with its own old value
    assert change(t, SPIN, t.block(TPIN), t.block(SPIN, "58302716")) == 0x63C2
    assert t.verify(SPIN, NEW_SPIN) == 0x9000


def test_activation_refuses_weak_new_spin_without_spending_a_tpin_try(
    terminal: MakeTerminal,
) -> None:
    t = terminal("pk-transport")
    assert change(t, SPIN, t.block(TPIN), t.block(SPIN, "12345")) == 0x6A80
    assert t.card.tries_left(TPIN) == 3


def test_tpin_of_an_activated_card_is_not_usable(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert status(t, TPIN) == 0x6984
    assert t.verify(TPIN) == 0x6984


def test_power_off_and_reset_drop_verified_states(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.select_app()
    assert t.verify(PIN) == 0x9000
    assert t.verify(SPIN) == 0x9000
    t.card.power_off()
    assert not t.card.is_verified(PIN)
    assert not t.card.is_verified(SPIN)
    assert status(t, PIN) == 0x63C3
    assert t.verify(PIN) == 0x9000
    t.card.reset()
    assert status(t, PIN) == 0x63C3
    assert t.sw("00A4020C02C001") == 0x6A82  # the selection is gone too


def test_selecting_another_application_drops_verified_states() -> None:
    aid_a, aid_b = b"\xf0AAAAAA", b"\xf0BBBBBB"
    card = CardOS(
        [Application(aid_a, {}), Application(aid_b, {})],
        [SecretSlot(PIN, SecretState.ACTIVE, 3, b"58392671")],
    )

    def sw(raw: bytes) -> int:
        return int.from_bytes(card.execute(raw)[-2:], "big")

    block = b"58392671"
    assert sw(b"\x00\xa4\x04\x0c\x07" + aid_a) == 0x9000
    assert sw(b"\x00\x20\x00\x81\x08" + block) == 0x9000
    assert sw(b"\x00\xa4\x04\x0c\x07" + aid_a) == 0x9000  # re-selecting keeps it
    assert card.is_verified(PIN)
    assert sw(b"\x00\xa4\x04\x0c\x07" + aid_b) == 0x9000
    assert not card.is_verified(PIN)


def test_secrets_never_show_in_repr() -> None:
    profile = load_profile("pk-regular")
    card = SimulatedCard.from_profile(profile)
    texts = [repr(profile), str(profile), repr(card), repr(profile.secrets)]
    for ref in (PIN, PUK, SPIN, PASSWORD):
        value = profile.secret_value(ref)
        assert all(value not in text for text in texts)
    assert "58392671" not in repr(SecretSlot(PIN, SecretState.ACTIVE, 3, b"58392671"))


def test_profile_overrides_give_independent_cards() -> None:
    base = load_profile("pk-regular")
    blocked = dataclasses.replace(
        base,
        secrets=tuple(
            dataclasses.replace(s, tries_left=1) if s.ref == PIN else s for s in base.secrets
        ),
    )
    a = SimulatedCard.from_profile(blocked)
    b = SimulatedCard.from_profile(base)
    assert a.tries_left(PIN) == 1
    assert b.tries_left(PIN) == 3
