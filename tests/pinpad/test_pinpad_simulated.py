"""Secure PIN entry end to end: ProfessionalCard -> PinPad -> simulated reader -> simulated card.

The simulated reader records every control request, so the tests assert the
exact bytes that crossed the part 10 interface for each named reader model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from padrig import CT30, CT700, CT710, GCR5500, UNKNOWN, PadRig

from pkcard.errors import (
    LastTryNotConfirmed,
    NotSupported,
    PinBlocked,
    PinPadCancelled,
    PinPadError,
    PinPadTimeout,
    PinPadWrongLength,
    PinRule,
    TransportPinActive,
    WeakPin,
    WrongPin,
)
from pkcard.pin import PadEntry, PinRef, PinState
from pkcard.pinpad import (
    CM_IOCTL_GET_FEATURE_REQUEST,
    FeatureTag,
    PadMessage,
    PinEncoding,
    PinVerifyStructure,
    card_status,
    format_string,
)
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.pinpad import CT700_PAD, PadModel, SimulatedPinPad, feature_code
from pkcard.simcard.spec import SecretRef

Rig = Callable[..., PadRig]
VERIFY = feature_code(FeatureTag.VERIFY_PIN_DIRECT)
MODIFY = feature_code(FeatureTag.MODIFY_PIN_DIRECT)
PIN = "58392671"  # pk-regular's test PIN
PUK = "73920584"
SPIN = "69472538"
FF8 = "FF" * 8
FF16 = "FF" * 16


def hex_(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- the part 10 conversation -----------------------------------------------------


def test_ct700_conversation_byte_for_byte(rig: Rig) -> None:
    r = rig(CT700)
    r.pad.keypad.type(PIN)
    r.pk.verify_on_pad(PinRef.PIN)
    codes = [req.code for req in r.pad.received]
    assert codes == [CM_IOCTL_GET_FEATURE_REQUEST, 0x42330012, VERIFY]
    assert r.pad.received[0].data == b""
    assert r.structures(VERIFY) == [
        hex_(f"1E 00 82 08 00 0804 02 01 0904 00 000000 0D000000 0020008108 {FF8}")
    ]


def test_ct700_change_unblock_activate_structures(rig: Rig) -> None:
    r = rig(CT700)
    keys = r.pad.keypad
    for digits in (PIN, "4826", "4826"):
        keys.type(digits)
    r.pk.change_on_pad(PinRef.PIN)
    assert r.structures(MODIFY) == [
        hex_(f"1E 00 82 08 00 00 08 0804 03 02 03 0904 000102 000000 15000000 0024008110 {FF16}")
    ]
    t = rig(CT700, "pk-transport")
    for digits in (t.card.profile.secret_value(SecretRef.TPIN), "602718", "602718"):
        t.pad.keypad.type(digits)
    status = t.pk.activate_signature_on_pad()
    assert status.state is PinState.VERIFIABLE
    assert t.structures(MODIFY) == [
        hex_(f"1E 00 82 08 00 00 08 0806 03 02 03 0904 000102 000000 15000000 0024008310 {FF16}")
    ]


def test_ct710_shows_its_messages_and_ct700_shows_none(rig: Rig) -> None:
    r710 = rig(CT710)
    for digits in (PIN, "4826", "4826"):
        r710.pad.keypad.type(digits)
    r710.pk.change_on_pad(PinRef.PIN)
    assert r710.pad.keypad.prompts == (
        PadMessage.ENTER_PIN, PadMessage.ENTER_NEW_PIN, PadMessage.CONFIRM_NEW_PIN
    )
    assert r710.structures(MODIFY)[0][11] == 3  # bNumberMessage
    r700 = rig(CT700)
    r700.pad.keypad.type(PIN)
    r700.pk.verify_on_pad(PinRef.PIN)
    assert r700.pad.keypad.prompts == (None,)


# --- outcomes ---------------------------------------------------------------------


def test_success_verifies_the_pin_on_the_card(rig: Rig) -> None:
    r = rig(CT700)
    r.pad.keypad.type(PIN)
    status = r.pk.verify_on_pad(PinRef.PIN)
    assert status.state is PinState.VERIFIED
    assert r.card.is_verified(SecretRef.PIN)
    assert PinRef.PIN in r.pk.verified
    assert r.pad.keypad.pending == 0


def test_wrong_pin_reports_tries_left(rig: Rig) -> None:
    r = rig(CT700)
    r.pad.keypad.type("11112222")
    with pytest.raises(WrongPin) as caught:
        r.pk.verify_on_pad(PinRef.PIN)
    assert caught.value.tries_left == 2
    assert r.card.tries_left(SecretRef.PIN) == 2
    assert not r.card.is_verified(SecretRef.PIN)


@pytest.mark.parametrize(
    ("press", "error"),
    [
        (lambda keys: keys.time_out(), PinPadTimeout),
        (lambda keys: keys.cancel(), PinPadCancelled),
        (lambda keys: None, PinPadTimeout),  # nobody at the reader
        (lambda keys: keys.type("123"), PinPadWrongLength),
        (lambda keys: keys.type("123456789"), PinPadWrongLength),
    ],
    ids=["timeout", "cancel", "nothing-typed", "too-short", "too-long"],
)
def test_reader_failures_spend_no_try(
    rig: Rig, press: Callable[..., None], error: type[Exception]
) -> None:
    r = rig(CT700)
    press(r.pad.keypad)
    with pytest.raises(error):
        r.pk.verify_on_pad(PinRef.PIN)
    assert r.card.tries_left(SecretRef.PIN) == 3


def test_last_try_guard_holds_before_the_reader_asks(rig: Rig) -> None:
    r = rig(CT700)
    for _ in range(2):
        r.pad.keypad.type("11112222")
        with pytest.raises(WrongPin):
            r.pk.verify_on_pad(PinRef.PIN)
    r.pad.keypad.type(PIN)
    with pytest.raises(LastTryNotConfirmed):
        r.pk.verify_on_pad(PinRef.PIN)
    assert len(r.structures(VERIFY)) == 2  # the third entry never reached the reader
    assert r.pad.keypad.pending == 1
    r.pk.verify_on_pad(PinRef.PIN, confirm_last_try=True)
    assert r.card.tries_left(SecretRef.PIN) == 3


def test_last_wrong_try_blocks(rig: Rig) -> None:
    r = rig(CT700)
    for _ in range(3):
        r.pad.keypad.type("11112222")
        with pytest.raises((WrongPin, PinBlocked)):
            r.pk.verify_on_pad(PinRef.PIN, confirm_last_try=True)
    with pytest.raises(PinBlocked):
        r.pk.verify_on_pad(PinRef.PIN, confirm_last_try=True)
    assert len(r.structures(VERIFY)) == 3


def test_unblock_on_pad_after_block(rig: Rig) -> None:
    r = rig(CT700, "pk-blocked")
    for digits in (r.card.profile.secret_value(SecretRef.PUK), "4826", "4826"):
        r.pad.keypad.type(digits)
    status = r.pk.unblock_on_pad()
    assert (status.state, status.tries_left) == (PinState.VERIFIABLE, 3)
    assert r.structures(MODIFY)[0][24:29] == hex_("002C008110")
    with Secret("4826") as new_pin:
        assert r.pk.verify(PinRef.PIN, new_pin).state is PinState.VERIFIED


def test_change_with_a_different_confirmation_is_refused_by_the_reader(rig: Rig) -> None:
    r = rig(CT700)
    for digits in (PIN, "4826", "4827"):
        r.pad.keypad.type(digits)
    with pytest.raises(WeakPin) as caught:
        r.pk.change_on_pad(PinRef.PIN)
    assert caught.value.rule is PinRule.CONFIRMATION_MISMATCH
    assert r.card.tries_left(SecretRef.PIN) == 3
    with Secret(PIN) as old:
        assert r.pk.verify(PinRef.PIN, old).state is PinState.VERIFIED


def test_change_with_a_wrong_old_pin_counts_a_try(rig: Rig) -> None:
    r = rig(CT700)
    for digits in ("11112222", "4826", "4826"):
        r.pad.keypad.type(digits)
    with pytest.raises(WrongPin) as caught:
        r.pk.change_on_pad(PinRef.PIN)
    assert caught.value.tries_left == 2


def test_sign_on_pad_consumes_the_spin(rig: Rig) -> None:
    r = rig(CT700)
    r.pad.keypad.type(SPIN)
    signature = r.pk.sign_on_pad(bytes(32))
    assert len(signature) == 256
    assert PinRef.SPIN not in r.pk.verified
    assert r.structures(VERIFY)[0][19:23] == hex_("00200083")


def test_a_pad_entry_is_the_same_as_the_on_pad_methods(rig: Rig) -> None:
    r = rig(CT700)
    r.pad.keypad.type(PIN)
    status = r.pk.verify(PinRef.PIN, PadEntry())
    assert status.state is PinState.VERIFIED
    assert PinRef.PIN in r.pk.verified
    r.pad.keypad.type(SPIN)
    assert len(r.pk.sign(bytes(32), PadEntry())) == 256
    assert PinRef.SPIN not in r.pk.verified
    assert [s[19:23] for s in r.structures(VERIFY)] == [hex_("00200081"), hex_("00200083")]
    with pytest.raises(NotSupported):
        r.pk.verify(PinRef.REACTIVATION, PadEntry())


def test_spin_in_transport_state_is_refused_before_the_reader_asks(rig: Rig) -> None:
    r = rig(CT700, "pk-transport")
    r.pad.keypad.type(SPIN)
    with pytest.raises(TransportPinActive):
        r.pk.verify_on_pad(PinRef.SPIN)
    assert r.structures(VERIFY) == []


def test_the_password_is_never_asked_on_a_pad(rig: Rig) -> None:
    r = rig(CT700)
    with pytest.raises(NotSupported):
        r.pk.verify_on_pad(PinRef.REACTIVATION)


# --- readers without a (usable) PIN pad ---------------------------------------------


@pytest.mark.parametrize("reader", [CT30, GCR5500, UNKNOWN], ids=["ct30", "gcr5500", "unknown"])
def test_readers_without_a_pad_refuse_pad_entry(rig: Rig, reader: object) -> None:
    r = rig(reader)
    assert r.system.pin_pad(r.reader.name) is None
    with pytest.raises(NotSupported):
        r.connection.control(CM_IOCTL_GET_FEATURE_REQUEST, b"")
    with pytest.raises(NotSupported):
        r.pk.verify_on_pad(PinRef.PIN)
    assert r.card.tries_left(SecretRef.PIN) == 3


def test_a_reader_that_claims_a_pad_it_lacks_is_not_used(rig: Rig) -> None:
    r = rig(CT700)
    omnikey = SimulatedPinPad(PadModel(usb_id=(0x076B, 0x3031)))
    omnikey.keypad.type(PIN)
    connection = InProcessConnection(r.card, pin_pad=omnikey)
    with pytest.raises(NotSupported):
        ProfessionalCard.over(connection).verify_on_pad(PinRef.PIN)
    assert [req.code for req in omnikey.received if req.code == VERIFY] == []


# --- the simulated firmware ------------------------------------------------------------


def _capture() -> tuple[list[bytes], Callable[[bytes], bytes]]:
    sent: list[bytes] = []

    def send(apdu: bytes) -> bytes:
        sent.append(apdu)
        return b"\x90\x00"

    return sent, send


def _verify(fs: int, block_string: int, length_format: int, apdu: str, **kw: int) -> bytes:
    return PinVerifyStructure(
        timeout=0, timeout2=0, format_string=fs, pin_block_string=block_string,
        pin_length_format=length_format, min_pin=kw.get("min_pin", 4), max_pin=8,
        entry_validation=kw.get("validation", 2), number_message=kw.get("messages", 1),
        lang_id=0x0409, msg_index=0, apdu=hex_(apdu),
    ).to_bytes()


@pytest.mark.parametrize(
    ("fs", "block", "length_format", "template", "sent"),
    [
        (0x82, 0x08, 0x00, f"0020008108{FF8}", "0020008108 31323334 FFFFFFFF"),
        (0x86, 0x08, 0x00, f"0020008108{FF8}", "0020008108 FFFFFFFF 31323334"),
        (0x80, 0x08, 0x00, f"0020008108{FF8}", "0020008108 01020304 FFFFFFFF"),
        (format_string(PinEncoding.BCD, position=1), 0x87, 0x10,
         "0020008108 20 FFFFFFFFFFFFFF", "0020008108 04 1234 FFFFFFFFFF"),
    ],
    ids=["ascii-left", "ascii-right", "binary", "bcd-with-length-byte"],
)
def test_simulated_reader_inserts_digits_per_format(
    fs: int, block: int, length_format: int, template: str, sent: str
) -> None:
    pad = SimulatedPinPad(PadModel(usb_id=(0x1234, 0x0001)))
    pad.keypad.type("1234")
    apdus, send = _capture()
    answer = pad.control(VERIFY, _verify(fs, block, length_format, template), send)
    assert answer == b"\x90\x00"
    assert apdus == [hex_(sent)]


@pytest.mark.parametrize(
    "structure",
    [
        _verify(0x82, 0x08, 0x00, f"0020008108{FF8}", messages=0),  # GemPC: 01 only
        _verify(0x82, 0x08, 0x00, f"0020008108{FF8}", validation=0x07),  # GemPC: 02 only
        _verify(0x02, 0x08, 0x00, f"0020008108{FF8}"),  # bit units
        _verify(0x82, 0x08, 0x00, f"0020008108{FF8}")[:-1],  # ulDataLength disagrees
        _verify(0x82, 0x0F, 0x00, f"0020008108{FF8}"),  # block past the template
    ],
    ids=["messages", "validation", "bit-units", "length", "block"],
)
def test_gempc_firmware_refuses_structures_it_cannot_take(structure: bytes) -> None:
    pad = SimulatedPinPad(CT700_PAD)
    pad.keypad.type("1234")
    apdus, send = _capture()
    answer = pad.control(VERIFY, structure, send)
    assert answer == hex_("6B80")
    with pytest.raises(PinPadError):
        card_status(answer)
    assert apdus == []


def test_unknown_control_code_is_not_supported() -> None:
    pad = SimulatedPinPad(CT700_PAD)
    with pytest.raises(NotSupported):
        pad.control(0x42330001, b"", lambda apdu: b"\x90\x00")


def test_simulated_properties_byte_for_byte() -> None:
    pad = SimulatedPinPad(CT700_PAD)
    send = _capture()[1]
    features = pad.control(CM_IOCTL_GET_FEATURE_REQUEST, b"", send)
    assert features == hex_("06 04 42330006 07 04 42330007 0A 04 4233000A 12 04 42330012")
    assert pad.control(0x4233000A, b"", send) == hex_("0000 07 00")


# --- secrets stay secret ---------------------------------------------------------------


def test_no_typed_digit_leaks_into_records_errors_or_logs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = rig(CT700)
    r.pad.keypad.type("11112222")
    with pytest.raises(WrongPin) as wrong:
        r.pk.verify_on_pad(PinRef.PIN)
    for digits in (PIN, "4826", "4827"):
        r.pad.keypad.type(digits)
    with pytest.raises(WeakPin) as weak:
        r.pk.change_on_pad(PinRef.PIN)
    typed = ["11112222", PIN, "4826", "4827"]
    recorded = b"".join(req.data for req in r.pad.received)
    texts = [str(wrong.value), str(weak.value), caplog.text, repr(r.pad.received)]
    for digits in typed:
        assert digits.encode() not in recorded
        assert all(digits not in text for text in texts)


@given(
    digits=st.text(alphabet="0123456789", max_size=12),
    low=st.integers(1, 8),
    span=st.integers(0, 8),
)
def test_simulated_reader_sends_exactly_the_typed_digits_or_refuses_the_length(
    digits: str, low: int, span: int
) -> None:
    high = min(low + span, 8)
    pad = SimulatedPinPad(PadModel(usb_id=(0x1234, 0x0002)))
    pad.keypad.type(digits)
    apdus, send = _capture()
    structure = PinVerifyStructure(
        timeout=0, timeout2=0, format_string=0x82, pin_block_string=0x08, pin_length_format=0,
        min_pin=low, max_pin=high, entry_validation=2, number_message=0, lang_id=0x0409,
        msg_index=0, apdu=hex_(f"0020008108{FF8}"),
    ).to_bytes()
    answer = pad.control(VERIFY, structure, send)
    if low <= len(digits) <= high:
        assert answer == b"\x90\x00"
        assert apdus == [hex_("0020008108") + digits.encode() + b"\xff" * (8 - len(digits))]
    else:
        assert answer == hex_("6403")
        assert apdus == []
