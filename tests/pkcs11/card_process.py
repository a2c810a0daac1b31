"""A simulated card served to vpcd from a child process.

PyKCS11 calls a module without releasing the GIL, so a PKCS#11 module that
talks to pcscd (OpenSC) blocks every Python thread of its process while it
waits for an APDU answer: a card served by a thread of the same process
(simcard.vpcd) never answers. The card therefore lives in its own (forked)
process.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Event

from pkcard.simcard.card import load_card
from pkcard.simcard.vpcd import VpcdCardSlot

_STOP_TIMEOUT_S = 10.0


def _serve(port: int, profile: str, stop: Event) -> None:
    slot = VpcdCardSlot(port)
    slot.insert(load_card(profile))
    stop.wait()
    slot.close()


class CardProcess:
    """``profile``'s card inserted into the vpcd slot at ``port`` until :meth:`stop`."""

    def __init__(self, port: int, profile: str) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve, args=(port, profile, self._stop), daemon=True
        )
        self._process.start()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(_STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
