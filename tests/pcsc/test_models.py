"""The reader model table (no pcscd needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.pcsc_bridge.features import parse_features, parse_tlv_properties, usb_id_from_properties
from pkcard.pcsc_bridge.models import MODEL_TABLE, identify, model_from_usb_id
from pkcard.readers import ReaderModel


@pytest.mark.parametrize(
    ("name", "model", "pin_pad", "display"),
    [
        ("Gemalto PC Twin Reader 00 00", ReaderModel.IDBRIDGE_CT30, False, False),
        ("Gemalto PC Twin Reader (5C7A1B2D) 01 00", ReaderModel.IDBRIDGE_CT30, False, False),
        ("Gemalto USB GemPCPinpad SmartCard Reader 00 00", ReaderModel.IDBRIDGE_CT700, True, False),
        ("Gemalto GemPC Pinpad 00 00", ReaderModel.IDBRIDGE_CT700, True, False),
        ("Gemalto IDBridge CT710 00 00", ReaderModel.IDBRIDGE_CT710, True, True),
        ("Gemalto IDBridge GCR5500 00 00", ReaderModel.IDBRIDGE_GCR5500, None, None),
        ("Virtual PCD 00 00", ReaderModel.GENERIC, False, False),
        ("Alcor Micro AU9540 00 00", ReaderModel.GENERIC, False, False),
    ],
)
def test_identify_by_name(
    name: str, model: ReaderModel, pin_pad: bool | None, display: bool | None
) -> None:
    info = identify(name)
    assert info.name == name
    assert info.model is model
    assert (info.capabilities.pin_pad, info.capabilities.display) == (pin_pad, display)


@pytest.mark.parametrize(
    ("usb_id", "model"),
    [
        ((0x08E6, 0x3437), ReaderModel.IDBRIDGE_CT30),
        ((0x08E6, 0x3478), ReaderModel.IDBRIDGE_CT700),
        ((0x08E6, 0x34C2), ReaderModel.IDBRIDGE_CT710),
    ],
)
def test_identify_by_usb_id_when_the_name_says_nothing(
    usb_id: tuple[int, int], model: ReaderModel
) -> None:
    info = identify("Gemalto Ezio Shield 00 00", usb_id)
    assert info.model is model
    assert info.usb_id == usb_id


def test_name_wins_over_usb_id() -> None:
    assert identify("Gemalto PC Twin Reader 00 00", (0x08E6, 0x34C2)).model is (
        ReaderModel.IDBRIDGE_CT30
    )


def test_gcr5500_has_no_usb_id_and_unknown_capabilities() -> None:
    gcr = next(e for e in MODEL_TABLE if e.model is ReaderModel.IDBRIDGE_GCR5500)
    assert gcr.usb_id is None
    assert gcr.capabilities.pin_pad is None


@given(st.text(max_size=60), st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
def test_identify_is_total(name: str, usb_id: tuple[int, int]) -> None:
    info = identify(name, usb_id)
    entry = model_from_usb_id(usb_id)
    assert info.model in ReaderModel
    if info.model is ReaderModel.GENERIC:
        assert entry is None
        assert info.capabilities.pin_pad is False


@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.binary(min_size=0, max_size=6)),
        max_size=8,
    )
)
def test_tlv_properties_round_trip(entries: list[tuple[int, bytes]]) -> None:
    data = b"".join(bytes([tag, len(value)]) + value for tag, value in entries)
    expected = {tag: int.from_bytes(value, "little") for tag, value in entries}
    assert parse_tlv_properties(data) == expected


def test_usb_id_from_ccid_properties() -> None:
    # wIdVendor 08E6, wIdProduct 3478 (little-endian), plus an LCD layout entry
    data = bytes.fromhex("0B02E608" "0C027834" "01020000")
    assert usb_id_from_properties(parse_tlv_properties(data)) == (0x08E6, 0x3478)
    assert usb_id_from_properties(parse_tlv_properties(bytes.fromhex("0B02E608"))) is None


@given(st.dictionaries(st.integers(0, 255), st.integers(0, 2**32 - 1), max_size=8))
def test_feature_list_round_trip(features: dict[int, int]) -> None:
    data = b"".join(bytes([tag, 4]) + code.to_bytes(4, "big") for tag, code in features.items())
    assert parse_features(data) == features
    assert parse_features(data + b"\x12") == features  # a truncated tail is ignored
