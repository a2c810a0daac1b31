from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard.errors import FormatError, TlvError
from pkcard.tlv import (
    Tlv,
    encode_length,
    encode_tag,
    find,
    is_constructed,
    parse_dict,
    parse_list,
    validate_tree,
)


@st.composite
def tags(draw: st.DrawFn, constructed: bool | None = None) -> int:
    """Well-formed tags of 1 to 4 bytes."""
    size = draw(st.integers(1, 4))
    cls_bits = draw(st.integers(0, 3)) << 6
    if constructed is None:
        constructed = draw(st.booleans())
    cons = 0x20 if constructed else 0
    if size == 1:
        number = draw(st.integers(1 if not cls_bits and not cons else 0, 0x1E))
        return cls_bits | cons | number
    first = cls_bits | cons | 0x1F
    if first == 0xFF:
        first = 0xDF if not constructed else 0x7F
    raw = [first, draw(st.integers(0x01, 0x7F) if size == 2 else st.integers(0x81, 0xFF))]
    for position in range(2, size):
        last = position == size - 1
        raw.append(draw(st.integers(0, 0x7F) if last else st.integers(0x80, 0xFF)))
    return int.from_bytes(bytes(raw), "big")


primitive = st.builds(Tlv, tags(constructed=False), st.binary(max_size=300))


def _nest(children: st.SearchStrategy[list[Tlv]]) -> st.SearchStrategy[Tlv]:
    return st.builds(lambda tag, kids: Tlv(tag, b"".join(kids)), tags(constructed=True), children)


trees = st.recursive(primitive, lambda inner: _nest(st.lists(inner, max_size=4)), max_leaves=12)


@given(trees)
def test_round_trip(obj: Tlv) -> None:
    parsed = Tlv.parse(bytes(obj))
    assert parsed == obj
    assert parsed.tag == obj.tag
    assert parsed.value == obj.value
    assert parsed.length == len(obj.value)
    assert Tlv(parsed.tag, parsed.value) == obj
    assert validate_tree(bytes(obj)) == [obj]


@given(st.lists(trees, max_size=3))
def test_list_round_trip(objects: list[Tlv]) -> None:
    assert parse_list(b"".join(objects)) == objects


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_tlv_error(data: bytes) -> None:
    try:
        objects = validate_tree(data)
    except TlvError:
        return
    assert b"".join(objects) == data  # every accepted encoding is canonical


@given(st.binary(max_size=200))
def test_arbitrary_bytes_with_padding(data: bytes) -> None:
    try:
        objects = parse_list(data, allow_padding=True)
    except FormatError:
        return
    assert all(obj.tag for obj in objects)


def test_known_encoding() -> None:
    card_info = Tlv(0x7F60, Tlv(0x5A, b"PK0000100001") + Tlv(0xDF03, b"\x01"))
    assert card_info.hex().upper() == "7F60125A0C504B30303030313030303031DF030101"
    assert card_info.constructed
    assert [child.tag for child in card_info.children] == [0x5A, 0xDF03]
    assert find(card_info, 0x7F60, 0x5A) == b"PK0000100001"
    assert Tlv.unpack(0x7F60, card_info) == card_info.value


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0x10000, "83010000"),
        (0x1000000, "8401000000"),
    ],
)
def test_length_forms(length: int, encoded: str) -> None:
    assert encode_length(length) == bytes.fromhex(encoded)


@pytest.mark.parametrize(
    "raw",
    [
        "",  # no tag
        "5A",  # no length
        "5A03AABB",  # truncated value
        "5A01AABB",  # trailing byte
        "5A80",  # indefinite length
        "5A8105" + "00" * 5,  # non-minimal long form
        "5A820080" + "00" * 0x80,  # non-minimal two-byte length
        "5A8500000000010000",  # length form beyond 84
        "5A82",  # truncated long length
        "5A84FFFFFFFF",  # length beyond the buffer
        "1F",  # truncated multi-byte tag
        "1F8101",  # truncated multi-byte tag
        "1F8001" + "00",  # leading zero group in tag
        "1F0000",  # tag number zero in the long form
        "1F8181818100",  # tag longer than 4 bytes
        "005A00",  # leading padding
        "FF5A00",  # leading 0xFF padding
    ],
)
def test_rejects(raw: str) -> None:
    with pytest.raises(TlvError):
        Tlv.parse(bytes.fromhex(raw))


def test_padding_only_when_allowed() -> None:
    data = bytes.fromhex("005A0101FF00C00102FF")
    with pytest.raises(TlvError):
        parse_list(data)
    assert [obj.tag for obj in parse_list(data, allow_padding=True)] == [0x5A, 0xC0]


def test_parse_dict_rejects_duplicates() -> None:
    assert parse_dict(bytes.fromhex("5A0101C00102")) == {0x5A: b"\x01", 0xC0: b"\x02"}
    with pytest.raises(TlvError, match="duplicate"):
        parse_dict(bytes.fromhex("5A01015A0102"))


def test_unpack_checks_tag() -> None:
    with pytest.raises(TlvError, match="expected tag"):
        Tlv.unpack(0x5A, Tlv(0x5F20, b"x"))


@pytest.mark.parametrize("tag", [0, -1, 0x1F, 0xFF, 0x5A00, 0x1F80, 0xDF8181, 0x9F818181FF])
def test_encode_tag_rejects_malformed(tag: int) -> None:
    with pytest.raises(TlvError):
        encode_tag(tag)


def test_is_constructed() -> None:
    assert is_constructed(0x7F60)
    assert is_constructed(0x62)
    assert not is_constructed(0x5F20)
    assert not is_constructed(0xDF01)
    assert not is_constructed(0x5A)


def test_children_of_primitive_is_error() -> None:
    with pytest.raises(TlvError, match="primitive"):
        _ = Tlv(0x5A, b"\x5a\x00").children


def test_find_errors() -> None:
    data = Tlv(0x7F60, Tlv(0x5A, b"x"))
    with pytest.raises(TlvError, match="not found"):
        find(data, 0x7F60, 0xDF01)
    with pytest.raises(TlvError, match="primitive"):
        find(Tlv(0x5A, Tlv(0x5A, b"")), 0x5A, 0x5A)


def test_depth_bound() -> None:
    obj = Tlv(0x5A, b"")
    for _ in range(20):
        obj = Tlv(0x7F60, obj)
    with pytest.raises(TlvError, match="nesting"):
        validate_tree(obj)
    assert validate_tree(obj, max_depth=21) == [obj]


def test_copy_and_pickle_keep_the_tag() -> None:
    obj = Tlv(0x7F60, Tlv(0x5A, b"x"))
    for clone in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
        assert isinstance(clone, Tlv)
        assert clone == obj
        assert clone.tag == 0x7F60


def _parse_dict_through_parse_list(data: bytes) -> dict[int, bytes]:
    """parse_dict as it was: parse_list, then the duplicates."""
    out: dict[int, bytes] = {}
    for obj in parse_list(data):
        if obj.tag in out:
            raise TlvError(f"duplicate tag {obj.tag:X}")
        out[obj.tag] = obj.value
    return out


def _outcome(parse: Callable[[bytes], dict[int, bytes]], data: bytes) -> object:
    try:
        return parse(data)
    except TlvError as exc:
        return str(exc)


_objects = st.lists(
    st.builds(lambda tag, value: bytes(Tlv(tag, value)),
              st.sampled_from((0x5A, 0x80, 0x5F20, 0xDF01, 0xDF06, 0x7F60, 0x9F8101)),
              st.binary(max_size=140)),
    max_size=6,
).map(b"".join)


@given(st.one_of(st.binary(max_size=64), _objects, _objects.map(lambda b: b[:-1]),
                 st.tuples(_objects, st.binary(max_size=4)).map(b"".join)))
def test_parse_dict_is_parse_list_then_the_duplicates(data: bytes) -> None:
    """parse_dict reads the objects itself (no Tlv each): same values, same errors."""
    assert _outcome(parse_dict, data) == _outcome(_parse_dict_through_parse_list, data)
