"""``pkcardd --simulated``: in-process readers with test cards, and the SimulationService.

Two readers as in :mod:`pkcard.simcard.inprocess`: a CT700-like PIN-pad reader
holding a ``pk-regular`` PK, and a CT30-like reader holding a ``kzz`` KZZ;
``--simulated-readers N`` adds CT30-like readers (for load runs).
"""

from __future__ import annotations

from dataclasses import replace

import grpc

from pkcard.daemon.services import Auditor
from pkcard.errors import InvalidRequest, ReaderNotFound
from pkcard.readers import ReaderInfo, ReaderSystem
from pkcard.simcard.card import SimulatedCard
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from pkcard.simcard.profile import load_profile, profile_names
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc

DEFAULT_CARDS = ((PINPAD_READER.name, "pk-regular"), (TWIN_READER.name, "kzz"))


MAX_SIMULATED_READERS = 16


def extra_reader(index: int) -> ReaderInfo:
    """Simulated reader number ``index`` (from 2): a CT30-like reader without PIN pad."""
    return replace(TWIN_READER, name=f"Simulated Reader {index:02d}")


def simulated_reader_system(count: int = 2) -> SimulatedReaderSystem:
    """``count`` readers: the two defaults, then CT30-like ones holding a PK, a KZZ, a PK..."""
    if not 2 <= count <= MAX_SIMULATED_READERS:
        raise ValueError(f"the simulated reader count must be 2..{MAX_SIMULATED_READERS}")
    extra = [extra_reader(index) for index in range(2, count)]
    readers = SimulatedReaderSystem((PINPAD_READER, TWIN_READER, *extra))
    cards = [*DEFAULT_CARDS,
             *((info.name, "pk-regular" if i % 2 == 0 else "kzz") for i, info in enumerate(extra))]
    for reader, profile in cards:
        # Keys parsed at the first signature: a simulated daemon that only reads cards
        # never loads cryptography (issue #14, G6).
        readers.insert(reader, SimulatedCard.from_profile(load_profile(profile),
                                                          keys_on_first_use=True))
    return readers


class SimulationServicer(simulation_pb2_grpc.SimulationServiceServicer):
    """Card insertion and removal in the simulated readers."""

    def __init__(self, readers: ReaderSystem, auditor: Auditor) -> None:
        if not isinstance(readers, SimulatedReaderSystem):
            raise TypeError("the simulation service needs a SimulatedReaderSystem")
        self._readers = readers
        self._auditor = auditor

    def InsertCard(
        self, request: simulation_pb2.InsertCardRequest, context: grpc.ServicerContext
    ) -> simulation_pb2.InsertCardResponse:
        with self._auditor.call(context, "InsertCard", reader=request.reader):
            if request.profile not in profile_names():
                raise InvalidRequest("profile must be the name of a built-in test profile")
            if request.reader not in self._readers.reader_names:
                raise ReaderNotFound("no simulated reader of that name")
            card = SimulatedCard.from_profile(load_profile(request.profile),
                                              keys_on_first_use=True)
            self._readers.insert(request.reader, card)
            return simulation_pb2.InsertCardResponse()

    def RemoveCard(
        self, request: simulation_pb2.RemoveCardRequest, context: grpc.ServicerContext
    ) -> simulation_pb2.RemoveCardResponse:
        with self._auditor.call(context, "RemoveCard", reader=request.reader):
            removed = self._readers.remove(request.reader)
            return simulation_pb2.RemoveCardResponse(removed=removed is not None)
