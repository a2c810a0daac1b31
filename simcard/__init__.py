"""simcard: simulated PK and KZZ cards that execute the pkcard card profile.

``load_profile`` reads a profile from fixtures/apdu/profiles, ``SimulatedCard``
executes it, ``InProcessConnection`` and ``SimulatedReaderSystem`` reach it
without pcscd; ``simcard.vpcd`` serves it to a real pcscd through vpcd.
"""

from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.inprocess import InProcessConnection, SimulatedReaderSystem
from pkcard.simcard.profile import CardProfile, load_profile, profile_names

__all__ = [
    "CardProfile",
    "InProcessConnection",
    "SimulatedCard",
    "SimulatedReaderSystem",
    "load_card",
    "load_profile",
    "profile_names",
]
