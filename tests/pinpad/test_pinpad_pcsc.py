"""SCardControl through the real pcscd path.

vpcd (the virtual reader driver) takes no control commands: it answers
SCardControl with SCARD_E_UNSUPPORTED_FEATURE. So a vpcd reader named like a
GemPC Pinpad, which the model table says has a PIN pad, must refuse secure
PIN entry with NotSupported, without touching the card's PIN.
"""

from __future__ import annotations

import pytest

from pkcard.errors import NotSupported
from pkcard.pcsc_bridge import PcscReaderSystem
from pkcard.pin import PinRef
from pkcard.pinpad import CM_IOCTL_GET_FEATURE_REQUEST
from pkcard.pk import ProfessionalCard
from pkcard.readers import ReaderModel
from pkcard.simcard.card import load_card
from pkcard.simcard.pcscd_harness import PcscdHarness
from pkcard.simcard.spec import SecretRef

pytestmark = pytest.mark.pcsc

PINPAD_SLOT = 1  # the shared harness names slot 1 like a GemPC Pinpad (CT700)


def test_vpcd_pinpad_reader_refuses_secure_pin_entry(pcscd_env: PcscdHarness) -> None:
    card = load_card("pk-regular")
    pcscd_env.insert(PINPAD_SLOT, card)
    with PcscReaderSystem() as system:
        name = pcscd_env.reader_name(PINPAD_SLOT)
        info = next(s.reader for s in system.list_readers() if s.reader.name == name)
        assert info.model is ReaderModel.IDBRIDGE_CT700
        connection = system.connect(name)
        try:
            with pytest.raises(NotSupported):
                connection.control(CM_IOCTL_GET_FEATURE_REQUEST, b"")
            with pytest.raises(NotSupported):
                ProfessionalCard.over(connection).verify_on_pad(PinRef.PIN)
        finally:
            connection.close()
    assert card.tries_left(SecretRef.PIN) == 3
