"""The professional card (PK) application: :class:`ProfessionalCard` and its card data.

The application holds the rules: the PIN format checks and policy before any
APDU, the last-try guard, one transaction per operation, typed errors, and
the card data (:class:`PkCardData`). It talks to the card through a
:class:`~pkcard.pk_driver.PkDriver` (the interface, :mod:`pkcard.pk_driver`);
:class:`~pkcard.pk_iso.IsoPkDriver` (:mod:`pkcard.pk_iso`) is the APDU driver
for the documented profile, :class:`~pkcard.pkcs11.Pkcs11PkDriver` the one
over a PKCS#11 module.

Secrets are checked and their PIN blocks built before the card sees
anything; the caller collects every secret first, so no transaction is
held while a person types.

Card resets: the card drops every verified state on reset or power off. When
the transport reports :class:`~pkcard.errors.CardReset` or
:class:`~pkcard.errors.CardRemoved`, the application forgets what it knew
as verified (:attr:`ProfessionalCard.verified`) and re-raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from pkcard.cardinfo import CardInfo, CardRole, Environment
from pkcard.certs import SHA256_LENGTH, CertificateInfo, parse_certificate
from pkcard.errors import (
    CardDead,
    CardRemoved,
    CardReset,
    FormatError,
    KeyNeedsPin,
    KeyNotFound,
    NotSupported,
    PinBlocked,
    PinDisabled,
    TransportPinActive,
    WrongPin,
    tries_left_text,
)
from pkcard.expiry import ExpiryWarning, expiry_warnings
from pkcard.pin import (
    PIN_FORMATS,
    PadEntry,
    PinEntry,
    PinRef,
    PinState,
    PinStatus,
    check_new_pin,
    check_presented,
    guard_last_try,
    require_transport,
    require_usable,
)
from pkcard.pk_driver import KeySlot, PinAnswer, PinOutcome, PkDriver, Profession
from pkcard.pk_iso import IsoPkDriver
from pkcard.secret import Secret
from pkcard.transport import SmartCardConnection

__all__ = ["PkCardData", "ProfessionalCard"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PkCardData:
    """Everything readable from a PK without a PIN."""

    holder_name: str
    holder_id: str
    profession: Profession
    card_serial: str
    issuer: str
    valid_from: date
    valid_until: date
    role: CardRole
    environment: Environment
    auth_certificate: CertificateInfo
    kpep_certificate: CertificateInfo | None

    def expiry_warnings(self, today: date) -> tuple[ExpiryWarning, ...]:
        """Card replacement and KPEP renewal warnings due on ``today``."""
        kpep = self.kpep_certificate
        return expiry_warnings(
            today=today,
            card_valid_until=self.valid_until,
            kpep_not_after=kpep.not_after if kpep is not None else None,
        )


# The references a holder presents or changes directly; the PUK and TPIN are
# only used through unblock() and activate_signature().
_DIRECT_REFS = frozenset({PinRef.PIN, PinRef.SPIN, PinRef.REACTIVATION})
# The password is printable ASCII in a 16-byte block: no PIN pad can type it.
_PAD_REFS = frozenset({PinRef.PIN, PinRef.SPIN})


def _on_pad_text(entry: PinEntry) -> str:
    return " on the PIN pad" if isinstance(entry, PadEntry) else ""


def _check_digest(digest: bytes) -> None:
    if len(digest) != SHA256_LENGTH:
        raise FormatError("the hash must be a 32-byte SHA-256 digest")


class ProfessionalCard:
    """The PK application: card data, PIN lifecycle, signatures.

    Construct one per card session: ``ProfessionalCard.over(connection)``.
    Every method that takes a secret refuses a malformed one
    (:class:`~pkcard.errors.MalformedPin`) and a weak new value
    (:class:`~pkcard.errors.WeakPin`) before any APDU, then runs as one
    card transaction: select, status read (spends nothing), the last-try
    guard (:class:`~pkcard.errors.LastTryNotConfirmed` when one try is left
    and ``confirm_last_try`` is false), and only then the secret's APDU.
    The secrets stay owned by the caller (wipe them when done).

    The policy's BIRTH_DATE rule needs the holder's birth date: it comes from
    the last :meth:`read_card`, or else from one read of EF.Holder (no
    secret involved) before the policy runs.
    """

    def __init__(self, driver: PkDriver) -> None:
        self._driver = driver
        self._verified: set[PinRef] = set()
        self._birth_date: date | None = None
        self._in_transaction = False
        self._in_session = False  # inside session(): the application is selected

    @classmethod
    def over(cls, connection: SmartCardConnection) -> ProfessionalCard:
        """The application over the documented ISO profile."""
        return cls(IsoPkDriver.over(connection))

    @property
    def verified(self) -> frozenset[PinRef]:
        """References this object saw verified and not since dropped (a cache, not the card)."""
        return frozenset(self._verified)

    # --- session -----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several of this object's operations as one card transaction.

        Nothing else reaches the card between them (another application, a
        reset it asks for), and they cost one transaction instead of one each.
        Each operation still selects the application itself (:meth:`session`
        selects it once for all). Re-entrant: the operations inside use this
        transaction instead of taking their own.
        """
        if self._in_transaction:
            yield
            return
        with self._driver.transaction():
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    @contextmanager
    def session(self) -> Iterator[None]:
        """One card transaction, and one SELECT of the application, for several operations.

        Every method opens its own session; inside this one they run in it
        instead: ``with card.session(): card.card_info(); card.pin_statuses()``
        takes the card once and selects the application once, where two calls
        alone take it twice and select twice. Nobody else can reach the card
        until the block ends, so the application stays selected; the next
        session selects it again whatever happened in between (another
        application's SELECT, a reset, a swapped card). Collect every secret
        before opening it: never hold the card while a person types on a
        keyboard (:class:`~pkcard.pcsc_bridge.PcscConnection`).
        """
        if self._in_session:  # nested: the outer session holds the card
            yield
            return
        self._in_session = True
        try:
            with self.transaction():
                self._driver.select()
                yield
        except (CardReset, CardRemoved):
            self._verified.clear()
            _log.debug("card reset or removed: verified states dropped")
            raise
        finally:
            self._in_session = False

    # --- card data ---------------------------------------------------------

    def card_info(self) -> CardInfo:
        """EF.CardInfo alone (serial, validity, role, environment): one short transaction."""
        with self.session():
            return self._driver.read_card_info()

    def certificate(self, slot: KeySlot) -> bytes | None:
        """The DER of one certificate, or ``None`` when the card has none in ``slot``."""
        with self.session():
            return self._driver.read_certificate(slot)

    def read_card(self) -> PkCardData:
        """Read EF.CardInfo, EF.Holder and the certificates (no PIN needed)."""
        with self.session():
            info = self._driver.read_card_info()
            holder = self._driver.read_holder()
            auth_der = self._driver.read_certificate(KeySlot.AUTHENTICATION)
            sign_der = self._driver.read_certificate(KeySlot.SIGNATURE)
        if auth_der is None:
            raise FormatError("the PK has no authentication certificate")
        self._birth_date = holder.birth_date
        return PkCardData(
            holder_name=holder.name,
            holder_id=holder.holder_id,
            profession=holder.profession,
            card_serial=info.serial,
            issuer=info.issuer,
            valid_from=info.valid_from,
            valid_until=info.valid_until,
            role=info.role,
            environment=info.environment,
            auth_certificate=parse_certificate(auth_der),
            kpep_certificate=parse_certificate(sign_der) if sign_der is not None else None,
        )

    def _holder_birth_date(self) -> date:
        if self._birth_date is None:
            with self.session():
                self._birth_date = self._driver.read_holder().birth_date
        return self._birth_date

    # --- PIN status ----------------------------------------------------------

    def _status(self, ref: PinRef) -> PinStatus:
        """The reference's status, inside an open session."""
        max_tries = PIN_FORMATS[ref].max_tries
        answer = self._driver.pin_answer(ref)
        outcome = answer.outcome
        if outcome is PinOutcome.NOT_FOUND:
            raise NotSupported(f"this card has no {ref.name}")
        if outcome is PinOutcome.OK:
            self._verified.add(ref)
            return PinStatus(ref, PinState.VERIFIED, max_tries, max_tries)
        self._verified.discard(ref)
        if outcome is PinOutcome.WRONG and answer.tries_left:
            return PinStatus(ref, PinState.VERIFIABLE, answer.tries_left, max_tries)
        if outcome is PinOutcome.NOT_USABLE:
            if ref is PinRef.SPIN:
                return PinStatus(ref, PinState.TRANSPORT, max_tries, max_tries)
            return PinStatus(ref, PinState.DISABLED, 0, max_tries)
        # BLOCKED, or WRONG with 0 tries left.
        dead = ref is PinRef.PUK or (ref is PinRef.PIN and self._puk_blocked())
        return PinStatus(ref, PinState.DEAD if dead else PinState.BLOCKED, 0, max_tries)

    def _puk_blocked(self) -> bool:
        answer = self._driver.pin_answer(PinRef.PUK)
        return answer.outcome is PinOutcome.BLOCKED or (
            answer.outcome is PinOutcome.WRONG and answer.tries_left == 0
        )

    def pin_status(self, ref: PinRef) -> PinStatus:
        """One reference's status. Spends no try. :class:`NotSupported` if the card lacks it."""
        with self.session():
            return self._status(ref)

    def pin_statuses(self) -> tuple[PinStatus, ...]:
        """The status of every reference the card has, in :class:`PinRef` order."""
        found: list[PinStatus] = []
        with self.session():
            for ref in PinRef:
                try:
                    found.append(self._status(ref))
                except NotSupported:
                    continue
        return tuple(found)

    # --- the guarded PIN operation ------------------------------------------

    def _refuse(self, ref: PinRef, answer: PinAnswer, *, counted: PinRef) -> None:
        """Raise the error for a non-OK answer to a command whose secret is ``counted``."""
        outcome = answer.outcome
        tries = answer.tries_left
        if outcome is PinOutcome.WRONG and tries:
            _log.debug("%s refused, %s", counted.name, tries_left_text(tries))
            raise WrongPin(tries, f"wrong {counted.name}, {tries_left_text(tries)}")
        if outcome in (PinOutcome.WRONG, PinOutcome.BLOCKED):
            _log.debug("%s blocked", counted.name)
            if counted is PinRef.PUK:
                self._verified.discard(PinRef.PIN)  # the card blocks the PIN for good
                raise CardDead("the PUK is exhausted: the card can no longer be used with a PIN")
            raise PinBlocked(f"the {counted.name} is blocked")
        if outcome is PinOutcome.NOT_USABLE:
            if ref is PinRef.SPIN and counted is PinRef.SPIN:
                raise TransportPinActive("the signing PIN is in transport state: activate it first")
            raise PinDisabled(f"the {counted.name} can no longer be used")
        raise NotSupported(f"this card has no {counted.name}")

    def _guarded(
        self,
        counted: PinRef,
        command: Callable[[], PinAnswer],
        *,
        ref: PinRef,
        confirm_last_try: bool,
    ) -> None:
        """The one guarded PIN operation, inside an open session, for host and PIN-pad entry.

        1. the status of ``counted``, the reference whose tries the command
           spends (read without spending a try);
        2. :func:`~pkcard.pin.require_usable` and
           :func:`~pkcard.pin.guard_last_try` on it (the pure pre-checks
           pkpin runs too);
        3. ``command``, the driver call that presents the secret(s);
        4. a refusal raises the typed error for ``ref``, the reference the
           operation is about.

        A refusal always drops ``counted`` from :attr:`verified`: the card
        drops a reference's verified state when its secret is refused
        (docs/card-profile.md), whoever typed it.
        """
        status = self._status(counted)
        require_usable(status)
        guard_last_try(status, confirm_last_try=confirm_last_try)
        answer = command()
        if answer.outcome is not PinOutcome.OK:
            self._verified.discard(counted)
            self._refuse(ref, answer, counted=counted)

    def _signature(self, digest: bytes) -> bytes:
        """COMPUTE DIGITAL SIGNATURE right after the SPIN's verification; consumes the SPIN."""
        try:
            return self._driver.compute_signature(digest)
        except KeyNotFound:
            raise NotSupported("this card has no KPEP signing key") from None
        finally:
            self._verified.discard(PinRef.SPIN)  # sole control: consumed

    # --- PIN operations ----------------------------------------------------
    #
    # Each takes the secrets typed on the host, or (the *_on_pad variants, or a
    # :class:`~pkcard.pin.PadEntry`) has the holder type them on the reader's
    # PIN pad. Both run the same guards (:meth:`_guarded`). The PIN policy
    # cannot run on the host for a pad entry: the new value never reaches it;
    # the card still checks length and digits.

    def _verify_command(self, ref: PinRef, secret: PinEntry) -> Callable[[], PinAnswer]:
        if isinstance(secret, PadEntry):
            if ref not in _PAD_REFS:
                raise NotSupported(f"the {ref.name} cannot be typed on a PIN pad")
            return lambda: self._driver.verify_on_pad(ref)
        if ref not in _DIRECT_REFS:
            raise NotSupported(f"the {ref.name} is not verified on its own")
        check_presented(secret, PIN_FORMATS[ref])
        return lambda: self._driver.verify(ref, secret)

    def verify(self, ref: PinRef, secret: PinEntry, *, confirm_last_try: bool = False) -> PinStatus:
        """Present ``secret`` for ``ref`` (PIN, SPIN or REACTIVATION).

        With a :class:`~pkcard.pin.PadEntry` the holder types it on the reader's
        PIN pad (PIN or SPIN only).
        """
        command = self._verify_command(ref, secret)
        with self.session():
            self._guarded(ref, command, ref=ref, confirm_last_try=confirm_last_try)
        self._verified.add(ref)
        _log.debug("%s verified%s", ref.name, _on_pad_text(secret))
        max_tries = PIN_FORMATS[ref].max_tries
        return PinStatus(ref, PinState.VERIFIED, max_tries, max_tries)

    def verify_on_pad(self, ref: PinRef, *, confirm_last_try: bool = False) -> PinStatus:
        """Verify the PIN or SPIN typed on the reader's PIN pad."""
        return self.verify(ref, PadEntry(), confirm_last_try=confirm_last_try)

    def present_reactivation_password(
        self, password: Secret, *, confirm_last_try: bool = False
    ) -> PinStatus:
        """Present the reactivation password (reference 85) for the backend flow."""
        return self.verify(PinRef.REACTIVATION, password, confirm_last_try=confirm_last_try)

    def _check_new(
        self, presented: Secret, presented_ref: PinRef, new: Secret, target: PinRef, *,
        same_as_old: bool,
    ) -> None:
        """Refuse a malformed presented secret, then a new value the PIN policy refuses.

        ``same_as_old``: the new value may not equal the presented one (SAME_AS_OLD).
        """
        check_presented(presented, PIN_FORMATS[presented_ref])
        check_new_pin(
            new,
            PIN_FORMATS[target],
            birth_date=self._holder_birth_date(),
            old=presented if same_as_old else None,
        )

    def _set(
        self, counted: PinRef, ref: PinRef, command: Callable[[], PinAnswer], *,
        confirm_last_try: bool,
    ) -> PinStatus:
        """One session: the guarded ``command`` that sets ``ref`` with ``counted``'s secret.

        Returns ``ref``'s status afterwards. Signature activation (the TPIN) runs
        only from transport state.
        """
        with self.session():
            if counted is PinRef.TPIN:
                require_transport(self._status(PinRef.SPIN))
            self._guarded(counted, command, ref=ref, confirm_last_try=confirm_last_try)
            _log.debug("%s set with the %s", ref.name, counted.name)
            return self._status(ref)

    def change(
        self, ref: PinRef, old: Secret, new: Secret, *, confirm_last_try: bool = False
    ) -> PinStatus:
        """Change the PIN, SPIN or password. The new value must pass the PIN policy."""
        if ref not in _DIRECT_REFS:
            raise NotSupported(f"the {ref.name} cannot be changed")
        self._check_new(old, ref, new, ref, same_as_old=True)
        return self._set(
            ref,
            ref,
            lambda: self._driver.change_reference_data(ref, old, new),
            confirm_last_try=confirm_last_try,
        )

    def change_on_pad(self, ref: PinRef, *, confirm_last_try: bool = False) -> PinStatus:
        """Change the PIN or SPIN; old and new (twice) typed on the reader's PIN pad."""
        if ref not in _PAD_REFS:
            raise NotSupported(f"the {ref.name} cannot be typed on a PIN pad")
        return self._set(
            ref,
            ref,
            lambda: self._driver.change_reference_data_on_pad(ref),
            confirm_last_try=confirm_last_try,
        )

    def unblock(self, puk: Secret, new_pin: Secret, *, confirm_last_try: bool = False) -> PinStatus:
        """Set a new PIN with the PUK (resets both counters). Returns the PIN's status."""
        self._check_new(puk, PinRef.PUK, new_pin, PinRef.PIN, same_as_old=False)
        return self._set(
            PinRef.PUK,
            PinRef.PIN,
            lambda: self._driver.reset_retry_counter(puk, new_pin),
            confirm_last_try=confirm_last_try,
        )

    def unblock_on_pad(self, *, confirm_last_try: bool = False) -> PinStatus:
        """Set a new PIN with the PUK, both typed on the reader's PIN pad."""
        return self._set(
            PinRef.PUK,
            PinRef.PIN,
            self._driver.reset_retry_counter_on_pad,
            confirm_last_try=confirm_last_try,
        )

    def activate_signature(
        self, tpin: Secret, new_spin: Secret, *, confirm_last_try: bool = False
    ) -> PinStatus:
        """Leave transport state: set the first SPIN with the TPIN. Returns the SPIN's status.

        The new SPIN must pass the PIN policy and differ from the TPIN.
        """
        self._check_new(tpin, PinRef.TPIN, new_spin, PinRef.SPIN, same_as_old=True)
        return self._set(
            PinRef.TPIN,
            PinRef.SPIN,
            lambda: self._driver.activate_signature(tpin, new_spin),
            confirm_last_try=confirm_last_try,
        )

    def activate_signature_on_pad(self, *, confirm_last_try: bool = False) -> PinStatus:
        """Leave transport state with the TPIN and the first SPIN typed on the PIN pad."""
        return self._set(
            PinRef.TPIN,
            PinRef.SPIN,
            self._driver.activate_signature_on_pad,
            confirm_last_try=confirm_last_try,
        )

    # --- keys --------------------------------------------------------------

    def sign(self, digest: bytes, spin: PinEntry, *, confirm_last_try: bool = False) -> bytes:
        """A KPEP signature (PKCS#1 v1.5) over a SHA-256 ``digest``; the SPIN each time.

        With a :class:`~pkcard.pin.PadEntry` the holder types the SPIN on the
        reader's PIN pad.
        """
        _check_digest(digest)
        command = self._verify_command(PinRef.SPIN, spin)
        with self.session():
            self._guarded(PinRef.SPIN, command, ref=PinRef.SPIN, confirm_last_try=confirm_last_try)
            return self._signature(digest)

    def sign_on_pad(self, digest: bytes, *, confirm_last_try: bool = False) -> bytes:
        """A KPEP signature with the SPIN typed on the reader's PIN pad."""
        return self.sign(digest, PadEntry(), confirm_last_try=confirm_last_try)

    def authenticate(self, digest: bytes) -> bytes:
        """Sign a SHA-256 ``digest`` with the authentication key (ES256 raw or PS256).

        Needs the PIN verified in this card session:
        :class:`~pkcard.errors.KeyNeedsPin` otherwise (from an APDU card its
        subclass :class:`~pkcard.errors.SecurityStatusNotSatisfied`).
        """
        _check_digest(digest)
        with self.session():
            try:
                return self._driver.internal_authenticate(digest)
            except KeyNeedsPin:
                self._verified.discard(PinRef.PIN)
                raise
