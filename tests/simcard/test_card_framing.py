"""Framing around the handlers: chaining, 61xx / GET RESPONSE, 6Cxx, malformed APDUs."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from simcard_terminal import MakeTerminal

from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

PK_AID = "F0504B43415244504B"
PROFILE = load_profile("pk-regular")
CARD_FOR_FUZZ = SimulatedCard.from_profile(PROFILE)
# HYPOTHESIS_PROFILE=slow runs the long version (CI runs the short one).
EXAMPLES = 5000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 200


def test_chained_verify(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    block = t.block(SecretRef.PIN)
    assert t.sw(b"\x10\x20\x00\x81\x03" + block[:3]) == 0x9000
    assert not t.card.is_verified(SecretRef.PIN)
    assert t.sw(b"\x00\x20\x00\x81\x05" + block[3:]) == 0x9000
    assert t.card.is_verified(SecretRef.PIN)


def test_chained_signature(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.verify(SecretRef.SPIN)
    digest = hashlib.sha256(b"x").digest()
    assert t.sw(b"\x10\x2a\x9e\x9a\x10" + digest[:16]) == 0x9000
    signature, sw = t.send(b"\x00\x2a\x9e\x9a\x10" + digest[16:] + b"\x00")
    assert sw == 0x9000
    assert len(signature) == 256


def test_broken_chain_is_refused(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    block = t.block(SecretRef.PIN)
    assert t.sw(b"\x10\x20\x00\x81\x03" + block[:3]) == 0x9000
    assert t.sw("0084000008") == 0x6883
    assert t.sw(b"\x00\x20\x00\x81\x05" + block[3:]) == 0x6700  # the chain was dropped
    assert t.card.tries_left(SecretRef.PIN) == 3


def test_response_longer_than_le_goes_through_get_response(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.verify(SecretRef.PIN)
    digest = hashlib.sha256(b"y").digest()
    first, sw = t.send(b"\x00\x88\x00\x01\x20" + digest + b"\x10")
    assert len(first) == 16
    assert sw == 0x6130
    rest, sw = t.send("00C0000030")
    assert sw == 0x9000
    assert len(first + rest) == 64
    assert t.sw("00C0000010") == 0x6985  # nothing pending any more


def test_forced_get_response(terminal: MakeTerminal) -> None:
    t = terminal(dataclasses.replace(PROFILE, force_get_response=True))
    data, sw = t.send(f"00A4040009{PK_AID}00")
    assert data == b""
    assert sw == 0x610D
    part, sw = t.send("00C0000004")
    assert sw == 0x6109
    rest, sw = t.send("00C0000000")
    assert sw == 0x9000
    assert part + rest == bytes.fromhex("6F0B8409" + PK_AID)
    assert t.sw("00C0000000") == 0x6985


def test_get_response_is_lost_after_another_command(terminal: MakeTerminal) -> None:
    t = terminal(dataclasses.replace(PROFILE, force_get_response=True))
    assert t.sw(f"00A4040009{PK_AID}00") == 0x610D
    assert t.sw("0084000008") == 0x6108
    data, sw = t.send("00C0000008")
    assert sw == 0x9000
    assert len(data) == 8


def test_read_binary_past_the_end_with_force_exact_le(terminal: MakeTerminal) -> None:
    t = terminal(dataclasses.replace(PROFILE, force_exact_le=True))
    t.select_app()
    assert t.sw("00A4020C02C001") == 0x9000
    data, sw = t.send("00B0000000")
    assert data == b""
    assert sw >> 8 == 0x6C
    exact = sw & 0xFF
    data, sw = t.send(bytes([0x00, 0xB0, 0x00, 0x00, exact]))
    assert sw == 0x9000
    assert len(data) == exact


def test_malformed_apdus(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.sw(b"") == 0x6700
    assert t.sw("00A404") == 0x6700
    assert t.sw("80A4040C00") == 0x6E00
    assert t.sw("FFA4040C00") == 0x6E00
    assert t.sw("00EE0000") == 0x6D00
    assert t.sw("00A4040C05F050") == 0x6700  # Lc larger than the body
    assert t.sw("00B00000000100") == 0x6700  # extended Le: not supported
    assert t.sw("00A4040C0000") == 0x6700  # short Lc of 00


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    response = CARD_FOR_FUZZ.execute(raw)
    assert len(response) >= 2


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x00, 0x10, 0x80]),
            st.sampled_from([0x20, 0x24, 0x2A, 0x2C, 0x84, 0x88, 0xA4, 0xB0, 0xC0, 0xCA]),
            st.integers(0, 255),
            st.sampled_from([0x00, 0x01, 0x02, 0x0C, 0x5A, 0x81, 0x82, 0x83, 0x84, 0x85, 0x9A]),
            st.binary(max_size=40),
            st.one_of(st.none(), st.integers(0, 255)),
        ),
        max_size=25,
    )
)
def test_command_sequences_keep_counters_in_range(
    commands: list[tuple[int, int, int, int, bytes, int | None]],
) -> None:
    card = SimulatedCard.from_profile(PROFILE)
    for cla, ins, p1, p2, data, le in commands:
        raw = bytes([cla, ins, p1, p2])
        if data:
            raw += bytes([len(data)]) + data
        if le is not None:
            raw += bytes([le])
        response = card.execute(raw)
        assert len(response) >= 2
        assert response[-2] != 0x6F  # no handler crashed
    for ref in SecretRef:
        assert 0 <= card.tries_left(ref) <= {0x82: 5, 0x85: 5}.get(ref, 3)
