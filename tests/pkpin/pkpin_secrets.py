"""The test secrets pkpin's tests type, taken from the simulated card profiles."""

from __future__ import annotations

from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef


def secret_of(profile: str, ref: SecretRef) -> str:
    return load_profile(profile).secret_value(ref)


PIN = secret_of("pk-regular", SecretRef.PIN)
PUK = secret_of("pk-regular", SecretRef.PUK)
SPIN = secret_of("pk-regular", SecretRef.SPIN)
TPIN = secret_of("pk-transport", SecretRef.TPIN)
NEW_PIN = "47158293"  # passes the policy for every test holder
NEW_SPIN = "5817293"
