"""One PC/SC context handle, re-established after pcscd restarts."""

from __future__ import annotations

import logging
import threading

from smartcard import scard

from pkcard.errors import NoService
from pkcard.pcsc_bridge.errors import PcscStatus, diagnose_no_service, error_for_status

_log = logging.getLogger(__name__)

SERVICE_LOSS = frozenset(
    {PcscStatus.E_NO_SERVICE, PcscStatus.E_SERVICE_STOPPED, PcscStatus.E_INVALID_HANDLE}
)


def is_service_loss(status: int) -> bool:
    """True when ``status`` means pcscd went away (or restarted) under our handles."""
    return status in SERVICE_LOSS


def establish_context() -> int:
    """A fresh PC/SC context handle. Raises :class:`NoService` with a diagnosis."""
    status, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if status != PcscStatus.SUCCESS:
        error = error_for_status(status, "SCardEstablishContext")
        if isinstance(error, NoService):
            raise NoService(diagnose_no_service()) from error
        raise error
    return int(handle)


def release_context(handle: int) -> None:
    """Release ``handle``; a handle that died with pcscd is released silently."""
    status = scard.SCardReleaseContext(handle)
    if status != PcscStatus.SUCCESS:
        _log.debug("SCardReleaseContext: 0x%08X", status)


class PcscContext:
    """Owns one context handle, established lazily and again after a service loss.

    Thread safe: connections of one reader system share the handle, and
    :meth:`drop` makes the next :meth:`get` establish a new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: int | None = None

    def get(self) -> int:
        """The current handle, establishing one when there is none."""
        with self._lock:
            if self._handle is None:
                self._handle = establish_context()
            return self._handle

    def drop(self, handle: int) -> None:
        """Forget ``handle`` after it failed with a service loss (if still current)."""
        with self._lock:
            if self._handle == handle:
                self._handle = None
                release_context(handle)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                release_context(self._handle)
                self._handle = None
