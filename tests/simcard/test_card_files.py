"""SELECT, READ BINARY and GET DATA on the simulated cards, as raw APDUs."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from simcard_terminal import MakeTerminal

from pkcard.readers import CardKind, card_kind_from_atr
from pkcard.simcard.profile import profile_names
from pkcard.tlv import Tlv, find, parse_dict, parse_list, validate_tree

PK_AID = "F0504B43415244504B"
KZZ_AID = "F0504B434152444B5A"


def test_atr_names_the_card_kind_and_has_a_valid_tck(terminal: MakeTerminal) -> None:
    pk = terminal("pk-regular").card.atr
    kzz = terminal("kzz").card.atr
    assert pk == bytes.fromhex("3B888001") + b"PKCARDPK" + bytes([0x1D])
    assert kzz[:4] == bytes.fromhex("3B888001")
    assert kzz[4:12] == b"PKCARDKZ"
    for atr in (pk, kzz):
        tck = 0
        for b in atr[1:]:
            tck ^= b
        assert tck == 0
    assert card_kind_from_atr(pk) == CardKind.PK
    assert card_kind_from_atr(kzz) == CardKind.KZZ


def test_select_application_with_and_without_fci(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    data, sw = t.send(f"00A4040009{PK_AID}00")
    assert sw == 0x9000
    assert find(data, 0x6F, 0x84) == bytes.fromhex(PK_AID)
    assert t.send(f"00A4040C09{PK_AID}") == (b"", 0x9000)
    assert t.sw(f"00A4040C09{KZZ_AID}") == 0x6A82
    assert t.sw(f"00A4040809{PK_AID}") == 0x6A86
    assert t.sw("00A4040C00") == 0x6700


def test_select_file_needs_an_application_and_answers_fcp(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    assert t.sw("00A4020C02C001") == 0x6A82  # nothing selected yet
    t.select_app()
    data, sw = t.send("00A4020402C00100")
    assert sw == 0x9000
    fcp = parse_dict(Tlv.unpack(0x62, data))
    assert fcp[0x83] == bytes.fromhex("C001")
    assert fcp[0x82] == b"\x01"
    size = int.from_bytes(fcp[0x80], "big")
    assert len(t.read_file(0xC001)) == size
    assert t.sw("00A4020C02D001") == 0x6A82  # EF.Insured is KZZ only
    assert t.sw("00A4020C03C00100") == 0x6700
    assert t.sw("00A4021002C001") == 0x6A86


def test_read_binary_edges(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.select_app()
    assert t.sw("00B0000010") == 0x6986  # no current EF
    content = t.read_file(0xC001)
    n = len(content)
    data, sw = t.send(bytes([0, 0xB0, 0, 2, 4]))
    assert (data, sw) == (content[2:6], 0x9000)
    data, sw = t.send(bytes([0, 0xB0, 0, n - 3, 0x10]))
    assert (data, sw) == (content[-3:], 0x6282)
    assert t.sw(bytes([0, 0xB0, n >> 8, n & 0xFF, 1])) == 0x6B00
    assert t.sw("00B0800001") == 0x6A86
    assert t.sw("00B00000") == 0x6700  # no Le


def test_pk_card_info_and_holder(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.select_app()
    info = parse_dict(Tlv.unpack(0x7F60, t.read_file(0xC001)))
    assert info[0x5A] == b"PK0000100001"
    assert info[0xDF01] == b"20250301"
    assert info[0xDF02] == b"20300228"
    assert info[0xDF03] == b"\x01"
    assert info[0xDF04] == b"\x01"
    assert info[0xDF06] == b"\x01"
    assert info[0xDF05].decode() == "pkcard TEST PK CA"
    holder = parse_dict(Tlv.unpack(0x7F61, t.read_file(0xC002)))
    assert holder[0x5F20].decode() == "Ana Testna"
    assert holder[0xDF10] == b"90001"
    assert holder[0xDF11] == b"\x01"
    assert holder[0xDF12] == b"19810312"


def test_backup_and_production_cards_say_so(terminal: MakeTerminal) -> None:
    backup = terminal("pk-backup")
    backup.select_app()
    info = parse_dict(Tlv.unpack(0x7F60, backup.read_file(0xC001)))
    assert info[0xDF03] == b"\x02"
    holder = parse_dict(Tlv.unpack(0x7F61, backup.read_file(0xC002)))
    assert holder[0xDF10] == b"90001"  # same holder as pk-regular
    prod = terminal("pk-regular-prod")
    prod.select_app()
    assert parse_dict(Tlv.unpack(0x7F60, prod.read_file(0xC001)))[0xDF04] == b"\x02"


def test_kzz_files(terminal: MakeTerminal) -> None:
    t = terminal("kzz")
    t.select_app()
    info = parse_dict(Tlv.unpack(0x7F60, t.read_file(0xC001)))
    assert info[0xDF06] == b"\x02"
    assert info[0xDF03] == b"\x01"
    insured = parse_dict(Tlv.unpack(0x7F62, t.read_file(0xD001)))
    assert insured[0xDF20] == b"900000011"
    assert len(insured[0xDF20]) == 9
    assert insured[0xDF20].isdigit()
    assert insured[0xDF12] == b"19690914"
    assert t.sw("00A4020C02C002") == 0x6A82
    assert t.sw("00A4020C02C102") == 0x6A82


def test_certificates_are_der_and_name_the_holder(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    t.select_app()
    auth = x509.load_der_x509_certificate(t.read_file(0xC101))
    sign = x509.load_der_x509_certificate(t.read_file(0xC102))
    for cert in (auth, sign):
        serial = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
        assert serial == "90001"
        assert cert.not_valid_before_utc.date() <= date(2026, 11, 25)
        assert cert.not_valid_after_utc.date() >= date(2026, 11, 25)
    assert auth.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert sign.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment


def test_nurse_has_no_signing_certificate(terminal: MakeTerminal) -> None:
    t = terminal("pk-nurse")
    t.select_app()
    assert t.sw("00A4020C02C102") == 0x6A82
    assert len(t.read_file(0xC101)) > 100


def test_get_data_serial_and_pin_table(terminal: MakeTerminal) -> None:
    t = terminal("pk-regular")
    data, sw = t.send("00CA005A00")
    assert sw == 0x9000
    assert Tlv.unpack(0x5A, data) == b"PK0000100001"
    data, sw = t.send("00CADF3000")
    assert sw == 0x9000
    table = {}
    for template in parse_list(data):
        assert template.tag == 0xA0
        fields = parse_dict(template.value)
        table[fields[0x83][0]] = (fields[0x90][0], fields[0x92][0], fields[0x93][0])
    assert table == {
        0x81: (3, 4, 8),
        0x82: (5, 8, 8),
        0x83: (3, 6, 8),
        0x84: (3, 6, 6),
        0x85: (5, 8, 16),
    }
    nurse, sw = terminal("pk-nurse").send("00CADF3000")
    assert sw == 0x9000
    assert {t.value[2] for t in parse_list(nurse)} == {0x81, 0x82, 0x85}
    assert terminal("kzz").sw("00CADF3000") == 0x6A88
    assert t.sw("00CA010100") == 0x6A88


@pytest.mark.parametrize("name", profile_names())
def test_every_template_file_is_strict_ber_tlv(terminal: MakeTerminal, name: str) -> None:
    t = terminal(name)
    t.select_app()
    templates = {0xC001: 0x7F60, 0xC002: 0x7F61, 0xD001: 0x7F62}
    seen = 0
    for fid, tag in templates.items():
        if t.sw(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")) != 0x9000:
            continue
        content = t.read_file(fid)
        (template,) = validate_tree(content)
        assert template.tag == tag
        assert len({child.tag for child in template.children}) == len(template.children)
        seen += 1
    assert seen == 2  # EF.CardInfo and EF.Holder or EF.Insured
