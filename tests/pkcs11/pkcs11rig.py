"""Shared types of the PKCS#11 tests: a PK behind one backend, the SoftHSM2 token set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.profile import CardProfile
from pkcard.simcard.softhsm import SoftHsmPk
from pkcard.simcard.spec import SecretRef

NO_TRANSPORT_STATE = "SoftHSM2 cannot flag a user PIN to be changed: no transport state"
SOFTHSM_NEVER_LOCKS = (
    "SoftHSM 2.6 never locks a PIN: the right PIN still works after any number of wrong ones"
)
OPENSC_NO_AUTHENTICATION = (
    "OpenSC 0.23's isoApplet driver offers ECDSA-SHA1 and RSA PKCS#1 v1.5 only; the"
    " authentication key signs ES256 (CKM_ECDSA over SHA-256) or PS256 (RSA-PSS)"
)


@dataclass
class Backend:
    """One PK behind one backend, and what that backend can model."""

    name: str
    app: ProfessionalCard
    profile: CardProfile
    enforces_tries: bool = True  # a wrong secret counts down to a lock
    has_password: bool = True  # the reactivation password (reference 85)
    exact_counter: bool = True  # tries left exactly (PKCS#11: only flags, an upper bound)
    counts_low: bool = True  # a wrong try shows at once (COUNT_LOW); else only final try/locked
    authenticates: bool = True  # the authentication key signs ES256 / PS256
    signs: bool = True  # the KPEP key signs (RSA PKCS#1 v1.5)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def secret(self, ref: SecretRef) -> Secret:
        return Secret(self.profile.secret_value(ref))


@dataclass(frozen=True)
class SoftHsmGolden:
    directory: Path
    tokens: dict[str, SoftHsmPk]
