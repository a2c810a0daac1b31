"""PC/SC v2 part 10 reader features: what a reader tells about itself.

``CM_IOCTL_GET_FEATURE_REQUEST`` lists the features a reader driver offers
as TLVs (tag, length 4, big-endian control code). The CCID driver offers
``FEATURE_GET_TLV_PROPERTIES``, whose answer carries the USB vendor and
product ids (little-endian values). vpcd offers nothing (SCardControl
answers ``SCARD_E_UNSUPPORTED_FEATURE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from smartcard import scard

from pkcard.pcsc_bridge.errors import PcscStatus
from pkcard.pinpad import quirks_for
from pkcard.transport import ReaderCapabilities

CM_IOCTL_GET_FEATURE_REQUEST = int(scard.SCARD_CTL_CODE(3400))


class Feature(IntEnum):
    """Feature tags of PC/SC v2 part 10 that pkcard looks at."""

    VERIFY_PIN_DIRECT = 0x06
    MODIFY_PIN_DIRECT = 0x07
    IFD_PIN_PROPERTIES = 0x0A
    GET_TLV_PROPERTIES = 0x12


class TlvProperty(IntEnum):
    """Tags in the answer to FEATURE_GET_TLV_PROPERTIES."""

    W_LCD_LAYOUT = 0x01
    W_ID_VENDOR = 0x0B
    W_ID_PRODUCT = 0x0C


def parse_features(data: bytes) -> dict[int, int]:
    """Feature tag -> control code. Malformed trailing bytes are ignored."""
    features: dict[int, int] = {}
    offset = 0
    while offset + 2 <= len(data):
        tag, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if length != 4 or len(value) != 4:
            break
        features[tag] = int.from_bytes(value, "big")
        offset += 2 + length
    return features


def parse_tlv_properties(data: bytes) -> dict[int, int]:
    """Property tag -> little-endian integer value. Stops at a truncated entry."""
    properties: dict[int, int] = {}
    offset = 0
    while offset + 2 <= len(data):
        tag, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if len(value) != length:
            break
        properties[tag] = int.from_bytes(value, "little")
        offset += 2 + length
    return properties


def usb_id_from_properties(properties: dict[int, int]) -> tuple[int, int] | None:
    vendor = properties.get(TlvProperty.W_ID_VENDOR)
    product = properties.get(TlvProperty.W_ID_PRODUCT)
    if vendor is None or product is None:
        return None
    return vendor, product


def _control(hcard: int, code: int, data: bytes = b"") -> bytes | None:
    status, answer = scard.SCardControl(hcard, code, list(data))
    if status != PcscStatus.SUCCESS:
        return None
    return bytes(answer)


@dataclass(frozen=True)
class DriverReport:
    """What a reader's driver says about it (PC/SC v2 part 10); None fields: not said."""

    usb_id: tuple[int, int] | None = None
    capabilities: ReaderCapabilities | None = None  # None: the driver lists no features


def report_from(features: dict[int, int] | None,
                properties: dict[int, int] | None) -> DriverReport:
    """The report for a feature listing and TLV properties (pure; either may be missing).

    A PIN pad is a driver that offers both VERIFY_PIN_DIRECT and
    MODIFY_PIN_DIRECT on a reader without a quirk that makes secure PIN entry
    unusable (:func:`pkcard.pinpad.quirks_for`); a display is a non-zero
    ``wLcdLayout``. This is how a reader whose model table entry leaves its
    capabilities unknown (the IDBridge GCR5500, docs/readers.md) gets them.
    """
    usb_id = usb_id_from_properties(properties) if properties is not None else None
    if features is None:
        return DriverReport(usb_id, None)
    pin_pad = (Feature.VERIFY_PIN_DIRECT in features and Feature.MODIFY_PIN_DIRECT in features
               and quirks_for(usb_id).usable)
    display: bool | None = None
    if properties is not None:
        layout = properties.get(TlvProperty.W_LCD_LAYOUT, 0)
        display = (layout >> 8) & 0xFF > 0 and layout & 0xFF > 0
    return DriverReport(usb_id, ReaderCapabilities(pin_pad=pin_pad, display=display))


def read_driver_report(hcard: int) -> DriverReport:
    """The driver's report for the reader behind ``hcard``."""
    listing = _control(hcard, CM_IOCTL_GET_FEATURE_REQUEST)
    if listing is None:
        return DriverReport()
    features = parse_features(listing)
    properties = None
    code = features.get(Feature.GET_TLV_PROPERTIES)
    if code is not None:
        answer = _control(hcard, code)
        properties = parse_tlv_properties(answer) if answer is not None else None
    return report_from(features, properties)


def probe_driver_report(hcontext: int, reader: str) -> DriverReport:
    """Open a direct (card-less) connection to ``reader`` just to read its driver's report."""
    status, hcard, _protocol = scard.SCardConnect(hcontext, reader, scard.SCARD_SHARE_DIRECT, 0)
    if status != PcscStatus.SUCCESS:
        return DriverReport()
    try:
        return read_driver_report(hcard)
    finally:
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
