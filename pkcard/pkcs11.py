"""A :class:`~pkcard.pk_driver.PkDriver` (and a KZZ driver) over a PKCS#11 module (PyKCS11).

Real PKs are used through the card maker's PKCS#11 module; this driver makes
:class:`~pkcard.pk.ProfessionalCard` (the PIN rules, the last-try guard, the
typed errors) work over any such module. It is tested against SoftHSM2.

The PK's references map onto PKCS#11 like this (docs/pkcs11.md has the
table and what each backend can model):

* the **card token** (matched by :class:`TokenSelector`): user PIN = PIN,
  SO PIN = PUK; key and certificate ``CKA_ID`` 01 / label ``auth``;
* the **signature token** (a second token or virtual slot, as IDPrime
  modules expose the signature PIN): user PIN = SPIN; while its user PIN
  is flagged ``CKF_USER_PIN_TO_BE_CHANGED`` the current value is the TPIN
  (transport state); key and certificate ``CKA_ID`` 02 / label ``sign``;
* EF.CardInfo and EF.Holder: public ``CKO_DATA`` objects of application
  ``pkcard`` on the card token, labelled ``EF.CardInfo`` / ``EF.Holder``,
  holding the bytes docs/card-profile.md defines;
* the reactivation password has no PKCS#11 equivalent (``NOT_FOUND``).

Keys and certificates are found by that ``CKA_ID``, else that label, else by
the certificate's key usage (a card maker's module names objects its own way).
:class:`Pkcs11KzzDriver` serves a KZZ token the same way (EF.CardInfo and
EF.Insured objects, a public authentication key).

PKCS#11 exposes no try counter, only flags: :class:`PinFlags` turns them into
a :class:`~pkcard.pk_driver.PinAnswer`. Secrets go to the module as bytes and are
never logged; PyKCS11 errors carry only a return code.

The driver does not own the module: a :class:`Pkcs11Module` is loaded and
closed by its owner, and may serve several drivers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509

try:
    import PyKCS11
except ImportError as _missing:  # the optional extra: say which one to install
    from pkcard.pkcs11_select import missing_pkcs11

    raise missing_pkcs11() from _missing

from pkcard.cardinfo import (
    CardInfo,
    IssuedKind,
    parse_card_info,
)
from pkcard.errors import (
    CardRemoved,
    CardReset,
    FormatError,
    KeyNeedsPin,
    KeyNotFound,
    MalformedPin,
    NotSupported,
    PinPadCancelled,
    PkcardError,
    TransportError,
    WrongCardKind,
)
from pkcard.kzz_driver import InsuredPerson, KzzDriver, parse_insured
from pkcard.pin import PIN_FORMATS, PinRef
from pkcard.pk_driver import KeySlot, PinAnswer, PinOutcome, PkDriver, PkHolder, parse_holder
from pkcard.pkcs11_select import TokenSelector
from pkcard.secret import Secret

__all__ = [
    "DATA_APPLICATION",
    "KeyId",
    "PinFlags",
    "Pkcs11Module",
    "Pkcs11KzzDriver",
    "Pkcs11PkDriver",
    "Pkcs11Serialised",
    "Pkcs11Token",
    "TokenInfo",
    "TokenSelector",
    "digest_info_sha256",
    "key_usage",
    "rsa_pss_sha256",
]

DATA_APPLICATION = "pkcard"
LABEL_CARD_INFO = "EF.CardInfo"
LABEL_HOLDER = "EF.Holder"
_SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
_SHA256_LENGTH = 32
_PSS_SALT = 32


class KeyId(IntEnum):
    """``CKA_ID`` of the PK's keys and certificates (the profile's key refs)."""

    AUTH = 0x01
    SIGN = 0x02

    @property
    def label(self) -> str:
        return "auth" if self is KeyId.AUTH else "sign"


def digest_info_sha256(digest: bytes) -> bytes:
    """The DER DigestInfo of a SHA-256 hash, as RSASSA-PKCS1-v1_5 signs it."""
    if len(digest) != _SHA256_LENGTH:
        raise FormatError("the hash must be a 32-byte SHA-256 digest")
    return _SHA256_DIGEST_INFO_PREFIX + digest


# --- flags ------------------------------------------------------------------------


@dataclass(frozen=True)
class PinFlags:
    """The PIN flags of CK_TOKEN_INFO for one PIN (the user PIN or the SO PIN)."""

    count_low: bool = False
    final_try: bool = False
    locked: bool = False
    to_be_changed: bool = False

    @classmethod
    def user(cls, flags: int) -> PinFlags:
        return cls(
            count_low=bool(flags & PyKCS11.CKF_USER_PIN_COUNT_LOW),
            final_try=bool(flags & PyKCS11.CKF_USER_PIN_FINAL_TRY),
            locked=bool(flags & PyKCS11.CKF_USER_PIN_LOCKED),
            to_be_changed=bool(flags & PyKCS11.CKF_USER_PIN_TO_BE_CHANGED),
        )

    @classmethod
    def so(cls, flags: int) -> PinFlags:
        return cls(
            count_low=bool(flags & PyKCS11.CKF_SO_PIN_COUNT_LOW),
            final_try=bool(flags & PyKCS11.CKF_SO_PIN_FINAL_TRY),
            locked=bool(flags & PyKCS11.CKF_SO_PIN_LOCKED),
            to_be_changed=bool(flags & PyKCS11.CKF_SO_PIN_TO_BE_CHANGED),
        )

    def answer(self, max_tries: int) -> PinAnswer:
        """The answer of a status read for a PIN that is not logged in.

        PKCS#11 has no counter: locked is blocked, final try is 1 left, count
        low is ``max_tries - 1`` (an upper bound: at least one try failed),
        and no flag is ``max_tries``.
        """
        if self.locked:
            return PinAnswer(PinOutcome.BLOCKED)
        if self.final_try:
            return PinAnswer(PinOutcome.WRONG, 1)
        if self.count_low:
            return PinAnswer(PinOutcome.WRONG, max(1, max_tries - 1))
        return PinAnswer(PinOutcome.WRONG, max_tries)


# --- the module and its tokens --------------------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    """One slot with a token, as the module lists it."""

    slot: int
    slot_description: str
    label: str
    serial: str
    manufacturer: str
    model: str
    flags: int

    @property
    def protected_authentication_path(self) -> bool:
        """The reader has a PIN pad: log in with no PIN, the holder types it there."""
        return bool(self.flags & PyKCS11.CKF_PROTECTED_AUTHENTICATION_PATH)


def _text(raw: object) -> str:
    return str(raw).rstrip(" \x00")


def _module_error(exc: PyKCS11.PyKCS11Error) -> PkcardError:
    """The pkcard error for a PKCS#11 return code (no secret is ever in it)."""
    code = int(exc.value)
    name = PyKCS11.CKR.get(code, f"CKR 0x{code:08X}")
    if code in (
        PyKCS11.CKR_TOKEN_NOT_PRESENT,
        PyKCS11.CKR_DEVICE_REMOVED,
        PyKCS11.CKR_TOKEN_NOT_RECOGNIZED,
        PyKCS11.CKR_SLOT_ID_INVALID,
    ):
        return CardRemoved(f"the token left its slot ({name})")
    if code in (PyKCS11.CKR_SESSION_HANDLE_INVALID, PyKCS11.CKR_SESSION_CLOSED):
        return CardReset(f"the token session was lost ({name})")
    if code == PyKCS11.CKR_USER_NOT_LOGGED_IN:
        return KeyNeedsPin(f"the key needs its PIN ({name})")
    if code in (PyKCS11.CKR_PIN_LEN_RANGE, PyKCS11.CKR_PIN_INVALID):
        return MalformedPin(f"the token refused the secret's format ({name})")
    if code == PyKCS11.CKR_FUNCTION_CANCELED:
        return PinPadCancelled(f"PIN entry cancelled ({name})")
    if code in (PyKCS11.CKR_MECHANISM_INVALID, PyKCS11.CKR_KEY_TYPE_INCONSISTENT):
        return NotSupported(f"the token cannot sign this way ({name})")
    return TransportError(f"the PKCS#11 module failed ({name})")


class Pkcs11Module:
    """A loaded PKCS#11 module. Load with :meth:`load`; :meth:`close` unloads it.

    PyKCS11 initialises a module once per process and path: the module reads
    its configuration (SoftHSM2: ``SOFTHSM2_CONF``) when the first owner loads
    it, and finalises when the last owner closes it.
    """

    def __init__(self, lib: Any, path: Path) -> None:
        self._lib = lib
        self._path = path

    @classmethod
    def load(cls, path: str | Path) -> Pkcs11Module:
        module_path = Path(path)
        lib = PyKCS11.PyKCS11Lib()
        try:
            lib.load(str(module_path))
        except PyKCS11.PyKCS11Error as exc:
            raise TransportError(f"cannot load PKCS#11 module {module_path.name}") from exc
        return cls(lib, module_path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def lib(self) -> Any:
        """The PyKCS11 library object (for tools and benchmarks)."""
        return self._lib

    def tokens(self) -> tuple[TokenInfo, ...]:
        """Every slot with a token present."""
        try:
            found: list[TokenInfo] = []
            for slot in self._lib.getSlotList(tokenPresent=True):
                info = self._lib.getTokenInfo(slot)
                found.append(
                    TokenInfo(
                        slot=int(slot),
                        slot_description=_text(self._lib.getSlotInfo(slot).slotDescription),
                        label=_text(info.label),
                        serial=_text(info.serialNumber),
                        manufacturer=_text(info.manufacturerID),
                        model=_text(info.model),
                        flags=int(info.flags),
                    )
                )
        except PyKCS11.PyKCS11Error as exc:
            raise _module_error(exc) from None
        return tuple(found)

    def find(self, selector: TokenSelector) -> TokenInfo:
        """The one token ``selector`` matches; :class:`CardRemoved` if none."""
        matches = [t for t in self.tokens() if selector.matches(t)]
        if not matches:
            raise CardRemoved("no PKCS#11 token matches the configured card")
        if len(matches) > 1:
            raise WrongCardKind("more than one PKCS#11 token matches the configured card")
        return matches[0]

    def token_flags(self, slot: int) -> int:
        try:
            return int(self._lib.getTokenInfo(slot).flags)
        except PyKCS11.PyKCS11Error as exc:
            raise _module_error(exc) from None

    def token_present(self, slot: int) -> bool:
        """Whether ``slot`` holds a token now (C_GetSlotInfo: modules such as OpenSC
        look at the reader here, and close the sessions of a card that changed)."""
        try:
            flags = int(self._lib.getSlotInfo(slot).flags)
        except PyKCS11.PyKCS11Error as exc:
            raise _module_error(exc) from None
        return bool(flags & PyKCS11.CKF_TOKEN_PRESENT)

    def open_session(self, slot: int) -> Any:
        try:
            return self._lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
        except PyKCS11.PyKCS11Error as exc:
            raise _module_error(exc) from None

    def close(self) -> None:
        self._lib.unload()

    def __enter__(self) -> Pkcs11Module:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- one token, one session ---------------------------------------------------------------


class Pkcs11Token:
    """One token of the card and the driver's session on it.

    What the session has read is kept with it (:meth:`cached`): the slot
    found, key types, and public objects' values (EF.CardInfo, EF.Holder,
    certificates). A token pulled, reset or swapped closes the session, so
    the next use of the cache checks the slot (C_GetSlotInfo, where OpenSC
    notices a changed card) and the session (C_GetSessionInfo, the slot
    included) first, and a lost session drops the cache with it
    (:class:`CardReset` / :class:`CardRemoved`, as without the cache).
    Nothing private is cached: no secret, and no private key handle (they
    go with each C_Logout).

    Inside the driver's transaction (:meth:`hold` .. :meth:`release`, one
    operation such as a signature) the slot and session are checked once, at
    the first use, and the token's flags (C_GetTokenInfo) are read once until
    a PIN operation (login, logout, PIN change) changes them; outside a
    transaction every use checks and reads again.
    """

    def __init__(self, module: Pkcs11Module, selector: TokenSelector) -> None:
        self._module = module
        self._selector = selector
        self._info: TokenInfo | None = None
        self._session: Any = None
        self._key_types: dict[KeyId, int] = {}  # per session: a new card may differ
        self._values: dict[tuple[object, ...], bytes | None] = {}  # per session, public only
        self._held = False  # inside the driver's transaction
        self._checked = False  # the session was checked in this transaction
        self._flags: int | None = None  # read in this transaction, since the last PIN operation
        self._card_info: tuple[bytes, CardInfo] | None = None  # EF.CardInfo's bytes, parsed

    def hold(self) -> None:
        """The driver's transaction starts: check the session once, read the flags once."""
        self._held, self._checked, self._flags = True, False, None

    def release(self) -> None:
        """The driver's transaction ended: check and read on every use again."""
        self._held, self._checked, self._flags = False, False, None

    @property
    def info(self) -> TokenInfo:
        if self._info is None:
            self.open()
        info = self._info
        if info is None:
            raise CardRemoved("the token is not open")
        return info

    def open(self) -> None:
        """Find the token and open a session, unless the session is alive."""
        if self._session is not None:
            if self._checked:
                return  # checked earlier in this transaction
            if self._info is not None and not self._module.token_present(self._info.slot):
                self._drop()
                raise CardRemoved("the token left its slot")
            try:
                slot = self._session.getSessionInfo().slotID
            except PyKCS11.PyKCS11Error as exc:
                self._drop()
                error = _module_error(exc)
                if isinstance(error, CardRemoved):
                    raise error from None
                raise CardReset("the token session was lost: verified states are gone") from None
            if self._info is not None and int(slot) != self._info.slot:
                self._drop()  # the handle now names another slot's session: ours is gone
                raise CardReset("the token session was lost: verified states are gone")
            self._checked = self._held
            return
        self._drop()
        self._info = self._module.find(self._selector)
        self._session = self._module.open_session(self._info.slot)
        self._checked = self._held

    def _drop(self) -> None:
        """Forget the session and everything read through it."""
        self._session = None
        self._checked = False
        self._flags = None
        self._card_info = None
        self._key_types.clear()
        self._values.clear()

    def cached(self, key: tuple[object, ...], read: Callable[[], bytes | None]) -> bytes | None:
        """``read()`` once per session: public object values only (``key`` names one)."""
        self.open()  # a lost session raises here and takes the cache with it
        if key not in self._values:
            self._values[key] = read()
        return self._values[key]

    @property
    def session(self) -> Any:
        if self._session is None:
            self.open()
        return self._session

    def close(self) -> None:
        session = self._session
        self._drop()
        if session is not None:
            with suppress(PyKCS11.PyKCS11Error):  # the token went away: nothing to close
                session.closeSession()

    def flags(self) -> int:
        """CK_TOKEN_INFO's flags (once per transaction until a PIN operation)."""
        if self._flags is not None:
            return self._flags
        flags = self._module.token_flags(self.info.slot)
        if self._held:
            self._flags = flags
        return flags

    def logged_in(self) -> bool:
        state = self._call(lambda s: s.getSessionInfo().state)
        return int(state) in (PyKCS11.CKS_RO_USER_FUNCTIONS, PyKCS11.CKS_RW_USER_FUNCTIONS)

    def logout(self) -> None:
        self._flags = None
        try:
            self.session.logout()
        except PyKCS11.PyKCS11Error as exc:
            if exc.value != PyKCS11.CKR_USER_NOT_LOGGED_IN:
                raise _module_error(exc) from None

    def _call(self, operation: Any) -> Any:
        try:
            return operation(self.session)
        except PyKCS11.PyKCS11Error as exc:
            error = _module_error(exc)
            if isinstance(error, CardReset | CardRemoved):
                self._drop()
            raise error from None

    def login(self, secret: Secret | None, user_type: int) -> int:
        """C_Login; returns CKR_OK or the PIN-related return code. ``None``: PIN pad."""
        self.logout()  # a logged-in user would make C_Login answer ALREADY_LOGGED_IN
        self._flags = None
        try:
            self.session.login(None if secret is None else secret.reveal(), user_type)
        except PyKCS11.PyKCS11Error as exc:
            return self._pin_code(exc)
        return int(PyKCS11.CKR_OK)

    def set_pin(self, old: Secret, new: Secret) -> int:
        self._flags = None
        try:
            self.session.setPin(old.reveal(), new.reveal())
        except PyKCS11.PyKCS11Error as exc:
            return self._pin_code(exc)
        return int(PyKCS11.CKR_OK)

    def init_pin(self, new: Secret) -> int:
        """C_InitPIN; CKR_OK or the PIN-related return code.

        OpenSC's C_Login(CKU_SO) only keeps the PUK, and its C_InitPIN sends
        RESET RETRY COUNTER with it: a wrong PUK is found here.
        """
        self._flags = None
        try:
            self.session.initPin(new.reveal())
        except PyKCS11.PyKCS11Error as exc:
            return self._pin_code(exc)
        return int(PyKCS11.CKR_OK)

    def _pin_code(self, exc: PyKCS11.PyKCS11Error) -> int:
        code = int(exc.value)
        if code in (PyKCS11.CKR_PIN_INCORRECT, PyKCS11.CKR_PIN_LOCKED, PyKCS11.CKR_PIN_EXPIRED):
            return code
        error = _module_error(exc)
        if isinstance(error, CardReset | CardRemoved):
            self._drop()
        raise error from None

    def find_one(self, template: list[tuple[int, Any]]) -> Any | None:
        found = self._call(lambda s: s.findObjects(template))
        return found[0] if found else None

    def value(self, handle: Any) -> bytes:
        values = self._call(lambda s: s.getAttributeValue(handle, [PyKCS11.CKA_VALUE], True))
        return bytes(values[0])

    def key_type(self, key: KeyId, handle: Any) -> int:
        """CKA_KEY_TYPE of ``key`` (read once per session)."""
        if key not in self._key_types:
            values = self._call(lambda s: s.getAttributeValue(handle, [PyKCS11.CKA_KEY_TYPE]))
            self._key_types[key] = int(values[0])
        return self._key_types[key]

    def sign(self, handle: Any, data: bytes, mechanism: Any) -> bytes:
        return bytes(self._call(lambda s: s.sign(handle, data, mechanism)))

    def card_info(self, kind: IssuedKind) -> CardInfo:
        """EF.CardInfo from its data object; :class:`WrongCardKind` for another ``kind``."""
        data = self.data_object(LABEL_CARD_INFO)  # checks the session: the bytes are its
        parsed = self._card_info
        if parsed is None or parsed[0] is not data:
            parsed = (data, parse_card_info(data))
            self._card_info = parsed  # parsed once per session, like the bytes
        info = parsed[1]
        if info.kind is not kind:
            raise WrongCardKind(f"EF.CardInfo says this is not a {kind.name}")
        return info

    def authenticate(self, key: KeyId, handle: Any, digest: bytes) -> bytes:
        """ECDSA (raw ``r || s``) or RSASSA-PSS (SHA-256, salt 32) over a SHA-256 hash."""
        if len(digest) != _SHA256_LENGTH:
            raise FormatError("the hash must be a 32-byte SHA-256 digest")
        key_type = self.key_type(key, handle)
        if key_type == PyKCS11.CKK_EC:
            return self.sign(handle, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA))
        if key_type == PyKCS11.CKK_RSA:
            return self.sign(handle, digest, rsa_pss_sha256())
        raise NotSupported("the authentication key is neither EC nor RSA")

    def data_object(self, label: str) -> bytes:
        """The value of the public ``pkcard`` data object ``label`` (EF.CardInfo, ...)."""
        def read() -> bytes | None:
            handle = self.find_one(
                [
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_DATA),
                    (PyKCS11.CKA_APPLICATION, DATA_APPLICATION),
                    (PyKCS11.CKA_LABEL, label),
                ]
            )
            return None if handle is None else self.value(handle)

        value = self.cached(("data", label), read)
        if value is None:
            raise NotSupported(f"the token carries no {label} data object")
        return value

    def find_key_object(self, key: KeyId, cls: int) -> Any | None:
        """The certificate or private key (``cls``) of ``key``: by ID, label or key usage.

        First ``CKA_ID`` = the profile's key reference (01 / 02), then
        ``CKA_LABEL`` = ``auth`` / ``sign``, then the ``CKA_ID`` of the token's
        certificate whose key usage fits (a card maker's module names its
        objects its own way): the authentication certificate has
        digitalSignature without nonRepudiation, the KPEP nonRepudiation.
        """
        for attribute, value in ((PyKCS11.CKA_ID, bytes([key])),
                                 (PyKCS11.CKA_LABEL, key.label)):
            handle = self.find_one([(PyKCS11.CKA_CLASS, cls), (attribute, value)])
            if handle is not None:
                return handle
        cka_id = self._id_by_usage(key)
        if cka_id is None:
            return None
        return self.find_one([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_ID, cka_id)])

    def certificate(self, key: KeyId) -> bytes | None:
        """The DER of ``key``'s certificate, or None when the token has none."""
        handle = self.find_key_object(key, PyKCS11.CKO_CERTIFICATE)
        return None if handle is None else self.value(handle)

    def private_key(self, key: KeyId) -> Any | None:
        """The handle of ``key``'s private key, or None when this session sees none."""
        return self.find_key_object(key, PyKCS11.CKO_PRIVATE_KEY)

    def _id_by_usage(self, key: KeyId) -> bytes | None:
        certificates = self._call(
            lambda s: s.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE)]))
        for handle in certificates:
            der, cka_id = self._call(lambda s, h=handle: s.getAttributeValue(
                h, [PyKCS11.CKA_VALUE, PyKCS11.CKA_ID], True))
            usage = key_usage(bytes(der))
            if usage is None or not cka_id:
                continue
            fits = usage.content_commitment if key is KeyId.SIGN else (
                usage.digital_signature and not usage.content_commitment)
            if fits:
                return bytes(cka_id)
        return None


def key_usage(der: bytes) -> x509.KeyUsage | None:
    """The certificate's key usage; None when it has none or cannot be parsed."""
    try:
        return x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.KeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return None


def _answer_for(code: int, flags: PinFlags, max_tries: int) -> PinAnswer:
    """The answer to a C_Login / C_SetPIN that did not succeed, from the flags after it."""
    if code == PyKCS11.CKR_OK:
        return PinAnswer(PinOutcome.OK)
    if code == PyKCS11.CKR_PIN_LOCKED or flags.locked:
        return PinAnswer(PinOutcome.BLOCKED)
    if code == PyKCS11.CKR_PIN_EXPIRED:
        return PinAnswer(PinOutcome.NOT_USABLE)
    return flags.answer(max_tries)


def rsa_pss_sha256() -> Any:
    return PyKCS11.RSA_PSS_Mechanism(
        PyKCS11.CKM_RSA_PKCS_PSS, PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256, _PSS_SALT
    )


# --- the driver ---------------------------------------------------------------------------


class Pkcs11Serialised:
    """One lock over a driver's operations: :meth:`transaction` (the module locks the token).

    The outermost transaction holds the driver's tokens (:meth:`Pkcs11Token.hold`):
    each checks its session once in it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # nested transactions of the thread holding the lock

    def _tokens(self) -> tuple[Pkcs11Token, ...]:
        return ()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                for token in self._tokens():
                    token.hold()
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    for token in self._tokens():
                        token.release()

    def transaction(self) -> AbstractContextManager[None]:
        """Serialises this driver's operations; the module locks the token itself."""
        return self._locked()


class Pkcs11PkDriver(Pkcs11Serialised, PkDriver):
    """:class:`~pkcard.pk_driver.PkDriver` over the tokens of a PKCS#11 module.

    ``card`` selects the card token (PIN, PUK, authentication key);
    ``signature`` the signature token (SPIN, KPEP key), or ``None`` for a PK
    without a KPEP. Call :meth:`close` to close the sessions.
    """

    def __init__(
        self,
        module: Pkcs11Module,
        card: TokenSelector,
        signature: TokenSelector | None = None,
    ) -> None:
        super().__init__()
        self._card = Pkcs11Token(module, card)
        self._signature = Pkcs11Token(module, signature) if signature is not None else None

    def _tokens(self) -> tuple[Pkcs11Token, ...]:
        return (self._card,) if self._signature is None else (self._card, self._signature)

    def close(self) -> None:
        with self._lock:
            self._card.close()
            if self._signature is not None:
                self._signature.close()

    # --- session ---------------------------------------------------------------

    def select(self) -> None:
        """Check the card token's session (the signature token opens when first used)."""
        self._card.open()

    # --- card data -------------------------------------------------------------

    def read_card_info(self) -> CardInfo:
        return self._card.card_info(IssuedKind.PK)

    def read_holder(self) -> PkHolder:
        return parse_holder(self._card.data_object(LABEL_HOLDER))

    def read_certificate(self, slot: KeySlot) -> bytes | None:
        key = KeyId.AUTH if slot is KeySlot.AUTHENTICATION else KeyId.SIGN
        tokens = [self._card] if key is KeyId.AUTH else [self._card, self._signature]
        for token in tokens:
            if token is None:
                continue
            found = token.cached(("certificate", key), partial(token.certificate, key))
            if found is not None:
                return found
        return None

    # --- PINs ------------------------------------------------------------------

    def pin_answer(self, ref: PinRef) -> PinAnswer:
        max_tries = PIN_FORMATS[ref].max_tries
        if ref is PinRef.PIN:
            if self._card.logged_in():
                return PinAnswer(PinOutcome.OK)
            return PinFlags.user(self._card.flags()).answer(max_tries)
        if ref is PinRef.PUK:
            return PinFlags.so(self._card.flags()).answer(max_tries)
        sign = self._signature
        if sign is None or ref is PinRef.REACTIVATION:
            return PinAnswer(PinOutcome.NOT_FOUND)
        flags = PinFlags.user(sign.flags())
        if ref is PinRef.TPIN:
            # The TPIN is the signature token's PIN while it is to be changed.
            return (
                flags.answer(max_tries) if flags.to_be_changed else PinAnswer(PinOutcome.NOT_USABLE)
            )
        if flags.to_be_changed:
            return PinAnswer(PinOutcome.NOT_USABLE)  # SPIN in transport state
        if sign.logged_in():
            return PinAnswer(PinOutcome.OK)
        return flags.answer(max_tries)

    def _token_for(self, ref: PinRef) -> Pkcs11Token:
        if ref is PinRef.PIN:
            return self._card
        if ref is PinRef.SPIN and self._signature is not None:
            return self._signature
        raise NotSupported(f"the {ref.name} has no PKCS#11 equivalent on this token")

    def _login(self, ref: PinRef, secret: Secret | None) -> PinAnswer:
        token = self._token_for(ref)
        if ref is PinRef.SPIN and PinFlags.user(token.flags()).to_be_changed:
            return PinAnswer(PinOutcome.NOT_USABLE)
        code = token.login(secret, PyKCS11.CKU_USER)
        if code == PyKCS11.CKR_OK:
            return PinAnswer(PinOutcome.OK)  # the flags only explain a refusal
        return _answer_for(code, PinFlags.user(token.flags()), PIN_FORMATS[ref].max_tries)

    def verify(self, ref: PinRef, secret: Secret) -> PinAnswer:
        return self._login(ref, secret)

    def verify_on_pad(self, ref: PinRef) -> PinAnswer:
        if not self._token_for(ref).info.protected_authentication_path:
            raise NotSupported("the token has no protected authentication path (PIN pad)")
        return self._login(ref, None)

    def change_reference_data(self, ref: PinRef, old: Secret, new: Secret) -> PinAnswer:
        token = self._token_for(ref)
        if ref is PinRef.SPIN and PinFlags.user(token.flags()).to_be_changed:
            return PinAnswer(PinOutcome.NOT_USABLE)
        code = token.set_pin(old, new)
        answer = _answer_for(code, PinFlags.user(token.flags()), PIN_FORMATS[ref].max_tries)
        if answer.outcome is PinOutcome.OK:
            # The profile leaves a changed reference verified; a login with the
            # value just set mirrors that and spends nothing.
            token.login(new, PyKCS11.CKU_USER)
        return answer

    def reset_retry_counter(self, puk: Secret, new_pin: Secret) -> PinAnswer:
        token = self._card
        code = token.login(puk, PyKCS11.CKU_SO)
        answer = _answer_for(code, PinFlags.so(token.flags()), PIN_FORMATS[PinRef.PUK].max_tries)
        if answer.outcome is not PinOutcome.OK:
            return answer
        try:
            code = token.init_pin(new_pin)
        finally:
            token.logout()
        return _answer_for(code, PinFlags.so(token.flags()), PIN_FORMATS[PinRef.PUK].max_tries)

    def activate_signature(self, tpin: Secret, new_spin: Secret) -> PinAnswer:
        token = self._signature
        if token is None:
            return PinAnswer(PinOutcome.NOT_FOUND)
        if not PinFlags.user(token.flags()).to_be_changed:
            return PinAnswer(PinOutcome.NOT_USABLE)  # the TPIN was used
        code = token.set_pin(tpin, new_spin)
        max_tries = PIN_FORMATS[PinRef.TPIN].max_tries
        answer = _answer_for(code, PinFlags.user(token.flags()), max_tries)
        token.logout()  # activation does not authorise a signature
        return answer

    # --- keys ------------------------------------------------------------------

    def _private_key(self, token: Pkcs11Token, key: KeyId) -> Any:
        handle = token.private_key(key)
        if handle is None:
            if not token.logged_in():
                # Private objects are invisible before C_Login.
                raise KeyNeedsPin("the key needs its PIN")
            raise KeyNotFound(f"no {key.label} key on the token")
        return handle

    def internal_authenticate(self, digest: bytes) -> bytes:
        """ECDSA (raw ``r || s``) or RSASSA-PSS (SHA-256, salt 32) over the hash."""
        if len(digest) != _SHA256_LENGTH:
            raise FormatError("the hash must be a 32-byte SHA-256 digest")
        handle = self._private_key(self._card, KeyId.AUTH)
        return self._card.authenticate(KeyId.AUTH, handle, digest)

    def compute_signature(self, digest: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 (CKM_RSA_PKCS over the DigestInfo); consumes the SPIN."""
        token = self._signature
        if token is None:
            raise KeyNotFound("this card has no signature token")
        data = digest_info_sha256(digest)
        try:
            handle = self._private_key(token, KeyId.SIGN)
            return token.sign(handle, data, PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS))
        finally:
            token.logout()  # sole control: the SPIN is consumed by each signature


# --- the KZZ ---------------------------------------------------------------------------

LABEL_INSURED = "EF.Insured"


class Pkcs11KzzDriver(Pkcs11Serialised, KzzDriver):
    """:class:`~pkcard.kzz_driver.KzzDriver` over the token ``card`` of a PKCS#11 module.

    Where a module exposes a health insurance card (KZZ) as a token, this lets
    :class:`~pkcard.kzz.HealthInsuranceCard` read it and sign the proof of
    presence as over APDUs. The token carries EF.CardInfo and EF.Insured as
    public ``pkcard`` data objects and the card authentication certificate and
    key, found by ID, label or key usage (:meth:`Pkcs11Token.find_key_object`).
    The KZZ has no secret: the key is a public object (``CKA_PRIVATE`` false),
    used without C_Login; it signs with CKM_ECDSA (raw ``r || s``) or
    RSASSA-PSS. Call :meth:`close` to close the session; the module stays its
    owner's.
    """

    def __init__(self, module: Pkcs11Module, card: TokenSelector) -> None:
        super().__init__()
        self._card = Pkcs11Token(module, card)

    def _tokens(self) -> tuple[Pkcs11Token, ...]:
        return (self._card,)

    def close(self) -> None:
        with self._lock:
            self._card.close()

    def select(self) -> None:
        self._card.open()

    def read_card_info(self) -> CardInfo:
        return self._card.card_info(IssuedKind.KZZ)

    def read_insured(self) -> InsuredPerson:
        return parse_insured(self._card.data_object(LABEL_INSURED))

    def read_certificate(self) -> bytes:
        der = self._card.certificate(KeyId.AUTH)
        if der is None:
            raise FormatError("the KZZ token has no authentication certificate")
        return der

    def internal_authenticate(self, digest: bytes) -> bytes:
        handle = self._card.private_key(KeyId.AUTH)
        if handle is None:
            raise NotSupported("the module exposes no authentication key of this KZZ")
        return self._card.authenticate(KeyId.AUTH, handle, digest)
