"""Which driver serves the PK in a reader: APDUs over the reader, or a PKCS#11 module.

:class:`CardBackends` follows the ``[[card_backends]]`` rules of the
configuration (first match wins). The APDU driver
(:class:`~pkcard.pk_iso.IsoPkDriver`) runs on the reader's worker over a fresh
connection; a PKCS#11 driver (:class:`~pkcard.pkcs11.Pkcs11PkDriver`) runs on
the calling thread under the driver's own lock (the module talks to its
token itself). Either way the job gets a :class:`~pkcard.pk_driver.PkDriver` and
the caller cannot tell which served it, apart from :attr:`PkJobResult.backend`.

PKCS#11 modules are loaded on first use (one per library path) and owned
here: :meth:`CardBackends.close` closes the drivers and unloads them.
PyKCS11 is an optional extra: it is imported only when a rule names the
``pkcs11`` driver, and without it :class:`CardBackends` refuses such rules
with :class:`~pkcard.errors.MissingExtra` (which names the extra to install).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from pkcard.daemon.cards import BACKEND_APDU
from pkcard.daemon.config import CardBackendRule, CardDriver
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import DaemonUnavailable, NotSupported, WrongCardKind
from pkcard.pk_driver import PkDriver
from pkcard.pk_iso import IsoPkDriver
from pkcard.readers import CardKind, card_kind_from_atr
from pkcard.transport import SmartCardConnection

if TYPE_CHECKING:
    from pkcard.pkcs11 import Pkcs11Module, Pkcs11PkDriver

T = TypeVar("T")

BACKEND_PKCS11 = "pkcs11"


@dataclass(frozen=True)
class PkJob(Generic[T]):
    """A PK operation: ``run(driver, pin_pad)``; ``pin_pad`` is True when the reader has one."""

    run: Callable[[PkDriver, bool], T]


@dataclass(frozen=True)
class PkJobResult(Generic[T]):
    value: T
    backend: str  # BACKEND_APDU or BACKEND_PKCS11


class CardBackends:
    """The card backend of each reader, by the configuration's rules; owns PKCS#11 modules."""

    def __init__(self, rules: Sequence[CardBackendRule], workers: ReaderWorkers) -> None:
        """Raises :class:`~pkcard.errors.MissingExtra` for a ``pkcs11`` rule without PyKCS11."""
        if any(rule.driver is CardDriver.PKCS11 for rule in rules):
            # Load the driver (and PyKCS11) now: without the extra, the daemon does not start.
            importlib.import_module("pkcard.pkcs11")
        self._rules = tuple(rules)
        self._workers = workers
        self._lock = threading.Lock()
        self._modules: dict[Path, Pkcs11Module] = {}
        self._drivers: dict[CardBackendRule, Pkcs11PkDriver] = {}
        self._closed = False

    def rule(self, reader: str) -> CardBackendRule:
        """The first rule for ``reader``; the APDU driver when none matches."""
        for rule in self._rules:
            if rule.matches(reader):
                return rule
        return CardBackendRule()

    def missing_modules(self) -> tuple[Path, ...]:
        """The configured PKCS#11 libraries that are not files (checked at daemon start)."""
        return tuple(
            rule.module for rule in self._rules
            if rule.module is not None and not rule.module.is_file()
        )

    def serves_by_pkcs11(self, reader: str) -> bool:
        return self.rule(reader).driver is CardDriver.PKCS11

    def _pkcs11_driver(self, rule: CardBackendRule) -> Pkcs11PkDriver:
        if rule.module is None or rule.card_token is None:
            raise NotSupported("a pkcs11 card backend needs a module and a card_token")
        with self._lock:
            if self._closed:
                raise DaemonUnavailable("pkcardd is shutting down")
            driver = self._drivers.get(rule)
            if driver is None:
                # Only here: PyKCS11 is an optional extra (checked in __init__).
                from pkcard.pkcs11 import Pkcs11Module, Pkcs11PkDriver  # noqa: PLC0415

                module = self._modules.get(rule.module)
                if module is None:
                    module = Pkcs11Module.load(rule.module)
                    self._modules[rule.module] = module
                driver = Pkcs11PkDriver(module, rule.card_token, rule.signature_token)
                self._drivers[rule] = driver
            return driver

    def run(
        self,
        reader: str,
        job: PkJob[T],
        *,
        timeout: float | None = None,
        is_active: Callable[[], bool] = lambda: True,
    ) -> PkJobResult[T]:
        """Run ``job`` on the PK that serves ``reader``; :class:`WrongCardKind` if not a PK.

        ``timeout`` and ``is_active`` bound the wait on the reader's queue
        (APDU driver only: a PKCS#11 module call cannot be abandoned).
        """
        rule = self.rule(reader)
        if rule.driver is CardDriver.PKCS11:
            driver = self._pkcs11_driver(rule)
            with driver.transaction():
                return PkJobResult(job.run(driver, False), BACKEND_PKCS11)

        def on_connection(connection: SmartCardConnection) -> T:
            if card_kind_from_atr(connection.atr) is not CardKind.PK:
                raise WrongCardKind("this operation needs a professional card (PK)")
            return job.run(IsoPkDriver.over(connection), connection.capabilities.pin_pad is True)

        value = self._workers.run(reader, on_connection, timeout=timeout, is_active=is_active)
        return PkJobResult(value, BACKEND_APDU)

    def close(self) -> None:
        """Close every PKCS#11 driver and unload the modules. Idempotent."""
        with self._lock:
            self._closed = True
            drivers, self._drivers = list(self._drivers.values()), {}
            modules, self._modules = list(self._modules.values()), {}
        for driver in drivers:
            driver.close()
        for module in modules:
            module.close()
