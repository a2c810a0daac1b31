"""The IDBridge GCR5500 (issue 15, point 8): its PIN pad comes from what its driver reports.

The GCR5500 is in no CCID supported-readers list (docs/readers.md), so the
model table leaves its PIN pad and display unknown; the driver's PC/SC v2
part 10 feature list fills them: VERIFY_PIN_DIRECT and MODIFY_PIN_DIRECT make
a PIN pad, a non-zero wLcdLayout a display. Readers the table knows keep
the table's answer.
"""

from __future__ import annotations

import pytest

from pkcard.activation import require_supported_reader
from pkcard.pcsc_bridge.features import Feature, TlvProperty, report_from
from pkcard.pcsc_bridge.models import identify
from pkcard.pcsc_bridge.system import PcscReaderSystem
from pkcard.readers import ReaderModel
from pkcard.simcard.pcscd_harness import DEFAULT_READERS, PcscdHarness, VirtualReader
from pkcard.transport import ReaderCapabilities

GCR5500 = "Gemalto GCR5500-Si 00 00"
PAD_FEATURES = {Feature.VERIFY_PIN_DIRECT: 0x42330006, Feature.MODIFY_PIN_DIRECT: 0x42330007,
                Feature.GET_TLV_PROPERTIES: 0x42330012}
VERIFY_ONLY = {Feature.VERIFY_PIN_DIRECT: 0x42330006}


def test_a_driver_offering_secure_pin_entry_makes_a_pin_pad() -> None:
    report = report_from(PAD_FEATURES, {TlvProperty.W_LCD_LAYOUT: 0x0210})
    assert report.capabilities == ReaderCapabilities(pin_pad=True, display=True)
    info = identify(GCR5500, report.usb_id, report.capabilities)
    assert info.model is ReaderModel.IDBRIDGE_GCR5500
    assert info.capabilities == ReaderCapabilities(pin_pad=True, display=True)


def test_no_secure_pin_entry_no_display() -> None:
    report = report_from({Feature.GET_TLV_PROPERTIES: 0x42330012}, {TlvProperty.W_LCD_LAYOUT: 0})
    info = identify(GCR5500, report.usb_id, report.capabilities)
    assert info.capabilities == ReaderCapabilities(pin_pad=False, display=False)


def test_verify_without_modify_is_no_pin_pad() -> None:
    """pkpin's PIN-pad commands change PINs too: a pad that cannot modify is not offered."""
    assert report_from(VERIFY_ONLY, None).capabilities == ReaderCapabilities(
        pin_pad=False, display=None)


def test_a_quirk_that_makes_the_pad_unusable_wins() -> None:
    omnikey = {TlvProperty.W_ID_VENDOR: 0x076B, TlvProperty.W_ID_PRODUCT: 0x3031}
    report = report_from(PAD_FEATURES, omnikey)
    assert report.capabilities is not None
    assert report.capabilities.pin_pad is False


def test_a_silent_driver_leaves_the_gcr5500_unknown() -> None:
    report = report_from(None, None)
    info = identify(GCR5500, report.usb_id, report.capabilities)
    assert info.capabilities == ReaderCapabilities(pin_pad=None, display=None)


def test_the_table_wins_for_readers_it_knows() -> None:
    twin = identify("Gemalto PC Twin Reader 00 00", None,
                    ReaderCapabilities(pin_pad=True, display=True))
    assert twin.capabilities == ReaderCapabilities(pin_pad=False, display=False)


def test_the_gcr5500_is_a_reader_for_kpep_activation() -> None:
    require_supported_reader(identify(GCR5500))


@pytest.mark.pcsc
def test_a_gcr5500_over_pcscd_is_recognised_and_its_driver_asked(
    pcscd_env: PcscdHarness,
) -> None:
    """vpcd lists no features (SCardControl: unsupported): the PIN pad stays unknown."""
    pcscd_env.restart_pcscd((DEFAULT_READERS[0], VirtualReader("Gemalto GCR5500-Si", 0x8C7D)),
                            reinsert=False)
    with PcscReaderSystem() as readers:
        states = {state.reader.name: state.reader for state in readers.list_readers()}
    gcr = states[GCR5500]
    assert gcr.model is ReaderModel.IDBRIDGE_GCR5500
    assert gcr.capabilities == ReaderCapabilities(pin_pad=None, display=None)
    require_supported_reader(gcr)
