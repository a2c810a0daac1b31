"""The shipped profiles and their test PKI."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkcard.errors import ProfileError
from pkcard.pin import PIN_FORMATS, PinRef, check_new_pin
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.profile import CardProfile, load_profile, profile_names
from pkcard.simcard.spec import CardKind, CardRole, Environment, KeyUse, SecretRef, SecretState

REQUIRED = {
    "pk-regular",
    "pk-backup",
    "pk-blocked",
    "pk-transport",
    "pk-nurse",
    "kzz",
    "pk-regular-prod",
    "kzz-prod",
}
PKI = Path(__file__).resolve().parents[2] / "fixtures" / "pki"
TODAY = datetime(2026, 11, 25, tzinfo=UTC)


def ca_certificate(profile: CardProfile) -> x509.Certificate:
    kind = "pk" if profile.kind == CardKind.PK else "kzz"
    env = "test" if profile.card_info.environment == Environment.TEST else "prod"
    return x509.load_pem_x509_certificate(
        (PKI / "ca" / f"{env}-{kind}" / "ca-cert.pem").read_bytes()
    )


def _is_date(day: str, month: str, year: str) -> bool:
    try:
        date(int(year) if len(year) == 4 else 2000 + int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def is_weak(pin: str) -> bool:
    """A conservative PIN-policy check: runs, repeats, and dates in any 4/6/8-digit prefix.

    Dates: DDMM (any year, leap day included), DDMMYY, DDMMYYYY and YYYYMMDD.
    """
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {-1}, {0}):
        return True
    p = pin
    return (
        (len(p) >= 4 and _is_date(p[0:2], p[2:4], "2000"))
        or (len(p) >= 6 and _is_date(p[0:2], p[2:4], p[4:6]))
        or (len(p) >= 8 and _is_date(p[0:2], p[2:4], p[4:8]))
        or (len(p) >= 8 and _is_date(p[6:8], p[4:6], p[0:4]))
    )


def test_required_profiles_exist() -> None:
    assert set(profile_names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profile_builds_a_card_with_valid_certificates(name: str) -> None:
    profile = load_profile(name)
    card = SimulatedCard.from_profile(profile)
    assert card.atr
    ca = ca_certificate(profile)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        profile.card_info.issuer
    )
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 20 * 365
    for spec in profile.keys:
        cert = x509.load_pem_x509_certificate(spec.certificate_path.read_bytes())
        assert cert.issuer == ca.subject
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        assert cert.signature_hash_algorithm is not None
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
        assert cert.not_valid_before_utc <= TODAY <= cert.not_valid_after_utc
        assert cert.not_valid_after_utc.date() == profile.card_info.valid_until
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        subject_serial = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
        if profile.holder is not None:
            assert subject_serial == profile.holder.holder_id
        else:
            assert profile.insured is not None
            assert subject_serial == profile.insured.zzzs_number
        if spec.use == KeyUse.AUTHENTICATION:
            assert usage.digital_signature
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        else:
            assert usage.content_commitment
            assert not usage.digital_signature


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_test_secrets_pass_the_pin_policy(name: str) -> None:
    profile = load_profile(name)
    for spec in profile.secrets:
        if spec.value is not None and spec.ref != SecretRef.REACTIVATION:
            assert not is_weak(spec.value), spec.ref.name
            assert profile.holder is not None
            birth = profile.holder.birth_date
            assert birth.strftime("%d%m") not in spec.value


def test_the_policy_helper_itself_refuses_weak_pins() -> None:
    for weak in ("1234", "987654", "1111", "1203", "120381", "31122000", "20001231"):
        assert is_weak(weak), weak
    assert not is_weak("58392671")


def test_profile_facts() -> None:
    regular, backup = load_profile("pk-regular"), load_profile("pk-backup")
    assert regular.holder == backup.holder
    assert backup.card_info.role == CardRole.BACKUP
    assert backup.key(KeyUse.AUTHENTICATION).algorithm.name == "RSA_2048"
    assert regular.key(KeyUse.AUTHENTICATION).algorithm.name == "EC_P256"
    assert load_profile("pk-blocked").secret(SecretRef.PIN).tries_left == 0
    transport = load_profile("pk-transport")
    assert transport.secret(SecretRef.SPIN).state == SecretState.TRANSPORT
    assert transport.secret(SecretRef.TPIN).state == SecretState.ACTIVE
    assert not load_profile("pk-nurse").has_key(KeyUse.SIGNATURE)
    for name in ("pk-regular-prod", "kzz-prod"):
        assert load_profile(name).card_info.environment == Environment.PRODUCTION
    assert load_profile("kzz").secrets == ()
    assert regular.card_info.valid_from == date(2025, 3, 1)


def test_missing_and_malformed_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProfileError):
        load_profile("no-such-card")
    bad = tmp_path / "bad.toml"
    bad.write_text("kind = [")
    with pytest.raises(ProfileError):
        load_profile(bad)
    source = load_profile("pk-regular").source
    assert source is not None
    text = source.read_text()
    weak = tmp_path / "weak.toml"
    weak.write_text(text.replace('value = "58392671"', 'value = "12"'))
    with pytest.raises(ProfileError) as err:
        load_profile(weak)
    assert "12" not in str(err.value).replace(str(tmp_path), "")
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text(text.replace("[holder]", "[someone]"))
    with pytest.raises(ProfileError):
        load_profile(incomplete)


def test_a_certificate_for_another_key_is_refused() -> None:
    regular = load_profile("pk-regular")
    other = load_profile("pk-blocked").key(KeyUse.AUTHENTICATION)
    auth = regular.key(KeyUse.AUTHENTICATION)
    mixed = dataclasses.replace(
        regular,
        keys=(dataclasses.replace(auth, certificate_path=other.certificate_path),),
        secrets=tuple(s for s in regular.secrets if s.ref in (SecretRef.PIN, SecretRef.PUK)),
    )
    with pytest.raises(ProfileError):
        SimulatedCard.from_profile(mixed)


@pytest.mark.parametrize("name", profile_names())
def test_test_secrets_pass_the_hosts_pin_policy(name: str) -> None:
    profile = load_profile(name)
    birth = profile.holder.birth_date if profile.holder is not None else None
    for spec in profile.secrets:
        if spec.value is not None:
            fmt = PIN_FORMATS[PinRef(spec.ref)]
            check_new_pin(Secret(spec.value), fmt, birth_date=birth)  # raises WeakPin
