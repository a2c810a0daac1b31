"""Card profiles: what one simulated card holds, read from a TOML data file.

Profiles live in ``fixtures/apdu/profiles/<name>.toml`` (see
fixtures/apdu/README.md). A profile names its key and certificate files
relative to itself (they live in ``fixtures/pki/``); it does not read them:
:class:`pkcard.simcard.card.SimulatedCard` loads the key material when a card is
built from the profile.

The test secrets are part of the profile so tests can present them. They are
excluded from ``repr`` and only reachable through :meth:`CardProfile.secret_value`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from pkcard.errors import ProfileError
from pkcard.simcard.spec import (
    CardKind,
    CardRole,
    Environment,
    KeyAlgorithm,
    KeyUse,
    Profession,
    SecretRef,
    SecretState,
    secret_format,
)

_E = TypeVar("_E", bound=IntEnum)

# The package data: in the repository, links into fixtures/ (the files make_pki.py writes);
# in a wheel, copies of the profiles, the cards' keys and certificates and the CA
# certificates (never the CA keys). Same layout, so a profile's relative paths hold in both.
DATA_DIR = Path(__file__).resolve().parent / "data"
PROFILES_DIR = DATA_DIR / "apdu" / "profiles"
PKI_DIR = DATA_DIR / "pki"
TEST_CA_DIR = PKI_DIR / "ca"


@dataclass(frozen=True)
class CardInfo:
    """The content of EF.CardInfo."""

    serial: str
    valid_from: date
    valid_until: date
    role: CardRole
    environment: Environment
    issuer: str


@dataclass(frozen=True)
class Holder:
    """The content of EF.Holder (PK)."""

    name: str
    holder_id: str
    profession: Profession
    birth_date: date


@dataclass(frozen=True)
class Insured:
    """The content of EF.Insured (KZZ)."""

    zzzs_number: str
    name: str
    birth_date: date


@dataclass(frozen=True)
class SecretSpec:
    """The initial state of one secret. ``value`` is None for a SPIN in transport state."""

    ref: SecretRef
    state: SecretState
    tries_left: int
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KeySpec:
    """One private key on the card and the certificate that goes with it."""

    ref: int
    use: KeyUse
    algorithm: KeyAlgorithm
    key_path: Path
    certificate_path: Path


@dataclass(frozen=True)
class CardProfile:
    """Everything a :class:`pkcard.simcard.card.SimulatedCard` is built from."""

    name: str
    kind: CardKind
    card_info: CardInfo
    holder: Holder | None
    insured: Insured | None
    secrets: tuple[SecretSpec, ...]
    keys: tuple[KeySpec, ...]
    force_get_response: bool = False
    force_exact_le: bool = False
    source: Path | None = None

    def secret(self, ref: SecretRef) -> SecretSpec:
        """The spec of ``ref``; ProfileError when the card has no such secret."""
        for spec in self.secrets:
            if spec.ref == ref:
                return spec
        raise ProfileError(f"profile {self.name} has no secret {ref.name}")

    def secret_value(self, ref: SecretRef) -> str:
        """The test value of ``ref`` (for tests and demos only; never log it)."""
        value = self.secret(ref).value
        if value is None:
            raise ProfileError(f"profile {self.name}: secret {ref.name} has no value")
        return value

    def key(self, use: KeyUse) -> KeySpec:
        """The key of that use; ProfileError when the card has none."""
        for spec in self.keys:
            if spec.use == use:
                return spec
        raise ProfileError(f"profile {self.name} has no {use.name.lower()} key")

    def has_key(self, use: KeyUse) -> bool:
        return any(spec.use == use for spec in self.keys)


def profile_names() -> list[str]:
    """The names of the profiles shipped with pkcard (fixtures/apdu/profiles/ in the repository)."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> CardProfile:
    """Load a profile by name (``"pk-regular"``) or by the path of a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ProfileError(f"no card profile at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"card profile {path} is not valid TOML: {exc}") from exc
    try:
        return _build(raw, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"card profile {path}: bad or missing field ({exc})") from exc


def _enum_by_name(enum: type[_E], text: object) -> _E:
    if not isinstance(text, str):
        raise TypeError(f"{enum.__name__} must be a string")
    return enum[text.upper().replace("-", "_")]


def _date(value: object) -> date:
    if not isinstance(value, date):
        raise TypeError("dates must be TOML dates (YYYY-MM-DD)")
    return value


def _build(raw: dict[str, Any], path: Path) -> CardProfile:
    kind = _enum_by_name(CardKind, raw["kind"])
    card = raw["card"]
    card_info = CardInfo(
        serial=str(card["serial"]),
        valid_from=_date(card["valid_from"]),
        valid_until=_date(card["valid_until"]),
        role=_enum_by_name(CardRole, card.get("role", "regular")),
        environment=_enum_by_name(Environment, card["environment"]),
        issuer=str(card["issuer"]),
    )
    holder = None
    insured = None
    if kind == CardKind.PK:
        h = raw["holder"]
        holder = Holder(
            name=str(h["name"]),
            holder_id=str(h["id"]),
            profession=_enum_by_name(Profession, h["profession"]),
            birth_date=_date(h["birth_date"]),
        )
    else:
        i = raw["insured"]
        insured = Insured(
            zzzs_number=str(i["zzzs_number"]),
            name=str(i["name"]),
            birth_date=_date(i["birth_date"]),
        )
    secrets = tuple(_secret(s) for s in raw.get("secrets", []))
    keys = tuple(_key(k, path.parent) for k in raw.get("keys", []))
    protocol = raw.get("protocol", {})
    profile = CardProfile(
        name=str(raw.get("name", path.stem)),
        kind=kind,
        card_info=card_info,
        holder=holder,
        insured=insured,
        secrets=secrets,
        keys=keys,
        force_get_response=bool(protocol.get("force_get_response", False)),
        force_exact_le=bool(protocol.get("force_exact_le", False)),
        source=path,
    )
    _check(profile)
    return profile


def _secret(raw: dict[str, Any]) -> SecretSpec:
    ref = _enum_by_name(SecretRef, raw["ref"])
    state = _enum_by_name(SecretState, raw.get("state", "active"))
    fmt = secret_format(ref)
    tries = int(raw.get("tries_left", fmt.max_tries))
    value = raw.get("value")
    if value is not None and not isinstance(value, str):
        raise TypeError(f"secret {ref.name}: value must be a string")
    return SecretSpec(ref=ref, state=state, tries_left=tries, value=value)


def _key(raw: dict[str, Any], base: Path) -> KeySpec:
    return KeySpec(
        ref=int(raw["ref"]),
        use=_enum_by_name(KeyUse, raw["use"]),
        algorithm=_enum_by_name(KeyAlgorithm, raw["algorithm"]),
        key_path=(base / str(raw["key"])).resolve(),
        certificate_path=(base / str(raw["certificate"])).resolve(),
    )


def _check(profile: CardProfile) -> None:
    """Refuse profiles that contradict docs/card-profile.md. Messages never quote values."""
    name = profile.name
    refs = [s.ref for s in profile.secrets]
    if len(set(refs)) != len(refs):
        raise ProfileError(f"profile {name}: a secret is listed twice")
    if profile.kind == CardKind.KZZ and profile.secrets:
        raise ProfileError(f"profile {name}: a KZZ carries no secrets")
    for spec in profile.secrets:
        fmt = secret_format(spec.ref)
        if not 0 <= spec.tries_left <= fmt.max_tries:
            raise ProfileError(f"profile {name}: {spec.ref.name} tries out of range")
        if spec.state == SecretState.TRANSPORT and spec.ref != SecretRef.SPIN:
            raise ProfileError(f"profile {name}: only the SPIN has a transport state")
        if spec.state != SecretState.TRANSPORT:
            if spec.value is None:
                raise ProfileError(f"profile {name}: {spec.ref.name} needs a value")
            if not fmt.accepts(spec.value.encode("ascii", errors="replace")):
                raise ProfileError(f"profile {name}: {spec.ref.name} breaks its format")
    if SecretRef.SPIN in refs and SecretRef.TPIN not in refs:
        raise ProfileError(f"profile {name}: a SPIN needs its TPIN")
    uses = [k.use for k in profile.keys]
    if len(set(uses)) != len(uses) or len({k.ref for k in profile.keys}) != len(uses):
        raise ProfileError(f"profile {name}: duplicate key use or reference")
    if KeyUse.SIGNATURE in uses:
        if profile.kind != CardKind.PK or SecretRef.SPIN not in refs:
            raise ProfileError(f"profile {name}: a signature key needs a PK with a SPIN")
        if profile.key(KeyUse.SIGNATURE).algorithm != KeyAlgorithm.RSA_2048:
            raise ProfileError(f"profile {name}: the KPEP key is RSA-2048")
    if KeyUse.AUTHENTICATION not in uses:
        raise ProfileError(f"profile {name}: every card has an authentication key")
