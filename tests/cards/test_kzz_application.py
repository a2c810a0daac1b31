"""HealthInsuranceCard over simulated KZZ cards (InProcessConnection)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date

import pytest
from cardrig import KzzRig, make_card

from pkcard.cardinfo import Environment
from pkcard.certs import KeyAlgorithm, verify_card_signature
from pkcard.errors import FormatError, WrongCardKind
from pkcard.kzz import HealthInsuranceCard
from pkcard.kzz_driver import ZzzsNumber

Build = Callable[..., KzzRig]
CHALLENGE = hashlib.sha256(b"pkcard presence challenge").digest()


def test_read_kzz(kzz: Build) -> None:
    rig = kzz("kzz")
    data = rig.app.read_card()
    assert data.zzzs_number == ZzzsNumber("900000011")
    assert str(data.zzzs_number) == "900000011"
    assert data.name == "Janez Zavarovanec"
    assert data.birth_date == date(1969, 9, 14)
    assert data.card_serial == "KZ0000200001"
    assert data.valid_until == date(2030, 2, 28)
    assert data.environment is Environment.TEST
    assert data.certificate.key_algorithm is KeyAlgorithm.EC_P256
    assert rig.spy.transactions == 1


def test_read_kzz_prod(kzz: Build) -> None:
    data = kzz("kzz-prod").app.read_card()
    assert data.environment is Environment.PRODUCTION
    assert str(data.zzzs_number) == "800000022"


def test_authenticate_signature_verifies(kzz: Build) -> None:
    rig = kzz("kzz")
    cert = rig.app.read_card().certificate
    signature = rig.app.authenticate(CHALLENGE)
    assert verify_card_signature(cert, CHALLENGE, signature, cert.auth_scheme)
    other = hashlib.sha256(b"another challenge").digest()
    assert not verify_card_signature(cert, other, signature, cert.auth_scheme)


def test_authenticate_refuses_a_non_hash(kzz: Build) -> None:
    rig = kzz("kzz")
    with pytest.raises(FormatError):
        rig.app.authenticate(b"\x00" * 31)
    assert rig.spy.sent == []


def test_kzz_app_refuses_a_pk() -> None:
    _card, spy = make_card("pk-regular")
    with pytest.raises(WrongCardKind):
        HealthInsuranceCard.over(spy).read_card()
    with pytest.raises(WrongCardKind):
        HealthInsuranceCard.over(spy).card_info()


def test_card_info_alone_in_one_transaction(kzz: Build) -> None:
    rig = kzz("kzz")
    info = rig.app.card_info()
    assert info.serial == "KZ0000200001"
    assert info.environment is Environment.TEST
    assert rig.spy.transactions == 1


@pytest.mark.parametrize("value", ["", "12345678", "1234567890", "12345678a", "١٢٣٤٥٦٧٨٩"])
def test_zzzs_number_validation(value: str) -> None:
    with pytest.raises(FormatError):
        ZzzsNumber(value)
