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
OPENSC_NO_SIGNING = (
    "OpenSC's default card driver registers no RSA or EC algorithm, so C_Sign fails"
    " (sc_pkcs15_compute_signature: card does not support the key) before any APDU"
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
    signs: bool = True  # can authenticate and sign
    closers: list[Callable[[], None]] = field(default_factory=list)

    def secret(self, ref: SecretRef) -> Secret:
        return Secret(self.profile.secret_value(ref))


@dataclass(frozen=True)
class SoftHsmGolden:
    directory: Path
    tokens: dict[str, SoftHsmPk]
