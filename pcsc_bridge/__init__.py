"""pkcard's PC/SC bridge: the only package that talks to pcscd (through pyscard)."""

from pkcard.pcsc_bridge.connection import PcscConnection
from pkcard.pcsc_bridge.errors import diagnose_no_service, error_for_status
from pkcard.pcsc_bridge.models import identify
from pkcard.pcsc_bridge.system import PcscReaderSystem

__all__ = [
    "PcscConnection",
    "PcscReaderSystem",
    "diagnose_no_service",
    "error_for_status",
    "identify",
]
