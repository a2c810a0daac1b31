"""``pkcardd --simulated``: in-process readers with test cards, and the SimulationService.

Two readers as in :mod:`simcard.inprocess`: a CT700-like PIN-pad reader
holding a ``pk-regular`` PK, and a CT30-like reader holding a ``kzz`` KZZ.
"""

from __future__ import annotations

import grpc

from daemon.services import Auditor
from pkcard.errors import InvalidRequest, ReaderNotFound
from pkcard.readers import ReaderSystem
from pkcard.v1 import simulation_pb2, simulation_pb2_grpc
from simcard.card import SimulatedCard
from simcard.inprocess import PINPAD_READER, TWIN_READER, SimulatedReaderSystem
from simcard.profile import load_profile, profile_names

DEFAULT_CARDS = ((PINPAD_READER.name, "pk-regular"), (TWIN_READER.name, "kzz"))


def simulated_reader_system() -> SimulatedReaderSystem:
    readers = SimulatedReaderSystem((PINPAD_READER, TWIN_READER))
    for reader, profile in DEFAULT_CARDS:
        readers.insert(reader, SimulatedCard.from_profile(load_profile(profile)))
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
            card = SimulatedCard.from_profile(load_profile(request.profile))
            self._readers.insert(request.reader, card)
            return simulation_pb2.InsertCardResponse()

    def RemoveCard(
        self, request: simulation_pb2.RemoveCardRequest, context: grpc.ServicerContext
    ) -> simulation_pb2.RemoveCardResponse:
        with self._auditor.call(context, "RemoveCard", reader=request.reader):
            removed = self._readers.remove(request.reader)
            return simulation_pb2.RemoveCardResponse(removed=removed is not None)
