"""The verifier's fast paths (issue #14, G4) agree with the strict reference parsers.

``pkcard.verify`` reads a payload laid out as pkcardd writes it with one
regular expression (``parse_compact_payload``); any other payload takes
the strict JSON parser (duplicate-key hook) and ``SessionClaims.from_json``
(field by field, which names the fault). The strict base64 codecs lost their
Python re-encoding. Each test here feeds random input,
valid and hostile, to the fast path and to the reference, and requires the
same answer: the same value, or a refusal (the fast paths return None and the
reference then refuses with its own reason).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenrig import EXAMPLES, PATIENT

from pkcard.errors import FormatError, RefusalReason, TokenRefused
from pkcard.token import (
    CLAIM_NAMES,
    BackupSwitchReason,
    CardRole,
    Environment,
    Profession,
    ProofMethod,
    SessionClaims,
    _claims_by_field,
    _compact_json,
    b64_decode_strict,
    b64url_decode,
    b64url_encode,
    parse_compact_payload,
)
from pkcard.verify import _json_object

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# --- the reference codecs, as they were before the fast paths --------------

def ref_b64url_decode(text: str) -> bytes:
    tail = len(text) % 4
    if tail == 1 or not text.isascii():
        raise FormatError("not canonical unpadded base64url")
    raw = text.encode("ascii")
    if raw.translate(None, B64URL.encode()):
        raise FormatError("not canonical unpadded base64url")
    if tail and B64URL.encode().find(raw[-1]) & (0x0F if tail == 2 else 0x03):
        raise FormatError("not canonical unpadded base64url")
    return binascii.a2b_base64(raw.translate(bytes.maketrans(b"-_", b"+/")) + b"=" * (-tail % 4),
                               strict_mode=True)


def ref_b64_decode_strict(text: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise FormatError("not canonical base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise FormatError("not canonical base64")
    return data


def outcome(decode: Any, text: str) -> bytes | None:
    try:
        value = decode(text)
    except FormatError:
        return None
    assert isinstance(value, bytes)
    return value


def _mutated(encoded: str, data: st.DataObject, extra: str) -> str:
    """``encoded`` with up to three characters replaced, inserted or removed."""
    text = encoded
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(text)))
        char = data.draw(st.sampled_from(extra))
        how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if how == "insert" or not text:
            text = text[:at] + char + text[at:]
        elif how == "replace":
            at = min(at, len(text) - 1)
            text = text[:at] + char + text[at + 1:]
        else:
            at = min(at, len(text) - 1)
            text = text[:at] + text[at + 1:]
    return text


_B64_NOISE = B64URL + "+/= \n.\u00e9\x00"


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=80), st.data())
def test_b64url_decode_agrees_with_the_reference(raw: bytes, data: st.DataObject) -> None:
    text = _mutated(b64url_encode(raw), data, _B64_NOISE)
    assert outcome(b64url_decode, text) == outcome(ref_b64url_decode, text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet=_B64_NOISE, max_size=24))
def test_b64url_decode_agrees_on_any_text(text: str) -> None:
    assert outcome(b64url_decode, text) == outcome(ref_b64url_decode, text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=80), st.data())
def test_b64_decode_strict_agrees_with_the_reference(raw: bytes, data: st.DataObject) -> None:
    text = _mutated(base64.b64encode(raw).decode("ascii"), data, B64 + "-_= \n.\u00e9")
    assert outcome(b64_decode_strict, text) == outcome(ref_b64_decode_strict, text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet=B64 + "-_= \n", max_size=16))
def test_b64_decode_strict_agrees_on_any_text(text: str) -> None:
    assert outcome(b64_decode_strict, text) == outcome(ref_b64_decode_strict, text)


@pytest.mark.parametrize("text", ["QR==", "QUJ=", "QQ", "QQ=", "QQ==QQ==", "=QQ=", "Q-==", ""])
def test_b64_decode_strict_edges_agree(text: str) -> None:
    assert outcome(b64_decode_strict, text) == outcome(ref_b64_decode_strict, text)


# --- JSON: the C decoder alone vs the duplicate-key hook ---------------------

class Obj(list[tuple[str, Any]]):
    """A JSON object as written: its members in order, repeated keys kept."""


# few distinct keys, so that objects repeat them; some need escapes, some start with ':'
_KEYS = st.sampled_from(["a", "b", "iss", "nonce", "\u00e9", "a\"b", "\\", ":x", "x:", " ", ""])
_SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(alphabet=st.sampled_from("ab:\" \\\u00e9\u010d\n/\u2028"), max_size=6))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.lists(st.tuples(_KEYS, inner), max_size=4).map(Obj),
    max_leaves=12,
)
_WHITESPACE = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n "])


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> str:
    """``value`` written as JSON, with random whitespace, escapes and spellings."""
    def ws() -> str:
        return draw(_WHITESPACE)

    def write(item: Any) -> str:
        if isinstance(item, Obj):
            members = [f"{ws()}{write(k)}{ws()}:{ws()}{write(v)}{ws()}" for k, v in item]
            return "{" + ",".join(members) + "}"
        if isinstance(item, list):
            return "[" + ",".join(f"{ws()}{write(v)}{ws()}" for v in item) + "]"
        if isinstance(item, str):
            text = json.dumps(item, ensure_ascii=draw(st.booleans()))
            if "\\" not in text and draw(st.integers(0, 4)) == 0:  # one letter as \\uXXXX
                plain = [i for i, c in enumerate(text[1:-1], 1) if c.isalnum()]
                if plain:
                    at = draw(st.sampled_from(plain))
                    text = f"{text[:at]}\\u{ord(text[at]):04x}{text[at + 1:]}"
            return text
        return json.dumps(item)

    return ws() + write(value) + ws()


def _top_objects() -> st.SearchStrategy[Obj]:
    return st.lists(st.tuples(_KEYS, _VALUES), max_size=6).map(Obj)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(_KEYS, _SCALARS), min_size=1, max_size=5), st.data())
def test_repeated_keys_are_refused(members: list[tuple[str, Any]], data: st.DataObject) -> None:
    twice = Obj([*members, (members[0][0], data.draw(_SCALARS))])
    nested = Obj([("a", twice)])
    for value in (twice, nested):
        segment = data.draw(json_text(value)).encode("utf-8")
        assert parse_compact_payload(segment) is None
        with pytest.raises(TokenRefused) as info:
            _json_object(segment, "payload")
        assert info.value.reason in (RefusalReason.DUPLICATE_JSON_KEY, RefusalReason.MALFORMED)


@pytest.mark.parametrize("segment", [
    b'{"a":1,"a":2}', b'{"a":1,"\\u0061":2}', b'{"a":{"b":1,"b":1}}', b'{"a":1 ,"a":2}',
    b'{"a":1,"a" :2}', b'{"a":"x\\":","a" :2}', b'{"a":NaN}', b'{"a":-Infinity}',
    b'\xef\xbb\xbf{"a":1}', b'{"a":1}{"a":1}', b'[1]', b'"x"', b'{"a":1',
])
def test_hostile_payloads_are_refused(segment: bytes) -> None:
    assert parse_compact_payload(segment) is None
    with pytest.raises(TokenRefused):
        _json_object(segment, "payload")


# --- claims: one pass vs field by field --------------------------------------

_CODES = st.lists(st.from_regex(r"[A-Z][A-Z0-9]{1,6}", fullmatch=True), max_size=4, unique=True)


_ANY_REASON = st.text(min_size=1, max_size=30).filter(str.strip)

@st.composite
def claims(draw: st.DrawFn, reasons: st.SearchStrategy[str] = _ANY_REASON) -> SessionClaims:
    method = draw(st.sampled_from(ProofMethod))
    role = draw(st.sampled_from(CardRole))
    iat = draw(st.integers(0, 2**40 - 1000))
    kzz: dict[str, Any] = {} if method.restricted else {
        "patient_proof_time": draw(st.integers(0, 2**40 - 1)),
        "kzz_serial": draw(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)),
        "kzz_proof": draw(st.binary(min_size=1, max_size=80)),
        "kzz_cert": draw(st.binary(min_size=1, max_size=80)),
    }
    patient = draw(st.sampled_from([PATIENT, None])) if method.restricted else PATIENT
    return SessionClaims(
        iss=draw(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)),
        iat=iat, exp=iat + draw(st.integers(1, 600)),
        nonce=draw(st.binary(min_size=32, max_size=32)), proof_method=method,
        actor_id=draw(st.sampled_from(["10001", "a.b:c-d_9"])),
        profession=draw(st.sampled_from(Profession)), card_serial="PK0000100001",
        card_role=role, environment=draw(st.sampled_from(Environment)),
        authorizations=tuple(draw(_CODES)), patient_id=patient,
        restricted_reason=draw(reasons) if method.restricted else None,
        backup_switch=draw(st.none() | st.sampled_from(BackupSwitchReason))
        if role is CardRole.BACKUP else None,
        **kzz,
    )


_ODD_VALUES = st.sampled_from([
    None, True, False, 0, 1, -1, 2, 1.0, 2**40 - 1, 2**40, "", " ", "1", "x", "I002",
    "i002", "123456789", "12345678", "10001", "kzz-contact-pcsc", "restricted-emergency",
    "doctor", "backup", "regular", "test", "production", "fault", "AAAA", "QQ", "QQ==",
    b64url_encode(b"\x07" * 32), base64.b64encode(b"\x01\x02").decode(), [], ["I002"],
    ["I002", "I002"], ["I002", 1], [["I002"]], {}, {"a": 1}, "x" * 201, "a" * 65,
])


def check_payload(segment: bytes) -> SessionClaims | None:
    """The compact-layout parser agrees with strict JSON + the field-by-field parser."""
    fast = parse_compact_payload(segment)
    try:
        reference = _claims_by_field(SessionClaims, _json_object(segment, "payload"))
    except (TokenRefused, FormatError):
        assert fast is None
        return None
    if fast is not None:
        assert fast == reference
        assert repr(fast) == repr(reference)
        assert {k: type(v) for k, v in vars(fast).items()} == \
            {k: type(v) for k, v in vars(reference).items()}
    return fast


@settings(max_examples=EXAMPLES, deadline=None)
@given(claims())
def test_every_payload_pkcardd_writes_takes_the_compact_path(good: SessionClaims) -> None:
    segment = _compact_json(good.to_json())  # what build_token signs
    assert check_payload(segment) == good


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(claims(), st.data())
def test_the_compact_parser_agrees_on_changed_claims(good: SessionClaims,
                                                     data: st.DataObject) -> None:
    obj: dict[str, Any] = good.to_json()
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(CLAIM_NAMES | {"jti"})))
        how = data.draw(st.sampled_from(["set", "delete", "move to the end"]))
        if how == "delete":
            obj.pop(key, None)
        elif how == "move to the end" and key in obj:
            obj[key] = obj.pop(key)
        else:
            obj[key] = data.draw(_ODD_VALUES)
    check_payload(_compact_json(obj))
    check_payload(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(claims(), st.data())
def test_the_compact_parser_agrees_on_mangled_text(good: SessionClaims,
                                                   data: st.DataObject) -> None:
    text = _compact_json(good.to_json()).decode("ascii")
    check_payload(_mutated(text, data, '{}[]":,\\ 019aAzZ-_=+/.u\u00e9').encode("utf-8"))


@pytest.mark.parametrize("change", [
    ('"version":1', '"version":2'), ('"version":1', '"version":1.0'),
    ('"version":1', '"version":01'), ('"iat":', '"iat":-'), ('"iat":', '"iat":9999999'),
    ('"authorizations":["I002"', '"authorizations":["I002","I002"'),
    ('"restrictedReason":"', '"restrictedReason": "'), ('"cardRole":"regular"', '"cardRole":"x"'),
    ('"environment":"test"', '"environment":"test","environment":"test"'),
])
def test_changed_compact_payloads_take_the_json_path(change: tuple[str, str]) -> None:
    good = SessionClaims.from_json(json.loads(_compact_json(make_restricted().to_json())))
    text = _compact_json(good.to_json()).decode("ascii")
    assert change[0] in text
    changed = text.replace(change[0], change[1], 1).encode("ascii")
    assert parse_compact_payload(changed) is None
    check_payload(changed)


def make_restricted() -> SessionClaims:
    return SessionClaims(
        iss="ws-1", iat=1_700_000_000, exp=1_700_000_300, nonce=b"\x07" * 32,
        proof_method=ProofMethod.RESTRICTED_EMERGENCY, actor_id="10001",
        profession=Profession.NURSE, card_serial="PK0000100001", card_role=CardRole.REGULAR,
        environment=Environment.TEST, authorizations=("I002",),
        restricted_reason="nujna pomo\u010d, \"brez\" KZZ \\ \x7f",
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_the_compact_parser_agrees_on_random_json(data: st.DataObject) -> None:
    check_payload(data.draw(json_text(data.draw(_top_objects()))).encode("utf-8"))
