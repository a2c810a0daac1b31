"""The one typed error tree of pkcard.

Every layer raises these and nothing else: the APDU and TLV codecs, the
protocol layer, the PC/SC bridge (which maps PC/SC return codes here), the
card applications and the PIN policy. The daemon maps them to gRPC status
codes in exactly one place, and the CLI words them for people in exactly one
place.

No error text ever carries a secret or an APDU body: messages name rules,
references and counts, never values.
"""

from __future__ import annotations

from enum import IntEnum


class PkcardError(Exception):
    """Base class of every error pkcard raises on purpose."""


def tries_left_text(count: int) -> str:
    """``1 try left``, ``2 tries left``: the count in English with its plural right."""
    return f"{count} try left" if count == 1 else f"{count} tries left"


# --- malformed input -------------------------------------------------------


class FormatError(PkcardError, ValueError):
    """Bytes that do not parse: a malformed APDU, TLV, transcript line or token."""


class ApduFormatError(FormatError):
    """A command or response APDU that violates ISO 7816-4 encoding."""


class TlvError(FormatError):
    """BER-TLV that is truncated, overlong or otherwise malformed."""


class CertificateError(FormatError):
    """A certificate whose DER, names, extensions, serial, validity or key do not parse."""


class ProfileError(FormatError):
    """A simulated card profile (fixtures/apdu/profiles) that is missing or contradicts the spec."""


class TranscriptMismatch(FormatError):
    """A replayed host sent a command the transcript does not have at that point."""


# --- the transport (reader, PC/SC service, card presence) ------------------


class TransportError(PkcardError):
    """The path to the card failed; the card itself said nothing."""


class CardRemoved(TransportError):
    """The card left the reader (or was never there)."""


class CardReset(TransportError):
    """Another party reset the card. Every verified PIN state is gone."""


class NoService(TransportError):
    """The PC/SC service is not running or is restarting."""


class ReaderNotFound(TransportError):
    """No reader of that name is known (unplugged, or never existed)."""


class ReaderBusy(TransportError):
    """Another process holds the reader or card exclusively."""


class TransportTimeout(TransportError):
    """The card or reader did not answer within the allowed time."""


# --- the protocol layer -----------------------------------------------------


class ProtocolError(PkcardError):
    """The card's answers broke the rules of ISO 7816-4 framing.

    For example a response shorter than two bytes, a 61xx chain longer than
    the protocol layer's bound, or a 6Cxx that does not settle on resend.
    """


class ApduError(PkcardError):
    """The card answered with a status word the caller did not expect."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.sw = sw
        super().__init__(message or f"card returned status word {sw:04X}")


class FileNotFound(ApduError):
    """6A82: file or application not found."""


class ConditionsNotSatisfied(ApduError):
    """6985: conditions of use not satisfied."""


class VerificationFailed(ApduError):
    """63Cx: the card refused a secret or counter check; ``retries_left`` (x) remain.

    Raised by the protocol layer, which does not know what the secret was.
    The card applications map it to :class:`WrongPin` for PIN references.
    """

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.retries_left = sw & 0x0F
        super().__init__(
            sw, message or f"card returned {sw:04X}: verification failed, {self.retries_left} left"
        )


class AuthMethodBlocked(ApduError):
    """6983: the referenced secret or key is blocked. Apps map it to :class:`PinBlocked`."""


class ReferenceDataNotUsable(ApduError):
    """6984: referenced data not usable (for example a secret in transport state)."""


class ReferenceNotFound(ApduError):
    """6A88: referenced data (secret, key or data object) not found."""


class WrongLength(ApduError):
    """6700: wrong Lc or Le."""


class WrongData(ApduError):
    """6A80: incorrect parameters in the command data field."""


class CommandNotAllowed(ApduError):
    """6986: command not allowed (no current EF, or the EF does not allow it)."""


class IncorrectParameters(ApduError):
    """6A86 or 6B00: wrong P1/P2 (6B00: an offset beyond the end of the file)."""


class InsNotSupported(ApduError):
    """6D00: instruction code not supported or invalid."""


class ClaNotSupported(ApduError):
    """6E00: class not supported."""


# --- PINs and other secrets -------------------------------------------------


class PinError(PkcardError):
    """Base of every error about a PIN-like secret (PIN, PUK, SPIN, TPIN, password)."""


class WrongPin(PinError):
    """The card refused the secret; ``tries_left`` tries remain."""

    def __init__(self, tries_left: int, message: str | None = None) -> None:
        self.tries_left = tries_left
        super().__init__(message or f"wrong PIN, {tries_left_text(tries_left)}")


class PinBlocked(PinError):
    """The secret's try counter is exhausted (6983). A PIN can be unblocked with the PUK."""

    tries_left = 0


class CardDead(PinBlocked):
    """The PUK is exhausted too: the card can no longer be used with a PIN."""


class TransportPinActive(PinError):
    """The signing PIN is still in transport state: activate it with the TPIN first."""


class PinDisabled(PinError):
    """The reference can never be used again (6984): the TPIN after signature activation."""

    tries_left = 0


class LastTryNotConfirmed(PinError):
    """Only one try is left and the caller did not pass ``confirm_last_try``."""

    def __init__(self, tries_left: int = 1) -> None:
        self.tries_left = tries_left
        super().__init__("only one try is left; confirm the last try to proceed")


class PinPadError(PinError):
    """The PIN-pad reader failed or refused a secure PIN entry. The card spent no try."""


class PinPadTimeout(PinPadError):
    """Reader answer 6400: nobody typed the PIN on the reader in time."""


class PinPadCancelled(PinPadError):
    """Reader answer 6401: the holder pressed Cancel on the reader."""


class PinPadWrongLength(PinPadError):
    """Reader answer 6403: the PIN typed on the reader was too short or too long."""


class HostPinEntryRefused(PinError):
    """A secret was sent from the host for a reader with a PIN pad, and policy forbids it.

    Type the PIN on the reader instead (send no secret), or enable host entry
    in the daemon's configuration (``allow_host_pin_entry``).
    """


class MalformedPin(PinError, ValueError):
    """The secret is empty, has the wrong length or holds non-digits.

    Raised before any APDU is sent, so it never spends a try.
    """


class PinRule(IntEnum):
    """A rule of the PIN policy. A refusal names the rule, never the PIN."""

    DIGITS_ONLY = 1
    LENGTH = 2
    SEQUENCE = 3
    REPEATED = 4
    DATE = 5
    BIRTH_DATE = 6
    SAME_AS_OLD = 7
    CONFIRMATION_MISMATCH = 8
    YEAR = 9  # a 4-digit year 1900-2099
    REPEATED_GROUP = 10  # 1212, 123123, 1122
    MIRRORED = 11  # 1221, 123321
    STEP = 12  # 2468, 102030
    KEYPAD = 13  # 2580, 159753, 1254
    COMMON = 14  # in a published list of the most frequent PINs (pkcard/pin_data)


class WeakPin(PinError, ValueError):
    """A new PIN breaks the PIN policy. ``rule`` says which rule."""

    def __init__(self, rule: PinRule, message: str | None = None) -> None:
        self.rule = rule
        super().__init__(message or f"new PIN refused by policy rule {rule.name}")


# --- the card's keys: what every card driver reports, whatever the path -------------


class KeyNeedsPin(PinError):
    """A card key was used before its secret was verified in this card session.

    The authentication key needs the PIN; the KPEP key needs the SPIN just
    before each signature. A :class:`~pkcard.pk_driver.PkDriver` reports it
    with this type whatever the path to the card, so no driver invents a
    status word: a PKCS#11 module's ``CKR_USER_NOT_LOGGED_IN`` is this class,
    an APDU card's 6982 is :class:`SecurityStatusNotSatisfied`, a subclass
    that keeps the card's status word.
    """


class SecurityStatusNotSatisfied(KeyNeedsPin, ApduError):
    """6982: the operation needs a verified PIN first."""


# --- card application level -------------------------------------------------


class WrongCardKind(PkcardError):
    """The card in the reader is not the kind the operation needs (PK vs KZZ)."""


class EnvironmentMismatch(PkcardError):
    """A test card met a production card (or the reverse): test cards reach test data only."""


class NotSupported(PkcardError):
    """The card, reader or backend cannot do this (for example no KPEP on a nurse's PK)."""


class KeyNotFound(NotSupported):
    """The card has no such key (for example no KPEP key on a nurse's PK).

    A :class:`~pkcard.pk_driver.PkDriver` reports a missing key with this
    type, never with a status word (6A88/6A82 on an APDU card, no key object
    on a PKCS#11 token).
    """


class ActivationReaderUnsupported(NotSupported):
    """Signature activation refused before the TPIN reached the card: ``reader`` is not
    one of the readers the seed names (Gemalto/Thales IDBridge CT30, CT700, CT710,
    GCR5500-Si)."""

    def __init__(self, reader: str, message: str | None = None) -> None:
        self.reader = reader
        super().__init__(message or "signature activation needs a supported reader")


class MissingExtra(NotSupported, ImportError):
    """The configuration needs an optional dependency that is not installed.

    The message names the extra to install (``pip install 'pkcard[pkcs11]'``).
    Also an :class:`ImportError`, so code that treats the module as optional keeps working.
    """


# --- CMS / CAdES signatures (pkcard.cms) -----------------------------------------


class SignatureRejection(IntEnum):
    """Why a detached CMS signature was refused. Stable numbers."""

    MALFORMED = 1
    UNSUPPORTED_ALGORITHM = 2
    SIGNER_NOT_FOUND = 3
    ATTRIBUTE_MISSING = 4
    DIGEST_MISMATCH = 5
    SIGNING_CERT_MISMATCH = 6
    BAD_SIGNATURE = 7
    CHAIN_INVALID = 8
    CERT_NOT_VALID = 9
    KEY_USAGE = 10


class SignatureRejected(PkcardError):
    """A CMS signature did not verify. ``reason`` is the rule; the text never quotes data."""

    def __init__(self, reason: SignatureRejection, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail or reason.name.lower().replace("_", " ")
        super().__init__(f"signature rejected ({reason.name}): {self.detail}")


# --- the daemon, as its clients see it ------------------------------------------


class DaemonError(PkcardError):
    """pkcardd refused or could not serve a call for a reason other than the card."""


class AccessDenied(DaemonError):
    """The caller's uid/gid (or TLS identity) is not on pkcardd's allow-list."""


class InvalidRequest(DaemonError, ValueError):
    """A request field or clinic-context metadata value pkcardd refuses."""


class DaemonUnavailable(DaemonError):
    """pkcardd cannot be reached, or is shutting down."""


class UntrustedDaemonSocket(DaemonError):
    """The daemon's socket is not provably pkcardd's: nothing was sent to it.

    The process listening on it (SO_PEERCRED), the socket file or a directory
    on its path belongs to ``found_uid``, which is not one of ``trusted_uids``
    (root, our own uid, the service user), or a directory on the path is
    writable by others without the sticky bit. Never travels over gRPC.
    """

    def __init__(self, message: str, *, found_uid: int, trusted_uids: tuple[int, ...]) -> None:
        super().__init__(message)
        self.found_uid = found_uid
        self.trusted_uids = trusted_uids


class DaemonBusy(DaemonError):
    """pkcardd is at its concurrency limit, or dropped a stream the client read too slowly."""


class RateLimited(DaemonError):
    """Too many failed PIN checks for this card lately; the daemon sends no secret to it.

    ``retry_after_s`` is how long until the oldest counted failure leaves the window.
    """

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            message or f"too many failed PIN checks for this card; retry in {retry_after_s} s"
        )


class ServiceNotFound(DaemonError):
    """A health check named a service pkcardd does not serve."""


class MethodNotImplemented(DaemonError):
    """pkcardd has no such method (an unknown name, or SimulationService without --simulated)."""


class CallTimeout(DaemonError):
    """The call's deadline expired (possibly while queued behind other calls on the reader)."""


class BackendProcessFailed(DaemonError):
    """The backend pkcardd runs as its child (``--simulated``'s embedded test backend) did not
    start: it exited, said nothing in time or said something unexpected. A start-up error."""


class AuditUnavailable(DaemonError):
    """pkcardd cannot write (or make durable) the audit record of a call, so it did not run it.

    Raised before the card is touched: no APDU was sent and no try was spent.
    """


class DaemonInternalError(DaemonError):
    """An unexpected failure inside pkcardd; ``incident_id`` finds it in the daemon's log."""

    def __init__(self, incident_id: str, message: str | None = None) -> None:
        self.incident_id = incident_id
        super().__init__(message or f"internal error in pkcardd (incident {incident_id})")


# --- dual-card sessions (pkcard.v1.SessionService) -------------------------------


class SessionEndReason(IntEnum):
    """Why a dual-card session ended. Stable numbers: the protobuf SessionEndReason."""

    CLOSED = 1
    PK_REMOVED = 2
    KZZ_REMOVED = 3
    READER_REMOVED = 4
    SERVICE_LOST = 5
    CARD_RESET = 6
    DAEMON_STOPPING = 7
    IDLE_TIMEOUT = 8  # not refreshed within limits.session_idle_timeout_s
    LIFETIME_EXCEEDED = 9  # open longer than limits.session_max_lifetime_s


class SessionError(DaemonError):
    """A session call refused because of the session's state."""


class SessionNotFound(SessionError):
    """No session with that id is known to pkcardd (never opened, or ended long ago)."""


class SessionEnded(SessionError):
    """The session has ended (a card left, or it was closed); ``end_reason`` says why."""

    def __init__(self, end_reason: SessionEndReason, message: str | None = None) -> None:
        self.end_reason = end_reason
        super().__init__(message or f"the session has ended ({end_reason.name})")


class PinNotVerified(PinError):
    """The call needs the PK's PIN verified and none was given (and there is no PIN pad)."""


class BackupSwitchNotConfirmed(DaemonError):
    """The PK is a backup card that is not active, and the caller did not confirm the switch.

    Using it deactivates the holder's regular card until the regular card is
    reactivated with the reactivation password. Confirm with OpenSession's
    ``backup_switch`` (``pkpin use-backup``) and say why: FAULT, LOSS or BLOCK.
    Nothing was signed.
    """


class SignatureRevoked(DaemonError):
    """The card's qualified signing certificate (KPEP) is revoked at the backend
    (``pkpin revoke-signature``, or the card was reported lost): pkcardd does not sign
    with it. The SPIN was not sent."""


class BackendUnavailable(DaemonError):
    """pkcardd cannot reach the backend configured as ``backend``."""


class ActivationOffline(BackendUnavailable):
    """Signature activation refused before the TPIN reached the card: the backend (the
    seed's "sistem on-line") is not configured or cannot be reached."""


class BackendRefused(DaemonError):
    """The backend refused a call; ``backend_reason`` is its ErrorInfo reason."""

    def __init__(self, backend_reason: str, message: str | None = None) -> None:
        self.backend_reason = backend_reason
        super().__init__(message or f"the backend refused the call ({backend_reason})")


# --- session tokens and the backend ---------------------------------------------


class RefusalReason(IntEnum):
    """Why a verifier or the backend refused a session token (or a reactivation's proof of
    possession). Stable numbers: on the wire."""

    MALFORMED = 1
    TOO_LARGE = 2
    BAD_HEADER = 3
    ALG_NOT_ALLOWED = 4
    ALG_KEY_MISMATCH = 5
    DUPLICATE_JSON_KEY = 6
    CHAIN_INVALID = 7
    KEY_USAGE = 8
    BAD_SIGNATURE = 9
    CLAIMS_INVALID = 10
    VERSION_UNSUPPORTED = 11
    ENVIRONMENT_MISMATCH = 12
    CLOCK_SKEW = 13
    LIFETIME_TOO_LONG = 14
    TOKEN_EXPIRED = 15
    NONCE_UNKNOWN = 16
    NONCE_EXPIRED = 17
    NONCE_REUSED = 18
    NONCE_FOREIGN_CLIENT = 19
    KZZ_PROOF_MISSING = 20
    KZZ_CHAIN_INVALID = 21
    KZZ_PROOF_INVALID = 22
    RESTRICTED_REASON_MISSING = 23
    RESTRICTED_WITH_KZZ_PROOF = 24
    CARD_UNKNOWN = 25
    CARD_CERT_MISMATCH = 26
    CARD_ROLE_MISMATCH = 27
    HOLDER_MISMATCH = 28
    CARD_REVOKED = 29
    CARD_INACTIVE = 30
    REGULAR_CARD_DEACTIVATED = 31
    NO_AUTHORIZATION = 32
    # A holder's reactivation attempt refused before its password counts (issue 12, break 8):
    REACTIVATION_PROOF_MISSING = 33  # no proof that the card is in the reader
    REACTIVATION_PROOF_INVALID = 34  # no valid proof of possession of THIS regular card
    # A backup card that is not active, without the holder's confirmed switch (issue 15):
    BACKUP_SWITCH_NOT_CONFIRMED = 35


class TokenRefused(PkcardError):
    """A session token was refused. ``reason`` is the rule; ``detail`` names it for people.

    The detail never quotes the token, a signature or a secret.
    """

    def __init__(self, reason: RefusalReason, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail or reason.name.lower().replace("_", " ")
        super().__init__(f"token refused ({reason.name}): {self.detail}")


class AuthorizationsRefused(TokenRefused):
    """``NO_AUTHORIZATION``: the token is valid, but none of the requested codes is granted.

    ``holder_id``, ``requested`` (in request order) and ``restricted`` let the
    backend say why for each code; ``explanations`` holds its (code, why) pairs,
    such as ``("I003", "WITHDRAWN:COURT_ORDER")``, once it has.
    """

    def __init__(self, detail: str | None = None, *, holder_id: str = "",
                 requested: tuple[str, ...] = (), restricted: bool = False,
                 explanations: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(RefusalReason.NO_AUTHORIZATION, detail)
        self.holder_id = holder_id
        self.requested = requested
        self.restricted = restricted
        self.explanations = explanations


class RegistryError(PkcardError):
    """The backend's card registry refused an administrative change."""


class RegistryNotFound(RegistryError):
    """No holder or card with that identifier is registered."""


class RegistryConflict(RegistryError):
    """The change clashes with the registry's state (duplicate, wrong card role or status)."""


class RegistryUnavailable(RegistryError):
    """The registry's database cannot be reached, or a commit's outcome is unknown.

    The message names the server to check, never a password.
    """


class RegistryBusy(RegistryError):
    """A registry transaction kept conflicting with concurrent ones (serialization failures,
    deadlocks, a locked SQLite file) past the retry bound; nothing of it was applied."""


class RegistryCorrupt(RegistryError):
    """The registry's audit chain does not verify: a row missing, changed or out of order."""


# --- files the daemon and the backend keep ------------------------------------------


class UnsafeFile(PkcardError):
    """A state file (audit log, head file, database) is a symbolic link, not a regular file,
    owned by another user, or writable by group or others. ``path`` and ``why`` say which."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"refusing to use {path}: {why}")
