"""The daemon's one entry to a card: which driver serves a reader, and where its jobs run.

Every RPC that touches a card runs a job through :class:`CardBackends`: a PK
job gets a :class:`~pkcard.pk.ProfessionalCard` (and whether the reader has
a PIN pad), a KZZ job a :class:`~pkcard.kzz.HealthInsuranceCard`. The
``[[card_backends]]`` rules of the configuration (first match wins) choose
the driver under that application, as a :class:`~pkcard.daemon.config.CardDriver`:

* ``APDU``: the documented ISO profile over the reader. The job runs on the
  reader's worker (:class:`~pkcard.daemon.workers.ReaderWorkers`) over its
  connection; the card kind comes from the ATR.
* ``PKCS11``: the card maker's module. One driver per rule (PK:
  :class:`~pkcard.pkcs11.Pkcs11PkDriver`, KZZ:
  :class:`~pkcard.pkcs11.Pkcs11KzzDriver`) serialises its jobs under its
  own lock, on the calling thread: the module talks to its token itself, and
  a module call cannot be abandoned. The card kind comes from the token's
  EF.CardInfo object.

The daemon names no driver class: the applications' ``over(connection)``
build the APDU ones, and this module the PKCS#11 ones. PKCS#11 modules are
loaded on first use (one per library path) and owned here: :meth:`close`
closes the drivers and unloads them. PyKCS11 is an optional extra: it is
imported only when a rule names the ``pkcs11`` driver, and without it
:class:`CardBackends` refuses such rules with :class:`~pkcard.errors.MissingExtra`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from pkcard.daemon.config import CardBackendRule, CardDriver
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import DaemonUnavailable, NotSupported, WrongCardKind
from pkcard.kzz import HealthInsuranceCard
from pkcard.pk import ProfessionalCard
from pkcard.readers import CardKind, card_kind_from_atr
from pkcard.transport import SmartCardConnection

if TYPE_CHECKING:
    from pkcard.pkcs11 import Pkcs11KzzDriver, Pkcs11Module, Pkcs11PkDriver

T = TypeVar("T")

PkJob = Callable[[ProfessionalCard, bool], T]
"""A PK operation: ``job(card, pin_pad)``; ``pin_pad`` is True when the reader has one."""

KzzJob = Callable[[HealthInsuranceCard], T]
"""A KZZ operation: ``job(card)``."""


@dataclass(frozen=True)
class Served(Generic[T]):
    """A job's result and the driver that served it."""

    value: T
    driver: CardDriver


def _need(kind: CardKind, connection: SmartCardConnection) -> None:
    if card_kind_from_atr(connection.atr) is not kind:
        name = "professional card (PK)" if kind is CardKind.PK else "health insurance card (KZZ)"
        raise WrongCardKind(f"this operation needs a {name}")


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
        self._pk_drivers: dict[CardBackendRule, Pkcs11PkDriver] = {}
        self._kzz_drivers: dict[CardBackendRule, Pkcs11KzzDriver] = {}
        self._closed = False

    def rule(self, reader: str) -> CardBackendRule:
        """The first rule for ``reader``; the APDU driver when none matches."""
        for rule in self._rules:
            if rule.matches(reader):
                return rule
        return CardBackendRule()

    def driver(self, reader: str) -> CardDriver:
        return self.rule(reader).driver

    def missing_modules(self) -> tuple[Path, ...]:
        """The configured PKCS#11 libraries that are not files (checked at daemon start)."""
        return tuple(
            rule.module for rule in self._rules
            if rule.module is not None and not rule.module.is_file()
        )

    # --- PKCS#11 drivers ------------------------------------------------------------

    def _module(self, rule: CardBackendRule) -> Pkcs11Module:
        """The rule's module, loaded once per path. Under the lock."""
        if self._closed:
            raise DaemonUnavailable("pkcardd is shutting down")
        if rule.module is None or rule.card_token is None:
            raise NotSupported("a pkcs11 card backend needs a module and a card_token")
        # Only here: PyKCS11 is an optional extra (checked in __init__).
        from pkcard.pkcs11 import Pkcs11Module  # noqa: PLC0415

        module = self._modules.get(rule.module)
        if module is None:
            module = Pkcs11Module.load(rule.module)
            self._modules[rule.module] = module
        return module

    def _pkcs11_pk(self, rule: CardBackendRule) -> Pkcs11PkDriver:
        with self._lock:
            driver = self._pk_drivers.get(rule)
            if driver is None:
                from pkcard.pkcs11 import Pkcs11PkDriver  # noqa: PLC0415

                module = self._module(rule)
                assert rule.card_token is not None  # checked by _module
                driver = Pkcs11PkDriver(module, rule.card_token, rule.signature_token)
                self._pk_drivers[rule] = driver
            return driver

    def _pkcs11_kzz(self, rule: CardBackendRule) -> Pkcs11KzzDriver:
        with self._lock:
            driver = self._kzz_drivers.get(rule)
            if driver is None:
                from pkcard.pkcs11 import Pkcs11KzzDriver  # noqa: PLC0415

                module = self._module(rule)
                assert rule.card_token is not None  # checked by _module
                driver = Pkcs11KzzDriver(module, rule.card_token)
                self._kzz_drivers[rule] = driver
            return driver

    # --- running jobs ---------------------------------------------------------------

    def _on_reader(
        self, reader: str, job: Callable[[SmartCardConnection], T],
        timeout: float | None, is_active: Callable[[], bool],
    ) -> T:
        return self._workers.run(reader, job, timeout=timeout, is_active=is_active)

    def pk(
        self, reader: str, job: PkJob[T], *,
        timeout: float | None = None, is_active: Callable[[], bool] = lambda: True,
    ) -> Served[T]:
        """Run ``job`` on the PK that serves ``reader``; :class:`WrongCardKind` if not a PK.

        ``timeout`` and ``is_active`` bound the wait on the reader's queue
        (APDU driver only: a PKCS#11 module call cannot be abandoned).
        """
        rule = self.rule(reader)
        if rule.driver is CardDriver.PKCS11:
            driver = self._pkcs11_pk(rule)
            with driver.transaction():
                return Served(job(ProfessionalCard(driver), False), rule.driver)

        def on_connection(connection: SmartCardConnection) -> T:
            _need(CardKind.PK, connection)
            pad = connection.capabilities.pin_pad is True
            return job(ProfessionalCard.over(connection), pad)

        return Served(self._on_reader(reader, on_connection, timeout, is_active), rule.driver)

    def kzz(
        self, reader: str, job: KzzJob[T], *,
        timeout: float | None = None, is_active: Callable[[], bool] = lambda: True,
    ) -> Served[T]:
        """Run ``job`` on the KZZ that serves ``reader``; :class:`WrongCardKind` if not a KZZ."""
        rule = self.rule(reader)
        if rule.driver is CardDriver.PKCS11:
            driver = self._pkcs11_kzz(rule)
            with driver.transaction():
                return Served(job(HealthInsuranceCard(driver)), rule.driver)

        def on_connection(connection: SmartCardConnection) -> T:
            _need(CardKind.KZZ, connection)
            return job(HealthInsuranceCard.over(connection))

        return Served(self._on_reader(reader, on_connection, timeout, is_active), rule.driver)

    def either(
        self, reader: str, pk_job: PkJob[T], kzz_job: KzzJob[T], *,
        timeout: float | None = None, is_active: Callable[[], bool] = lambda: True,
    ) -> Served[T]:
        """``pk_job`` on a PK, ``kzz_job`` on a KZZ; :class:`WrongCardKind` for any other card."""
        rule = self.rule(reader)
        if rule.driver is CardDriver.PKCS11:
            try:
                return self.pk(reader, pk_job)
            except WrongCardKind:  # the token's EF.CardInfo names another kind
                return self.kzz(reader, kzz_job)

        def on_connection(connection: SmartCardConnection) -> T:
            kind = card_kind_from_atr(connection.atr)
            if kind is CardKind.PK:
                return pk_job(ProfessionalCard.over(connection),
                              connection.capabilities.pin_pad is True)
            if kind is CardKind.KZZ:
                return kzz_job(HealthInsuranceCard.over(connection))
            raise WrongCardKind("the card in the reader is neither a PK nor a KZZ")

        return Served(self._on_reader(reader, on_connection, timeout, is_active), rule.driver)

    def close(self) -> None:
        """Close every PKCS#11 driver and unload the modules. Idempotent."""
        with self._lock:
            self._closed = True
            drivers: list[Pkcs11PkDriver | Pkcs11KzzDriver] = [
                *self._pk_drivers.values(), *self._kzz_drivers.values()]
            self._pk_drivers, self._kzz_drivers = {}, {}
            modules, self._modules = list(self._modules.values()), {}
        for driver in drivers:
            driver.close()
        for module in modules:
            module.close()
