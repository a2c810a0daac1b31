"""The pure part 10 codecs and builders of pkcard.pinpad, byte for byte."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.errors import (
    FormatError,
    NotSupported,
    PinPadCancelled,
    PinPadError,
    PinPadTimeout,
    PinPadWrongLength,
    PinRule,
    WeakPin,
)
from pkcard.pin import PIN_FORMATS, PinFormat, PinRef
from pkcard.pinpad import (
    CM_IOCTL_GET_FEATURE_REQUEST,
    NO_QUIRKS,
    EntrySettings,
    EntryValidation,
    FeatureTag,
    LcdLayout,
    PadQuirk,
    PinEncoding,
    PinModifyStructure,
    PinPadProperties,
    PinVerifyStructure,
    card_status,
    encode_features,
    format_string,
    modify_structure,
    parse_features,
    parse_pin_properties,
    parse_tlv_properties,
    properties_from_tlv,
    quirks_for,
    verify_structure,
)

PIN, PUK, SPIN, TPIN = (PIN_FORMATS[r] for r in (PinRef.PIN, PinRef.PUK, PinRef.SPIN, PinRef.TPIN))
FF8 = "FF" * 8
FF16 = "FF" * 16


def hex_(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_get_feature_request_code_is_scard_ctl_code_3400() -> None:
    assert CM_IOCTL_GET_FEATURE_REQUEST == 0x42000D48


def test_parse_features_as_the_ccid_driver_answers() -> None:
    answer = hex_("06 04 42330006  07 04 42330007  0A 04 4233000A  12 04 42330012")
    features = parse_features(answer)
    assert features.code(FeatureTag.VERIFY_PIN_DIRECT) == 0x42330006
    assert features.code(FeatureTag.MODIFY_PIN_DIRECT) == 0x42330007
    assert features.code(FeatureTag.IFD_PIN_PROPERTIES) == 0x4233000A
    assert features.code(FeatureTag.GET_TLV_PROPERTIES) == 0x42330012
    assert FeatureTag.VERIFY_PIN_START not in features
    assert parse_features(b"").codes == {}


@pytest.mark.parametrize("answer", ["06", "06 04 4233", "06 02 4233", "06 05 4233000600"])
def test_parse_features_refuses_malformed_lists(answer: str) -> None:
    with pytest.raises(FormatError):
        parse_features(hex_(answer))


@given(st.dictionaries(st.integers(0, 255), st.integers(0, 0xFFFFFFFF), max_size=20))
def test_features_round_trip(codes: dict[int, int]) -> None:
    assert dict(parse_features(encode_features(codes)).codes) == codes


def test_pin_properties_little_endian_layout() -> None:
    ct710 = parse_pin_properties(hex_("10 02 07 00"))
    assert ct710.lcd == LcdLayout(lines=2, columns=16)
    assert ct710.lcd.has_display
    assert ct710.entry_validation == 0x07
    ct700 = parse_pin_properties(hex_("00 00 02 00"))
    assert not ct700.lcd.has_display
    with pytest.raises(FormatError):
        parse_pin_properties(hex_("00 00 02"))


def test_tlv_properties_give_usb_id_and_pin_sizes() -> None:
    answer = hex_(
        "01 02 1002  02 01 07  03 01 00  06 01 04  07 01 08  08 03 414243  0B 02 E608  0C 02 7834"
    )
    values = parse_tlv_properties(answer)
    assert values[0x08] == b"ABC"
    props = properties_from_tlv(values)
    assert props == PinPadProperties(
        lcd=LcdLayout(2, 16),
        entry_validation=EntryValidation(7),
        timeout2=0,
        min_pin_size=4,
        max_pin_size=8,
        usb_id=(0x08E6, 0x3478),
    )
    with pytest.raises(FormatError):
        parse_tlv_properties(hex_("0B 02 E6"))


# --- structures --------------------------------------------------------------------

PLAIN = EntrySettings()  # a pad without display or quirks
CT700 = EntrySettings.for_reader(
    PinPadProperties(entry_validation=EntryValidation(7), max_pin_size=8),
    quirks_for((0x08E6, 0x3478)),
)
CT710 = EntrySettings.for_reader(
    PinPadProperties(lcd=LcdLayout(2, 16), entry_validation=EntryValidation(7)), NO_QUIRKS
)


def test_format_string_bits() -> None:
    assert format_string(PinEncoding.ASCII) == 0x82
    assert format_string(PinEncoding.BCD, position=1) == 0x89
    assert format_string(PinEncoding.ASCII, right_justify=True) == 0x86


@pytest.mark.parametrize(
    ("settings", "ref", "expected"),
    [
        # bTimerOut bTimerOut2 bmFormatString bmPINBlockString bmPINLengthFormat
        # wPINMaxExtraDigit(max,min) bEntryValidationCondition bNumberMessage wLangId
        # bMsgIndex bTeoPrologue[3] ulDataLength abData
        (PLAIN, PinRef.PIN, f"1E 00 82 08 00 0804 02 00 0904 00 000000 0D000000 0020008108 {FF8}"),
        (CT700, PinRef.PIN, f"1E 00 82 08 00 0804 02 01 0904 00 000000 0D000000 0020008108 {FF8}"),
        (CT700, PinRef.SPIN, f"1E 00 82 08 00 0806 02 01 0904 00 000000 0D000000 0020008308 {FF8}"),
        (CT710, PinRef.PIN, f"1E 00 82 08 00 0804 02 01 0904 00 000000 0D000000 0020008108 {FF8}"),
    ],
    ids=["plain-pin", "ct700-pin", "ct700-spin", "ct710-pin"],
)
def test_verify_structure_bytes(settings: EntrySettings, ref: PinRef, expected: str) -> None:
    structure = verify_structure(0x20, ref, PIN_FORMATS[ref], settings)
    assert structure.to_bytes() == hex_(expected)


MODIFY_CASES = [
    # bTimerOut bTimerOut2 bmFormatString bmPINBlockString bmPINLengthFormat
    # bInsertionOffsetOld bInsertionOffsetNew wPINMaxExtraDigit bConfirmPIN
    # bEntryValidationCondition bNumberMessage wLangId bMsgIndex1-3 bTeoPrologue
    # ulDataLength abData
    (PLAIN, 0x24, 0x81, PIN, PIN,
     f"1E 00 82 08 00 00 08 0804 03 02 00 0904 000102 000000 15000000 0024008110 {FF16}"),
    (CT700, 0x24, 0x81, PIN, PIN,
     f"1E 00 82 08 00 00 08 0804 03 02 03 0904 000102 000000 15000000 0024008110 {FF16}"),
    (CT700, 0x2C, 0x81, PUK, PIN,
     f"1E 00 82 08 00 00 08 0804 03 02 03 0904 000102 000000 15000000 002C008110 {FF16}"),
    (CT700, 0x24, 0x83, TPIN, SPIN,
     f"1E 00 82 08 00 00 08 0806 03 02 03 0904 000102 000000 15000000 0024008310 {FF16}"),
    (CT710, 0x24, 0x83, SPIN, SPIN,
     f"1E 00 82 08 00 00 08 0806 03 02 03 0904 000102 000000 15000000 0024008310 {FF16}"),
]


@pytest.mark.parametrize(
    ("settings", "ins", "p2", "old", "new", "expected"),
    MODIFY_CASES,
    ids=["plain-change", "ct700-change", "ct700-unblock", "ct700-activate", "ct710-change-spin"],
)
def test_modify_structure_bytes(
    settings: EntrySettings, ins: int, p2: int, old: PinFormat, new: PinFormat, expected: str
) -> None:
    assert modify_structure(ins, p2, old, new, settings).to_bytes() == hex_(expected)


def test_reader_pin_size_limits_narrow_the_range() -> None:
    short_pad = EntrySettings(max_pin_size=6)
    assert verify_structure(0x20, 0x81, PIN, short_pad).to_bytes()[5:7] == hex_("0604")
    with pytest.raises(NotSupported):
        verify_structure(0x20, 0x82, PUK, short_pad)  # the PUK has 8 digits


def test_entry_validation_follows_the_reader() -> None:
    only_max = PinPadProperties(entry_validation=EntryValidation.MAX_SIZE_REACHED)
    assert EntrySettings.for_reader(only_max, NO_QUIRKS).entry_validation == 0x01
    assert EntrySettings.for_reader(only_max, quirks_for((0x08E6, 0x3478))).entry_validation == 2


def test_the_reactivation_password_cannot_be_typed_on_a_pad() -> None:
    with pytest.raises(NotSupported):
        verify_structure(0x20, 0x85, PIN_FORMATS[PinRef.REACTIVATION], PLAIN)


def test_quirk_table() -> None:
    assert quirks_for((0x08E6, 0x3478)).quirks & PadQuirk.VERIFY_ONE_MESSAGE
    assert quirks_for((0x08E6, 0x3478)).usable
    assert not quirks_for((0x076B, 0x3031)).usable  # OMNIKEY 3x21 claims a pad it lacks
    assert not quirks_for((0x03F0, 0x0036)).usable  # HP keyboard: the PIN reaches the host
    assert quirks_for(None) is NO_QUIRKS
    assert quirks_for((0x1234, 0x5678)) is NO_QUIRKS


byte = st.integers(0, 255)
word = st.integers(0, 0xFFFF)
apdu = st.binary(min_size=4, max_size=64)


teo = st.binary(min_size=3, max_size=3)


@given(byte, byte, byte, byte, byte, byte, byte, byte, byte, word, byte, apdu, teo)
def test_verify_structure_round_trip(
    t1: int, t2: int, fs: int, bs: int, lf: int, lo: int, hi: int, ev: int, nm: int,
    lang: int, mi: int, data: bytes, prologue: bytes,
) -> None:
    s = PinVerifyStructure(t1, t2, fs, bs, lf, lo, hi, ev, nm, lang, mi, data, prologue)
    raw = s.to_bytes()
    assert len(raw) == 19 + len(data)
    assert int.from_bytes(raw[15:19], "little") == len(data)
    assert PinVerifyStructure.from_bytes(raw) == s


@given(st.lists(byte, min_size=15, max_size=15), word, apdu)
def test_modify_structure_round_trip(f: list[int], lang: int, data: bytes) -> None:
    s = PinModifyStructure(
        timeout=f[0], timeout2=f[1], format_string=f[2], pin_block_string=f[3],
        pin_length_format=f[4], insertion_offset_old=f[5], insertion_offset_new=f[6],
        min_pin=f[7], max_pin=f[8], confirm_pin=f[9], entry_validation=f[10],
        number_message=f[11], lang_id=lang, msg_index1=f[12], msg_index2=f[13],
        msg_index3=f[14], apdu=data,
    )
    raw = s.to_bytes()
    assert len(raw) == 24 + len(data)
    assert int.from_bytes(raw[20:24], "little") == len(data)
    assert PinModifyStructure.from_bytes(raw) == s


@given(st.binary(max_size=40))
def test_structure_parsers_only_raise_format_error(raw: bytes) -> None:
    for parser in (PinVerifyStructure.from_bytes, PinModifyStructure.from_bytes):
        with contextlib.suppress(FormatError):
            parser(raw)


def test_verify_parser_checks_data_length() -> None:
    raw = bytearray(verify_structure(0x20, 0x81, PIN, PLAIN).to_bytes())
    raw[15] += 1
    with pytest.raises(FormatError):
        PinVerifyStructure.from_bytes(bytes(raw))


# --- the reader's answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("6400", PinPadTimeout),
        ("6401", PinPadCancelled),
        ("6403", PinPadWrongLength),
        ("6B80", PinPadError),
        ("90", PinPadError),
    ],
)
def test_reader_answers_map_to_typed_errors(answer: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        card_status(hex_(answer))


def test_confirmation_mismatch_is_the_same_error_as_on_the_keyboard() -> None:
    with pytest.raises(WeakPin) as caught:
        card_status(hex_("6402"))
    assert caught.value.rule is PinRule.CONFIRMATION_MISMATCH


@pytest.mark.parametrize("answer", ["9000", "63C2", "6983", "6984", "6A88"])
def test_card_answers_pass_through(answer: str) -> None:
    assert card_status(hex_(answer)) == int(answer, 16)
