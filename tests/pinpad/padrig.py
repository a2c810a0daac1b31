"""A simulated reader system with one reader and one card, and the readers the tests name."""

from __future__ import annotations

from dataclasses import dataclass

from pkcard.pk import ProfessionalCard
from pkcard.readers import ReaderInfo, ReaderModel
from pkcard.simcard.card import SimulatedCard, load_card
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.simcard.pinpad import SimulatedPinPad
from pkcard.transport import ReaderCapabilities, SmartCardConnection

CT700 = PINPAD_READER
CT710 = ReaderInfo(
    name="Gemalto IDBridge CT710 (simulated)",
    model=ReaderModel.IDBRIDGE_CT710,
    capabilities=ReaderCapabilities(pin_pad=True, display=True),
    usb_id=(0x08E6, 0x34C2),
)
CT30 = TWIN_READER
GCR5500 = ReaderInfo(
    name="Gemalto IDBridge GCR5500 (simulated)",
    model=ReaderModel.IDBRIDGE_GCR5500,
    capabilities=ReaderCapabilities(pin_pad=None, display=None),
)
UNKNOWN = ReaderInfo(
    name="Some Reader 00 00",
    model=ReaderModel.GENERIC,
    capabilities=ReaderCapabilities(pin_pad=False, display=False),
)


@dataclass
class PadRig:
    system: SimulatedReaderSystem
    reader: ReaderInfo
    card: SimulatedCard
    connection: SmartCardConnection
    pk: ProfessionalCard

    @property
    def pad(self) -> SimulatedPinPad:
        pad = self.system.pin_pad(self.reader.name)
        assert pad is not None, f"{self.reader.name} has no simulated PIN pad"
        return pad

    def structures(self, code: int) -> list[bytes]:
        """Every request with control code ``code`` the reader received, in order."""
        return [r.data for r in self.pad.received if r.code == code]


def make_rig(reader: ReaderInfo = CT700, profile: str = "pk-regular") -> PadRig:
    system = SimulatedReaderSystem([reader])
    card = load_card(profile)
    system.insert(reader.name, card)
    connection = system.connect(reader.name)
    return PadRig(system, reader, card, connection, ProfessionalCard.over(connection))
