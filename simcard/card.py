"""A simulated PK or KZZ card built from a :class:`pkcard.simcard.profile.CardProfile`.

:class:`SimulatedCard` is the object the vpcd slot (simcard/vpcd.py) and the
in-process connection (simcard/inprocess.py) drive: ``atr``, ``execute``,
``power_off`` and ``reset``. It also offers read-only inspection for tests
(try counters, verified flags, secret states), never the secret values.

Each card owns its state; nothing is shared between cards. ``execute``,
``power_off`` and ``reset`` are serialised by a lock, so a card may be driven
from a server thread and inspected from a test thread.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pkcard.errors import ProfileError
from pkcard.simcard.isoapplet import ISOAPPLET_AID
from pkcard.simcard.os import Application, CardKey, CardOS, SecretSlot, tlv
from pkcard.simcard.pkcs15 import PK_DF, PKCS15_AID, Pkcs15Files, Pkcs15Key, pk_pkcs15_files
from pkcard.simcard.profile import CardProfile, KeySpec, load_profile
from pkcard.simcard.spec import (
    KZZ_AID,
    KZZ_HISTORICAL,
    PK_AID,
    PK_HISTORICAL,
    CardKind,
    CardRole,
    Fid,
    KeyAlgorithm,
    KeyUse,
    SecretRef,
    SecretState,
    Tag,
    make_atr,
)

if TYPE_CHECKING:
    from pkcard.simcard.os import CardPrivateKey

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


class SimulatedCard:
    """One simulated card. Build it with :meth:`from_profile`."""

    def __init__(self, profile: CardProfile, card_os: CardOS) -> None:
        self._profile = profile
        self._os = card_os
        self._lock = threading.Lock()
        historical = PK_HISTORICAL if profile.kind == CardKind.PK else KZZ_HISTORICAL
        self._atr = make_atr(historical)

    @classmethod
    def from_profile(cls, profile: CardProfile, *, keys_on_first_use: bool = False
                     ) -> SimulatedCard:
        """A fresh card in the profile's initial state (reads the key and certificate files).

        Raises ProfileError when the key material is missing or does not fit together.
        With ``keys_on_first_use`` the private keys are parsed and checked against their
        certificates when the card first signs with them: building and serving a card that
        is only read does not load ``cryptography`` (~9 MB; pkcardd --simulated, issue #14
        G6); a wrong built-in key then surfaces at its first signature.
        """
        files: dict[int, bytes] = {Fid.CARD_INFO: _card_info(profile)}
        if profile.kind == CardKind.PK:
            files[Fid.HOLDER] = _holder(profile)
        else:
            files[Fid.INSURED] = _insured(profile)
        keys = []
        for spec in profile.keys:
            certificate = _certificate_der(spec)
            auth = spec.use == KeyUse.AUTHENTICATION
            fid = Fid.AUTH_CERTIFICATE if auth else Fid.SIGN_CERTIFICATE
            files[fid] = certificate
            key = CardKey(spec.ref, spec.use, partial(_load_private_key, spec),
                          _guard(profile, spec))
            if not keys_on_first_use:
                _checked = key.private_key  # parsed and checked now
            keys.append(key)
        aid = PK_AID if profile.kind == CardKind.PK else KZZ_AID
        application = Application(aid, files)
        master_files: dict[int, bytes] = {}
        if profile.kind == CardKind.PK:
            pkcs15 = _pkcs15(profile, files)
            master_files.update(pkcs15.master_files)
            application = Application(
                aid, {**files, **pkcs15.application_files}, fid=PK_DF,
                aliases=(PKCS15_AID, ISOAPPLET_AID),
            )
        slots = [
            SecretSlot(
                s.ref,
                s.state,
                s.tries_left,
                s.value.encode("ascii") if s.value is not None else None,
            )
            for s in profile.secrets
        ]
        card_os = CardOS(
            [application],
            slots,
            keys,
            force_get_response=profile.force_get_response,
            force_exact_le=profile.force_exact_le,
            master_files=master_files,
        )
        card_os.set_serial(profile.card_info.serial.encode("ascii"))
        return cls(profile, card_os)

    def __repr__(self) -> str:
        return f"<SimulatedCard {self._profile.name} {self._profile.card_info.serial}>"

    # --- what a reader drives -------------------------------------------------

    @property
    def atr(self) -> bytes:
        return self._atr

    def execute(self, apdu: bytes) -> bytes:
        """One raw command APDU in, the raw response (data + SW1 SW2) out. Never raises."""
        with self._lock:
            return self._os.execute(apdu)

    def power_off(self) -> None:
        """Card pulled or unpowered: drop selection, verified states and buffers."""
        with self._lock:
            self._os.power_off()

    def reset(self) -> None:
        """Warm reset: same effect as :meth:`power_off`."""
        with self._lock:
            self._os.reset()

    # --- inspection (tests) -----------------------------------------------------

    @property
    def profile(self) -> CardProfile:
        return self._profile

    def tries_left(self, ref: SecretRef) -> int:
        """Tries left on ``ref``. KeyError when the card has no such secret."""
        with self._lock:
            return self._os.tries_left(ref)

    def is_verified(self, ref: SecretRef) -> bool:
        with self._lock:
            return self._os.is_verified(ref)

    def secret_state(self, ref: SecretRef) -> SecretState:
        with self._lock:
            return self._os.secret_state(ref)

    def has_secret(self, ref: SecretRef) -> bool:
        return self._os.has_secret(ref)

    @property
    def is_dead(self) -> bool:
        """Whether the PUK is exhausted: the PIN is blocked for good."""
        with self._lock:
            return self._os.is_dead


def _pkcs15(profile: CardProfile, files: dict[int, bytes]) -> Pkcs15Files:
    """The PKCS#15 structure describing this PK's files, secrets and keys."""
    keys = [
        Pkcs15Key(
            spec.ref,
            spec.use,
            spec.algorithm,
            Fid.AUTH_CERTIFICATE if spec.use == KeyUse.AUTHENTICATION else Fid.SIGN_CERTIFICATE,
        )
        for spec in profile.keys
    ]
    data = {"EF.CardInfo": int(Fid.CARD_INFO), "EF.Holder": int(Fid.HOLDER)}
    secrets = [s.ref for s in profile.secrets]
    return pk_pkcs15_files(profile.card_info.serial, secrets, keys, data)


def _guard(profile: CardProfile, spec: KeySpec) -> SecretRef | None:
    if profile.kind == CardKind.KZZ:
        return None
    return SecretRef.PIN if spec.use == KeyUse.AUTHENTICATION else SecretRef.SPIN


def _certificate_der(spec: KeySpec) -> bytes:
    """The DER certificate the card serves for ``spec``, from its PEM file, without cryptography.

    Raises ProfileError when the certificate or the key file is missing or malformed.
    """
    try:
        pem = spec.certificate_path.read_bytes()
        if not spec.key_path.is_file():
            raise OSError(f"no such file: {spec.key_path}")
    except OSError as exc:
        raise ProfileError(
            f"key material {spec.key_path.name} / {spec.certificate_path.name}: {exc}"
            " (run fixtures/pki/make_pki.py)"
        ) from exc
    return _pem_certificate(pem, spec.certificate_path.name)


def _pem_certificate(pem: bytes, name: str) -> bytes:
    """The DER of the one certificate in ``pem``; ProfileError when there is none."""
    found = _PEM_CERTIFICATE.search(pem)
    try:
        if found is None:
            raise ValueError("no PEM certificate")
        return base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ProfileError(f"{name}: {exc}") from exc


def _load_private_key(spec: KeySpec) -> CardPrivateKey:
    """The private key of ``spec``; checks it is the certificate's key."""
    from cryptography import x509  # noqa: PLC0415 - with the first signature (CardKey)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    try:
        # The keys are our own committed test fixtures and are checked against their
        # certificate below; skipping RSA's slow consistency check keeps card builds cheap.
        key = serialization.load_pem_private_key(
            spec.key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )
        pem = spec.certificate_path.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise ProfileError(
            f"key material {spec.key_path.name} / {spec.certificate_path.name}: {exc}"
            " (run fixtures/pki/make_pki.py)"
        ) from exc
    expected: type[CardPrivateKey] = (
        ec.EllipticCurvePrivateKey if spec.algorithm == KeyAlgorithm.EC_P256 else rsa.RSAPrivateKey
    )
    if not isinstance(key, expected):
        raise ProfileError(f"{spec.key_path.name} is not a {spec.algorithm.name} key")
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ProfileError(f"{spec.key_path.name} is not on P-256")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size != 2048:
        raise ProfileError(f"{spec.key_path.name} is not RSA-2048")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
        encoding, public
    ):
        raise ProfileError(f"{spec.certificate_path.name} does not certify {spec.key_path.name}")
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    if cert.public_bytes(serialization.Encoding.DER) != _pem_certificate(
            pem, spec.certificate_path.name):
        raise ProfileError(f"{spec.certificate_path.name}: not one certificate")
    return key


def _yyyymmdd(d: date) -> bytes:
    return d.strftime("%Y%m%d").encode("ascii")


def _card_info(profile: CardProfile) -> bytes:
    info = profile.card_info
    role = info.role if profile.kind == CardKind.PK else CardRole.REGULAR
    body = (
        tlv(Tag.SERIAL, info.serial.encode("ascii"))
        + tlv(Tag.VALID_FROM, _yyyymmdd(info.valid_from))
        + tlv(Tag.VALID_UNTIL, _yyyymmdd(info.valid_until))
        + tlv(Tag.ROLE, bytes([role]))
        + tlv(Tag.ENVIRONMENT, bytes([info.environment]))
        + tlv(Tag.ISSUER, info.issuer.encode("utf-8"))
        + tlv(Tag.CARD_KIND, bytes([profile.kind]))
    )
    return tlv(Tag.CARD_INFO, body)


def _holder(profile: CardProfile) -> bytes:
    holder = profile.holder
    if holder is None:
        raise ProfileError(f"profile {profile.name}: a PK needs a holder")
    body = (
        tlv(Tag.NAME, holder.name.encode("utf-8"))
        + tlv(Tag.HOLDER_ID, holder.holder_id.encode("ascii"))
        + tlv(Tag.PROFESSION, bytes([holder.profession]))
        + tlv(Tag.BIRTH_DATE, _yyyymmdd(holder.birth_date))
    )
    return tlv(Tag.HOLDER, body)


def _insured(profile: CardProfile) -> bytes:
    insured = profile.insured
    if insured is None:
        raise ProfileError(f"profile {profile.name}: a KZZ needs an insured person")
    body = (
        tlv(Tag.ZZZS_NUMBER, insured.zzzs_number.encode("ascii"))
        + tlv(Tag.NAME, insured.name.encode("utf-8"))
        + tlv(Tag.BIRTH_DATE, _yyyymmdd(insured.birth_date))
    )
    return tlv(Tag.INSURED, body)


def load_card(name_or_path: str | Path) -> SimulatedCard:
    """Shorthand: ``SimulatedCard.from_profile(load_profile(name_or_path))``."""
    return SimulatedCard.from_profile(load_profile(name_or_path))
