"""The simulated PK's PKCS#15 structure and the SELECT forms OpenSC uses (no pcscd needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.pkcs15 import PKCS15_AID, Pkcs15Fid
from pkcard.simcard.spec import PK_AID, Fid, SecretRef, pad_secret, secret_format

OK = 0x9000


class Card:
    """Raw APDUs to one simulated card."""

    def __init__(self, profile: str) -> None:
        self.card: SimulatedCard = load_card(profile)
        self.conn = InProcessConnection(self.card)

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.conn.transmit(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def select_path(self, path: bytes, p1: int = 0x08, p2: int = 0x0C) -> tuple[bytes, int]:
        le = b"" if p2 == 0x0C else b"\x00"
        return self.send(bytes([0x00, 0xA4, p1, p2, len(path)]) + path + le)

    def read(self) -> bytes:
        out = b""
        while True:
            data, sw = self.send(bytes([0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, 0x00]))
            out += data
            if sw != OK:
                assert sw in (0x6282, 0x6B00)
                return out

    def read_path(self, path: bytes) -> bytes:
        assert self.select_path(path)[1] == OK
        return self.read()

    def verify_pin(self) -> int:
        value = self.card.profile.secret_value(SecretRef.PIN).encode("ascii")
        block = pad_secret(value, secret_format(SecretRef.PIN).block_length)
        return self.send(bytes([0x00, 0x20, 0x00, SecretRef.PIN, len(block)]) + block)[1]


def _objects(content: bytes) -> Iterator[tuple[int, bytes]]:
    """(first tag byte, contents) of each DER object in ``content`` (short tags only)."""
    rest = content
    while rest:
        tag, first = rest[0], rest[1]
        if first < 0x80:
            length, header = first, 2
        else:
            size = first & 0x7F
            length, header = int.from_bytes(rest[2 : 2 + size], "big"), 2 + size
        yield tag, rest[header : header + length]
        rest = rest[header + length :]


def _children(contents: bytes) -> list[tuple[int, bytes]]:
    return list(_objects(contents))


def _in_df(fid: int) -> bytes:
    return bytes.fromhex("5015") + fid.to_bytes(2, "big")


def test_ef_dir_names_the_pkcs15_application() -> None:
    card = Card("pk-regular")
    ef_dir = card.read_path(bytes.fromhex("2F00"))
    assert ef_dir[0] == 0x61
    assert PKCS15_AID in ef_dir
    assert bytes.fromhex("51043F005015") in ef_dir


def test_odf_points_at_files_that_exist() -> None:
    card = Card("pk-regular")
    odf = card.read_path(_in_df(Pkcs15Fid.ODF))
    entries = list(_objects(odf))
    assert [tag for tag, _ in entries] == [0xA0, 0xA4, 0xA7, 0xA8]  # keys, certs, data, auth
    for _, contents in entries:
        (sequence,) = _children(contents)
        assert sequence[0] == 0x30
        ((octets, path),) = _children(sequence[1])
        assert octets == 0x04
        assert path[:4] == bytes.fromhex("3F005015")
        assert card.select_path(path[2:])[1] == OK


def test_aodf_lists_pin_puk_spin_with_card_references() -> None:
    card = Card("pk-regular")
    aodf = card.read_path(_in_df(Pkcs15Fid.AODF))
    labels, references = [], []
    for tag, contents in _objects(aodf):
        assert tag == 0x30
        common, _, typed = _children(contents)
        labels.append(_children(common[1])[0][1].decode("utf-8"))
        ((_, attributes),) = _children(typed[1])
        reference = next(value for t, value in _children(attributes) if t == 0x80)
        references.append(int.from_bytes(reference, "big"))
    assert labels == ["PIN", "PUK", "SPIN"]
    assert references == [SecretRef.PIN, SecretRef.PUK, SecretRef.SPIN]


def test_nurse_aodf_has_no_spin_and_no_signature_key() -> None:
    card = Card("pk-nurse")
    aodf = card.read_path(_in_df(Pkcs15Fid.AODF))
    assert b"SPIN" not in aodf
    assert len(list(_objects(card.read_path(_in_df(Pkcs15Fid.PRKDF))))) == 1


def test_paths_reach_the_same_files_as_the_pk_application() -> None:
    card = Card("pk-regular")
    by_path = card.read_path(_in_df(Fid.AUTH_CERTIFICATE))
    assert card.send(bytes([0x00, 0xA4, 0x04, 0x0C, len(PK_AID)]) + PK_AID)[1] == OK
    assert card.send(bytes.fromhex("00A4020C02C101"))[1] == OK
    assert card.read() == by_path
    assert by_path[0] == 0x30


@pytest.mark.parametrize(
    ("p1", "path", "expected"),
    [
        (0x00, bytes.fromhex("3F00"), OK),  # the MF
        (0x00, bytes.fromhex("5015"), OK),  # the PK DF by FID
        (0x08, bytes.fromhex("50154401"), OK),
        (0x08, bytes.fromhex("5015"), OK),
        (0x08, bytes.fromhex("5015C1"), 0x6700),  # odd length
        (0x08, bytes.fromhex("50159999"), 0x6A82),
        (0x08, bytes.fromhex("44015015"), 0x6A82),  # an EF is no directory
        (0x01, bytes.fromhex("5015"), 0x6A86),
    ],
)
def test_select_forms(p1: int, path: bytes, expected: int) -> None:
    assert Card("pk-regular").select_path(path, p1)[1] == expected


def test_select_df_answers_fcp_with_the_aid() -> None:
    fcp, sw = Card("pk-regular").select_path(bytes.fromhex("5015"), 0x08, 0x00)
    assert sw == OK
    assert fcp[0] == 0x62
    assert bytes.fromhex("8201388302501584") + bytes([len(PK_AID)]) + PK_AID in fcp


def test_path_from_current_df() -> None:
    card = Card("pk-regular")
    assert card.select_path(bytes.fromhex("5015"))[1] == OK
    assert card.select_path(bytes.fromhex("5031"), p1=0x09)[1] == OK
    assert card.read()[0] == 0xA0


def test_pkcs15_aid_selects_the_pk_application_without_dropping_the_pin() -> None:
    card = Card("pk-regular")
    assert card.send(bytes([0x00, 0xA4, 0x04, 0x0C, len(PK_AID)]) + PK_AID)[1] == OK
    assert card.verify_pin() == OK
    aid = PKCS15_AID
    assert card.send(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid)[1] == OK
    assert card.select_path(_in_df(Pkcs15Fid.AODF))[1] == OK
    assert card.select_path(bytes.fromhex("3F00"), p1=0x00)[1] == OK
    assert card.card.is_verified(SecretRef.PIN)


def test_selecting_another_application_still_drops_the_pin() -> None:
    card = Card("pk-regular")
    assert card.select_path(bytes.fromhex("5015"))[1] == OK
    assert card.verify_pin() == OK
    assert card.send(bytes.fromhex("00A4040C09F0504B434152444B5A"))[1] == 0x6A82  # no KZZ app
    assert card.card.is_verified(SecretRef.PIN)
    card.card.power_off()
    assert not card.card.is_verified(SecretRef.PIN)


def test_kzz_has_no_pkcs15_structure() -> None:
    card = Card("kzz")
    assert card.select_path(bytes.fromhex("2F00"), p1=0x00)[1] == 0x6A82
    assert card.select_path(bytes.fromhex("5015"))[1] == 0x6A82
