"""The prerequisites of KPEP activation, as the seed lists them (issue 15, point 7).

"Za aktiviranje KPEP potrebujete: delovno postajo, na kateri deluje sistem
on-line; nameščen čitalnik pametnih kartic Gemalto (Thales) IDBridge CT700,
IDBridge CT710, IDBridge CT30 ali Gemalto GCR5500-Si; kuverto z osebnimi
gesli (TPIN)". The transport PIN is spent once, so it is sent to the card
only after the reader is one of those (:func:`require_supported_reader`,
pure) and the backend answers (pkcardd's :mod:`pkcard.daemon.activation`).
A lost TPIN envelope or a blocked TPIN cannot be repaired: a new PK must be
ordered.
"""

from __future__ import annotations

from pkcard.errors import ActivationReaderUnsupported
from pkcard.readers import ReaderInfo, ReaderModel

ACTIVATION_READERS: frozenset[ReaderModel] = frozenset(
    {
        ReaderModel.IDBRIDGE_CT30,
        ReaderModel.IDBRIDGE_CT700,
        ReaderModel.IDBRIDGE_CT710,
        ReaderModel.IDBRIDGE_GCR5500,
    }
)
"""The reader models the seed names for KPEP activation."""


def require_supported_reader(reader: ReaderInfo) -> None:
    """Raise :class:`ActivationReaderUnsupported` unless ``reader`` is a model the seed names."""
    if reader.model not in ACTIVATION_READERS:
        raise ActivationReaderUnsupported(
            reader.name,
            f"signature activation needs an IDBridge CT30, CT700, CT710 or GCR5500 reader; "
            f"this one is {reader.model.name}",
        )


__all__ = ["ACTIVATION_READERS", "require_supported_reader"]
