"""The operations whose APDU transcripts live in fixtures/apdu/transcripts/.

Regenerate after a deliberate change to the card profile or the drivers::

    .venv/bin/python tests/cards/transcript_ops.py

Only deterministic operations are recorded (no signatures, no challenges), so
a fresh recording must equal the committed file byte for byte.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pkcard.errors import WrongPin
from pkcard.kzz import HealthInsuranceCard
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.secret import Secret
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import InProcessConnection
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.transcript import RecordingConnection, format_transcript
from pkcard.transport import SmartCardConnection

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "fixtures" / "apdu" / "transcripts"
PROFILE_VERSION = 1
WRONG_PIN = "47195283"
# Any well-formed PIN of the same length replays a redacted VERIFY: the body is not compared.
REPLAY_PIN = "60718293"


def read_pk(conn: SmartCardConnection, pin: str) -> object:
    return ProfessionalCard.over(conn).read_card()


def pin_statuses(conn: SmartCardConnection, pin: str) -> object:
    return ProfessionalCard.over(conn).pin_statuses()


def verify_pin(conn: SmartCardConnection, pin: str) -> object:
    return ProfessionalCard.over(conn).verify(PinRef.PIN, Secret(pin))


def verify_wrong_pin(conn: SmartCardConnection, pin: str) -> object:
    try:
        ProfessionalCard.over(conn).verify(PinRef.PIN, Secret(WRONG_PIN))
    except WrongPin as exc:
        return exc.tries_left
    raise AssertionError("the wrong PIN was accepted")


def read_kzz(conn: SmartCardConnection, pin: str) -> object:
    return HealthInsuranceCard.over(conn).read_card()


@dataclass(frozen=True)
class Recorded:
    name: str
    profile: str
    operation: Callable[[SmartCardConnection, str], object]

    @property
    def path(self) -> Path:
        return TRANSCRIPTS / f"{self.name}.apdu"


OPERATIONS = (
    Recorded("pk-read-card", "pk-regular", read_pk),
    Recorded("pk-pin-statuses", "pk-transport", pin_statuses),
    Recorded("pk-verify-pin", "pk-regular", verify_pin),
    Recorded("pk-verify-wrong-pin", "pk-regular", verify_wrong_pin),
    Recorded("kzz-read-card", "kzz", read_kzz),
)


def record(op: Recorded) -> tuple[str, object]:
    """The transcript text of ``op`` against a fresh simulated card, and its result."""
    card = SimulatedCard.from_profile(load_profile(op.profile))
    pin = card.profile.secret_value(SecretRef.PIN) if card.has_secret(SecretRef.PIN) else ""
    recorder = RecordingConnection(InProcessConnection(card), op.profile, PROFILE_VERSION)
    result = op.operation(recorder, pin)
    return format_transcript(recorder.transcript), result


def main() -> int:
    TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
    for op in OPERATIONS:
        text, _result = record(op)
        op.path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
