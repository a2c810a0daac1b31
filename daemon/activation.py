"""pkcardd's check of the KPEP activation prerequisites before the TPIN is sent.

:class:`ActivationPrerequisites` is called by ``ActivateSignaturePin`` after
the audit intent record and before any APDU: the reader must be one the seed
names (:func:`pkcard.activation.require_supported_reader`) and the backend
must answer (a fresh ``IssueChallenge`` over the daemon's
:class:`~pkcard.daemon.backend_link.BackendLink`, whose nonce is simply left
to expire). Either failure leaves the card untouched, so the TPIN keeps its
tries.
"""

from __future__ import annotations

from pkcard.activation import require_supported_reader
from pkcard.daemon.backend_link import BackendLink
from pkcard.errors import ActivationOffline, BackendUnavailable, ReaderNotFound
from pkcard.readers import ReaderSystem


class ActivationPrerequisites:
    """The reader and backend checks; ``backend`` is None when none is configured."""

    def __init__(self, readers: ReaderSystem, backend: BackendLink | None) -> None:
        self._readers = readers
        self._backend = backend

    def check(self, reader: str) -> None:
        """Raise :class:`ActivationReaderUnsupported` or :class:`ActivationOffline`."""
        states = {state.reader.name: state for state in self._readers.list_readers()}
        state = states.get(reader)
        if state is None:
            raise ReaderNotFound(f"no reader named {reader!r}")
        require_supported_reader(state.reader)
        if self._backend is None:
            raise ActivationOffline(
                "signature activation needs the on-line system: pkcardd has no backend configured"
            )
        try:
            self._backend.challenge()
        except BackendUnavailable:
            raise ActivationOffline(
                "signature activation needs the on-line system: the backend does not answer"
            ) from None


__all__ = ["ActivationPrerequisites"]
