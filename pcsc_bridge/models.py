"""The reader model table: which reader is which, and what it can do.

A reader is identified by its PC/SC name first (that is all a plain
``SCardListReaders`` gives), then by its USB vendor:product id when the
name says nothing (the CCID driver reports the id through the PC/SC v2
part 10 TLV properties, see :mod:`pkcard.pcsc_bridge.features`). Unknown readers
are :attr:`ReaderModel.GENERIC`: they move APDUs and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from pkcard.readers import ReaderInfo, ReaderModel
from pkcard.transport import ReaderCapabilities

GEMALTO_VENDOR_ID = 0x08E6


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model table."""

    model: ReaderModel
    usb_id: tuple[int, int] | None
    name_markers: tuple[str, ...]  # normalized (lower case, no spaces) name fragments
    capabilities: ReaderCapabilities


MODEL_TABLE: tuple[ModelEntry, ...] = (
    # Order matters: the first entry whose marker occurs in the name wins.
    ModelEntry(
        ReaderModel.IDBRIDGE_CT710,
        (GEMALTO_VENDOR_ID, 0x34C2),
        ("ct710",),
        ReaderCapabilities(pin_pad=True, display=True),
    ),
    ModelEntry(
        ReaderModel.IDBRIDGE_CT700,
        (GEMALTO_VENDOR_ID, 0x3478),
        ("gempcpinpad", "ct700"),
        ReaderCapabilities(pin_pad=True, display=False),
    ),
    ModelEntry(
        ReaderModel.IDBRIDGE_CT30,
        (GEMALTO_VENDOR_ID, 0x3437),
        ("pctwinreader", "gempctwin", "ct30"),
        ReaderCapabilities(pin_pad=False, display=False),
    ),
    ModelEntry(
        ReaderModel.IDBRIDGE_GCR5500,
        None,  # not in the CCID driver's list: no known USB id; capabilities from its driver
        ("gcr5500",),
        ReaderCapabilities(pin_pad=None, display=None),
    ),
)

GENERIC_CAPABILITIES = ReaderCapabilities(pin_pad=False, display=False)


def _normalize(name: str) -> str:
    return "".join(name.lower().split())


def model_from_name(name: str) -> ModelEntry | None:
    """The table entry whose name marker occurs in the PC/SC reader name, if any."""
    normalized = _normalize(name)
    for entry in MODEL_TABLE:
        if any(marker in normalized for marker in entry.name_markers):
            return entry
    return None


def model_from_usb_id(usb_id: tuple[int, int]) -> ModelEntry | None:
    """The table entry for a USB (vendor, product) id, if any."""
    for entry in MODEL_TABLE:
        if entry.usb_id == usb_id:
            return entry
    return None


def has_unknowns(capabilities: ReaderCapabilities) -> bool:
    return capabilities.pin_pad is None or capabilities.display is None


def _fill(known: ReaderCapabilities, reported: ReaderCapabilities | None) -> ReaderCapabilities:
    """``known`` with its unknown (None) fields taken from the driver's report."""
    if reported is None:
        return known
    return ReaderCapabilities(
        pin_pad=known.pin_pad if known.pin_pad is not None else reported.pin_pad,
        display=known.display if known.display is not None else reported.display,
    )


def identify(
    name: str, usb_id: tuple[int, int] | None = None,
    reported: ReaderCapabilities | None = None,
) -> ReaderInfo:
    """Describe the reader ``name``: by name first, then by USB id, else GENERIC.

    ``reported`` (what the driver says, :class:`~pkcard.pcsc_bridge.features.DriverReport`)
    fills only the capabilities the table leaves unknown: the table wins where it knows.
    """
    entry = model_from_name(name)
    if entry is None and usb_id is not None:
        entry = model_from_usb_id(usb_id)
    if entry is None:
        return ReaderInfo(name, ReaderModel.GENERIC, GENERIC_CAPABILITIES, usb_id)
    return ReaderInfo(name, entry.model, _fill(entry.capabilities, reported),
                      usb_id or entry.usb_id)
