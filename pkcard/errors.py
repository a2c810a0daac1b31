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


# --- malformed input -------------------------------------------------------


class FormatError(PkcardError, ValueError):
    """Bytes that do not parse: a malformed APDU, TLV, transcript line or token."""


class ApduFormatError(FormatError):
    """A command or response APDU that violates ISO 7816-4 encoding."""


class TlvError(FormatError):
    """BER-TLV that is truncated, overlong or otherwise malformed."""


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


class SecurityStatusNotSatisfied(ApduError):
    """6982: the operation needs a verified PIN first."""


class ConditionsNotSatisfied(ApduError):
    """6985: conditions of use not satisfied."""


# --- PINs and other secrets -------------------------------------------------


class PinError(PkcardError):
    """Base of every error about a PIN-like secret (PIN, PUK, SPIN, TPIN, password)."""


class WrongPin(PinError):
    """The card refused the secret; ``tries_left`` tries remain."""

    def __init__(self, tries_left: int, message: str | None = None) -> None:
        self.tries_left = tries_left
        super().__init__(message or f"wrong PIN, {tries_left} tries left")


class PinBlocked(PinError):
    """The secret's try counter is exhausted (6983). A PIN can be unblocked with the PUK."""


class CardDead(PinBlocked):
    """The PUK is exhausted too: the card can no longer be used with a PIN."""


class TransportPinActive(PinError):
    """The signing PIN is still in transport state: activate it with the TPIN first."""


class LastTryNotConfirmed(PinError):
    """Only one try is left and the caller did not pass ``confirm_last_try``."""

    def __init__(self, tries_left: int = 1) -> None:
        self.tries_left = tries_left
        super().__init__("only one try is left; confirm the last try to proceed")


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


class WeakPin(PinError, ValueError):
    """A new PIN breaks the PIN policy. ``rule`` says which rule."""

    def __init__(self, rule: PinRule, message: str | None = None) -> None:
        self.rule = rule
        super().__init__(message or f"new PIN refused by policy rule {rule.name}")


# --- card application level -------------------------------------------------


class WrongCardKind(PkcardError):
    """The card in the reader is not the kind the operation needs (PK vs KZZ)."""


class NotSupported(PkcardError):
    """The card, reader or backend cannot do this (for example no KPEP on a nurse's PK)."""
