from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard import errors
from pkcard.apdu import CommandApdu, ResponseApdu
from pkcard.protocol import (
    ApduProcessor,
    ChainingProcessor,
    GetResponseProcessor,
    SmartCardProtocol,
    WrongLeProcessor,
    get_response_cla,
)
from pkcard.transport import SmartCardConnection


class FakeCard(SmartCardConnection):
    """Answers each command with ``answer(command)``; records every command sent."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self._answer = answer
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return bytes.fromhex("3B00")

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self._answer(command)

    def close(self) -> None:
        return


Scripted = Callable[..., FakeCard]


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    """Makes cards that expect exactly these (command hex, response hex) exchanges, in order.

    At teardown every script must have been used up.
    """
    scripts: list[list[tuple[bytes, bytes]]] = []

    def make(*pairs: tuple[str, str]) -> FakeCard:
        script = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in pairs]
        scripts.append(script)

        def answer(command: bytes) -> bytes:
            assert script, f"unexpected command {command.hex().upper()}"
            expected, response = script.pop(0)
            assert command.hex().upper() == expected.hex().upper()
            return response

        return FakeCard(answer)

    yield make
    assert all(not script for script in scripts), "a scripted exchange was never sent"


def test_plain_exchange(scripted: Scripted) -> None:
    card = scripted(("00A4040C03F0504B", "9000"))
    assert SmartCardProtocol(card).send_apdu(0, 0xA4, 4, 0x0C, b"\xf0PK") == b""
    assert len(card.sent) == 1


def test_send_apdu_raises_mapped_error(scripted: Scripted) -> None:
    card = scripted(("00A4040C01F0", "6A82"))
    with pytest.raises(errors.FileNotFound) as info:
        SmartCardProtocol(card).send_apdu(0, 0xA4, 4, 0x0C, b"\xf0")
    assert info.value.sw == 0x6A82


def test_transmit_does_not_raise_on_sw(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "AB6282"))
    response = SmartCardProtocol(card).transmit(CommandApdu(0, 0xB0, 0, 0, le=256))
    assert response == ResponseApdu(b"\xab", 0x6282)


def test_select_with_fci(scripted: Scripted) -> None:
    card = scripted(("00A4040002F05000", "6F04840201029000"))
    assert SmartCardProtocol(card).select(b"\xf0\x50") == bytes.fromhex("6F0484020102")


def test_select_without_fci(scripted: Scripted) -> None:
    card = scripted(("00A4040C02F050", "9000"))
    assert SmartCardProtocol(card).select(b"\xf0\x50", fci=False) == b""


def test_get_response_chain(scripted: Scripted) -> None:
    card = scripted(
        ("00B0000000", "AAAA6102"),
        ("00C0000002", "BBBB6100"),
        ("00C0000000", "CC9000"),
    )
    assert SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256) == bytes.fromhex("AAAABBBBCC")


def test_get_response_empty_first_body_and_6100(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "6100"), ("00C0000000", "01026282"))
    response = SmartCardProtocol(card).transmit(CommandApdu(0, 0xB0, 0, 0, le=256))
    assert response == ResponseApdu(b"\x01\x02", 0x6282)  # final SW is the last one


def test_get_response_keeps_logical_channel(scripted: Scripted) -> None:
    card = scripted(("03B0000000", "6101"), ("03C0000001", "AA9000"))
    assert SmartCardProtocol(card).send_apdu(0x03, 0xB0, 0, 0, le=256) == b"\xaa"
    assert get_response_cla(0x13) == 0x03
    assert get_response_cla(0x4F) == 0x4F
    assert get_response_cla(0x80) == 0x00


def test_endless_61xx_is_bounded() -> None:
    card = FakeCard(lambda command: b"\x61\x00")
    protocol = SmartCardProtocol(card, [functools.partial(GetResponseProcessor, max_iterations=10)])
    with pytest.raises(errors.ProtocolError, match="more data"):
        protocol.send_apdu(0, 0xB0, 0, 0, le=256)
    assert len(card.sent) == 11  # the command plus exactly max_iterations GET RESPONSE


def test_endless_61xx_default_bound() -> None:
    card = FakeCard(lambda command: b"\x61\x01")
    with pytest.raises(errors.ProtocolError):
        SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256)
    assert len(card.sent) == 65


def test_get_response_total_size_bound() -> None:
    card = FakeCard(lambda command: bytes(256) + b"\x61\x00")
    protocol = SmartCardProtocol(card, [functools.partial(GetResponseProcessor, max_total=1000)])
    with pytest.raises(errors.ProtocolError, match="exceeds 1000"):
        protocol.send_apdu(0, 0xB0, 0, 0, le=256)
    assert len(card.sent) == 4


def test_get_response_answered_6cxx(scripted: Scripted) -> None:
    card = scripted(
        ("00B0000000", "6110"), ("00C0000010", "6C08"), ("00C0000008", "01020304050607089000")
    )
    assert SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256) == bytes(range(1, 9))


def test_wrong_le_resend_once(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "6C10"), ("00B0000010", "00" * 16 + "9000"))
    assert SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256) == bytes(16)


def test_wrong_le_twice_is_protocol_error(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "6C10"), ("00B0000010", "6C08"))
    with pytest.raises(errors.ProtocolError):
        SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256)
    assert len(card.sent) == 2


def test_wrong_le_then_get_response(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "6C00"), ("00B0000000", "AA6101"), ("00C0000001", "BB9000"))
    assert SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256) == b"\xaa\xbb"


@pytest.mark.parametrize("raw", [b"", b"\x90"])
def test_short_response_is_protocol_error(raw: bytes) -> None:
    card = FakeCard(lambda command: raw)
    with pytest.raises(errors.ProtocolError, match="no status word"):
        SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256)


def test_chaining_600_bytes() -> None:
    data = bytes(i & 0xFF for i in range(600))
    card = FakeCard(lambda command: b"\x90\x00" if command[0] & 0x10 else b"\xab\x90\x00")
    result = SmartCardProtocol(card).send_apdu(0x00, 0x2A, 0x9E, 0x9A, data, le=256)
    assert result == b"\xab"
    assert [c[:5] for c in card.sent] == [
        bytes.fromhex("102A9E9AFF"),
        bytes.fromhex("102A9E9AFF"),
        bytes.fromhex("002A9E9A5A"),
    ]
    assert card.sent[0][5:] == data[:255]
    assert card.sent[1][5:] == data[255:510]
    assert card.sent[2][5:-1] == data[510:]
    assert card.sent[2][-1] == 0x00  # Le only on the last link
    assert len(card.sent[0]) == 5 + 255  # no Le on intermediate links


@given(st.binary(min_size=1, max_size=2000), st.integers(1, 255))
def test_chaining_reassembles(data: bytes, chunk: int) -> None:
    card = FakeCard(lambda command: b"\x90\x00")
    protocol = SmartCardProtocol(card, [functools.partial(ChainingProcessor, chunk=chunk)])
    protocol.send_apdu(0, 0xDA, 0, 0, data)
    links = [CommandApdu.parse(c) for c in card.sent]
    assert b"".join(link.data for link in links) == data
    assert all(link.cla == 0x10 for link in links[:-1])
    assert links[-1].cla == 0x00
    assert all(0 < len(link.data) <= chunk for link in links)


def test_chaining_intermediate_error() -> None:
    card = FakeCard(lambda command: b"\x6a\x80")
    with pytest.raises(errors.WrongData):
        SmartCardProtocol(card).send_apdu(0, 0xDA, 0, 0, bytes(300))
    assert len(card.sent) == 1


def test_chaining_intermediate_with_data_is_protocol_error() -> None:
    card = FakeCard(lambda command: b"\x01\x90\x00")
    with pytest.raises(errors.ProtocolError):
        SmartCardProtocol(card).send_apdu(0, 0xDA, 0, 0, bytes(300))


def test_processor_swapping(scripted: Scripted) -> None:
    # Without the GET RESPONSE layer, 61xx reaches the caller untouched.
    card = scripted(("00B0000000", "AA6101"))
    protocol = SmartCardProtocol(card, [ChainingProcessor, WrongLeProcessor])
    assert protocol.transmit(CommandApdu(0, 0xB0, 0, 0, le=256)) == ResponseApdu(b"\xaa", 0x6101)

    # An extra layer of our own sits where the list puts it.
    seen: list[CommandApdu] = []

    class Spy(ApduProcessor):
        def __init__(self, inner: ApduProcessor) -> None:
            self.inner = inner

        def process(self, command: CommandApdu) -> ResponseApdu:
            seen.append(command)
            return self.inner.process(command)

    card = scripted(("00B0000000", "AA6101"), ("00C0000001", "BB9000"))
    protocol = SmartCardProtocol(card, [Spy, GetResponseProcessor])
    assert protocol.send_apdu(0, 0xB0, 0, 0, le=256) == b"\xaa\xbb"
    assert [c.ins for c in seen] == [0xB0]  # the spy is above GET RESPONSE
    assert isinstance(protocol.processor, Spy)
    assert protocol.connection is card


def test_bare_stack_transmits_only(scripted: Scripted) -> None:
    card = scripted(("00B0000000", "6C10"))
    response = SmartCardProtocol(card, []).transmit(CommandApdu(0, 0xB0, 0, 0, le=256))
    assert response.sw == 0x6C10


class ChunkingCard(SmartCardConnection):
    """Returns ``payload`` in card-chosen chunks, announcing the rest with 61xx.

    With ``exact_le`` a first command whose Le differs from the payload length
    (payloads of 1 to 256 bytes) is answered 6Cxx, as a card with exact Le does.
    """

    def __init__(self, payload: bytes, chunks: list[int], exact_le: bool) -> None:
        self._payload = payload
        self._chunks = chunks
        self._exact_le = exact_le
        self._offset = 0
        self.sent: list[CommandApdu] = []

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def close(self) -> None:
        return

    def transmit(self, command: bytes) -> bytes:
        apdu = CommandApdu.parse(command)
        self.sent.append(apdu)
        le = apdu.le or 256
        if apdu.ins == 0xB0:
            self._offset = 0
            if self._exact_le and 0 < len(self._payload) <= 256 and le != len(self._payload):
                return bytes((0x6C, len(self._payload) & 0xFF))
        step = min(le, self._chunks.pop(0) if self._chunks else 256)
        part = self._payload[self._offset : self._offset + step]
        self._offset += len(part)
        left = len(self._payload) - self._offset
        sw = bytes((0x61, min(left, 256) & 0xFF)) if left else b"\x90\x00"
        return part + sw


@given(
    st.binary(max_size=3000),
    st.lists(st.integers(0, 256), max_size=40),
    st.booleans(),
)
def test_reassembles_whatever_the_card_chunking(
    payload: bytes, chunks: list[int], exact_le: bool
) -> None:
    card = ChunkingCard(payload, chunks, exact_le)
    assert SmartCardProtocol(card).send_apdu(0, 0xB0, 0, 0, le=256) == payload
    get_responses = [c for c in card.sent if c.ins == 0xC0]
    assert len(get_responses) <= 64
    assert all(c.le is not None and 1 <= c.le <= 256 for c in get_responses)


# --- the default stack's short cut ---------------------------------------------------


class AnswerQueue(SmartCardConnection):
    """Answers with the queued responses in order (9000 once they run out); records commands."""

    def __init__(self, answers: list[bytes]) -> None:
        self._answers = list(answers)
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def close(self) -> None:
        return

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self._answers.pop(0) if self._answers else b"\x90\x00"


_SW1S = (0x90, 0x61, 0x6C, 0x62, 0x63, 0x6A, 0x6F)
answer_strategy = st.one_of(
    st.binary(max_size=1),  # too short: no status word
    st.builds(lambda data, sw1, sw2: data + bytes((sw1, sw2)),
              st.binary(max_size=8), st.sampled_from(_SW1S), st.integers(0, 255)),
)


@given(
    st.lists(answer_strategy, max_size=6),
    st.integers(0, 300),
    st.one_of(st.none(), st.integers(1, 256)),
    st.sampled_from((0x00, 0x01, 0x0C, 0x40, 0x80)),
)
def test_the_default_stacks_short_cut_is_the_stack(
    answers: list[bytes], data_length: int, le: int | None, cla: int
) -> None:
    """``SmartCardProtocol(c)`` (short cut) and the same layers built explicitly agree on
    every exchange, the result and the error, whatever the card answers."""
    command = CommandApdu(cla, 0xB0, 0x00, 0x00, bytes(data_length), le)
    outcomes = []
    for protocol_of in (
        SmartCardProtocol,
        lambda c: SmartCardProtocol(c, [ChainingProcessor, WrongLeProcessor,
                                        GetResponseProcessor]),
    ):
        card = AnswerQueue(answers)
        try:
            result: object = protocol_of(card).transmit(command)
        except errors.PkcardError as exc:
            result = (type(exc), str(exc))
        outcomes.append((card.sent, result))
    assert outcomes[0] == outcomes[1]
