"""BER-TLV data objects (ISO 7816-4 §5.2, ITU-T X.690 §8.1), strict.

A :class:`Tlv` *is* its encoding (a ``bytes`` subclass) and knows its
``tag``, ``length`` and ``value``. Tags are held as the big-endian integer of
their bytes (``0x5A``, ``0x7F60``, ``0xDF01``).

Every decoder here rejects, with :class:`~pkcard.errors.TlvError`:

- truncation: a tag, length or value running past the end of the buffer;
- trailing bytes after the object(s) asked for;
- tags longer than :data:`MAX_TAG_BYTES` bytes, and a first subsequent tag
  byte of ``80`` (a leading zero group) or ``00`` (tag number zero). Second
  bytes ``01``..``1E`` are accepted although X.690 calls them non-minimal:
  EMV (``9F02``) and this project's card profile (``DF01``) use them;
- the indefinite length ``80``, length forms beyond ``84``, and non-minimal
  long forms (``81 05``, ``82 00 80``): every object has one encoding, so
  ``parse(x).encode() == x`` always holds;
- ``00`` and ``FF`` where a tag should start. ISO 7816-4 allows them as
  padding between objects; :func:`parse_list` skips them only when called with
  ``allow_padding=True`` (some cards pad records and files that way).

Only :func:`find` and :func:`validate_tree` look inside constructed objects,
and :func:`validate_tree` bounds its recursion by ``max_depth``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pkcard.errors import TlvError

MAX_TAG_BYTES = 4
MAX_DEPTH = 16
_PADDING = (0x00, 0xFF)


def is_constructed(tag: int) -> bool:
    """Whether ``tag`` (as an integer) has the constructed bit (b6 of its first byte)."""
    first = tag >> (8 * ((tag.bit_length() - 1) // 8)) if tag else 0
    return bool(first & 0x20)


def _read_tag(data: bytes, offset: int, end: int) -> tuple[int, int]:
    """Decode the tag at ``offset``; return (tag, offset after it)."""
    if offset >= end:
        raise TlvError("truncated: missing tag")
    first = data[offset]
    if first in _PADDING:
        raise TlvError(f"byte {first:02X} at offset {offset} is padding, not a tag")
    offset += 1
    tag = first
    if first & 0x1F != 0x1F:
        return tag, offset
    count = 1
    while True:
        if offset >= end:
            raise TlvError("truncated: multi-byte tag")
        byte = data[offset]
        if count == 1 and byte in (0x00, 0x80):
            raise TlvError(f"non-minimal multi-byte tag {first:02X}{byte:02X}")
        count += 1
        if count > MAX_TAG_BYTES:
            raise TlvError(f"tag longer than {MAX_TAG_BYTES} bytes")
        tag = (tag << 8) | byte
        offset += 1
        if not byte & 0x80:
            return tag, offset


def _read_length(data: bytes, offset: int, end: int) -> tuple[int, int]:
    """Decode the length at ``offset``; return (length, offset after it)."""
    if offset >= end:
        raise TlvError("truncated: missing length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    if first == 0x80:
        raise TlvError("indefinite length (80) is not allowed")
    count = first & 0x7F
    if count > 4:
        raise TlvError(f"length form {first:02X} is not supported")
    if offset + count > end:
        raise TlvError("truncated: long-form length")
    length = int.from_bytes(data[offset : offset + count], "big")
    if length < 0x80 or length.bit_length() <= 8 * (count - 1):
        raise TlvError(f"non-minimal length form {first:02X} for length {length}")
    return length, offset + count


def _read(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """Decode one object header at ``offset``; return (tag, value offset, value end)."""
    if offset + 1 < end:  # the common header, a one-byte tag and a short length, inline
        first = data[offset]
        length = data[offset + 1]
        if first & 0x1F != 0x1F and length < 0x80 and first not in _PADDING:
            offset += 2
            if offset + length > end:
                raise TlvError(f"truncated: value of tag {first:X} needs {length} bytes")
            return first, offset, offset + length
    tag, offset = _read_tag(data, offset, end)
    length, offset = _read_length(data, offset, end)
    if offset + length > end:
        raise TlvError(f"truncated: value of tag {tag:X} needs {length} bytes")
    return tag, offset, offset + length


def encode_tag(tag: int) -> bytes:
    """The bytes of ``tag``, checked to be one well-formed, minimal BER tag."""
    if tag <= 0:
        raise TlvError("tag must be a positive integer")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    _, end = _read_tag(raw, 0, len(raw))
    if end != len(raw):
        raise TlvError(f"tag {tag:X} is not a single well-formed BER tag")
    return raw


def encode_length(length: int) -> bytes:
    """The minimal BER encoding of ``length`` (short form below 128, else 81..84)."""
    if length < 0:
        raise TlvError("length must not be negative")
    if length < 0x80:
        return bytes((length,))
    count = (length.bit_length() + 7) // 8
    if count > 4:
        raise TlvError("length does not fit four bytes")
    return bytes((0x80 | count,)) + length.to_bytes(count, "big")


class Tlv(bytes):
    """One BER-TLV data object; the instance is its own encoding."""

    _tag: int
    _value_offset: int

    def __new__(cls, tag: int, value: bytes = b"") -> Tlv:
        raw = encode_tag(tag) + encode_length(len(value)) + value
        obj = bytes.__new__(cls, raw)
        obj._tag = tag
        obj._value_offset = len(raw) - len(value)
        return obj

    @classmethod
    def _wrap(cls, raw: bytes, tag: int, value_offset: int) -> Tlv:
        obj = bytes.__new__(cls, raw)
        obj._tag = tag
        obj._value_offset = value_offset
        return obj

    @property
    def tag(self) -> int:
        return self._tag

    @property
    def length(self) -> int:
        """The length of the value field."""
        return len(self) - self._value_offset

    @property
    def value(self) -> bytes:
        return bytes(self[self._value_offset :])

    @property
    def constructed(self) -> bool:
        return is_constructed(self._tag)

    @property
    def children(self) -> list[Tlv]:
        """The objects inside a constructed object (no padding allowed)."""
        if not self.constructed:
            raise TlvError(f"tag {self._tag:X} is primitive, it has no children")
        return parse_list(self.value)

    def __reduce__(self) -> tuple[type[Tlv], tuple[int, bytes]]:
        return (Tlv, (self._tag, self.value))

    def __repr__(self) -> str:
        return f"Tlv(0x{self._tag:X}, bytes.fromhex({self.value.hex()!r}))"

    @classmethod
    def parse(cls, data: bytes) -> Tlv:
        """Decode exactly one object spanning all of ``data``."""
        tag, start, stop = _read(data, 0, len(data))
        if stop != len(data):
            raise TlvError(f"{len(data) - stop} trailing bytes after tag {tag:X}")
        return cls._wrap(bytes(data), tag, start)

    @classmethod
    def unpack(cls, tag: int, data: bytes) -> bytes:
        """The value of the single object in ``data``, which must have ``tag``."""
        obj = cls.parse(data)
        if obj.tag != tag:
            raise TlvError(f"expected tag {tag:X}, found {obj.tag:X}")
        return obj.value


def parse_list(data: bytes, *, allow_padding: bool = False) -> list[Tlv]:
    """Decode a concatenation of objects spanning all of ``data``."""
    out: list[Tlv] = []
    offset = 0
    end = len(data)
    raw = bytes(data)
    while offset < end:
        if allow_padding and raw[offset] in _PADDING:
            offset += 1
            continue
        tag, start, stop = _read(raw, offset, end)
        out.append(Tlv._wrap(raw[offset:stop], tag, start - offset))
        offset = stop
    return out


def parse_dict(data: bytes) -> dict[int, bytes]:
    """Decode a concatenation of objects into ``{tag: value}``; a repeated tag is an error.

    The same checks, in the same order, as :func:`parse_list` and then the
    duplicates, without building a :class:`Tlv` per object.
    """
    out: dict[int, bytes] = {}
    duplicate: int | None = None
    offset = 0
    raw = bytes(data)
    end = len(raw)
    while offset < end:
        tag, start, stop = _read(raw, offset, end)
        if duplicate is None and tag in out:
            duplicate = tag
        out[tag] = raw[start:stop]
        offset = stop
    if duplicate is not None:
        raise TlvError(f"duplicate tag {duplicate:X}")
    return out


def find(data: bytes, *path: int) -> bytes:
    """The value at ``path`` through nested objects, e.g. ``find(ef, 0x7F60, 0x5A)``.

    Each level must hold each tag of the path exactly once.
    """
    if not path:
        raise TlvError("empty tag path")
    value = bytes(data)
    for depth, tag in enumerate(path):
        if depth and not is_constructed(path[depth - 1]):
            raise TlvError(f"tag {path[depth - 1]:X} is primitive, it has no children")
        found = parse_dict(value).get(tag)
        if found is None:
            raise TlvError(f"tag {tag:X} not found")
        value = found
    return value


def validate_tree(data: bytes, max_depth: int = MAX_DEPTH) -> list[Tlv]:
    """Parse ``data`` and every constructed object inside it, at most ``max_depth`` deep."""
    top = parse_list(data)
    _validate(top, max_depth)
    return top


def _validate(objects: Iterable[Tlv], depth_left: int) -> None:
    for obj in objects:
        if obj.constructed:
            if depth_left <= 1:
                raise TlvError("TLV nesting deeper than allowed")
            _validate(obj.children, depth_left - 1)
