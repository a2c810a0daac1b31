"""Which PKCS#11 token is the card: configuration data that needs no PyKCS11.

``pkcardd``'s configuration names tokens with :class:`TokenSelector`; it is
read and checked without loading PyKCS11, which is an optional extra
(``pip install 'pkcard[pkcs11]'``). :func:`missing_pkcs11` is the error
:mod:`pkcard.pkcs11` raises when PyKCS11 is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pkcard.errors import MissingExtra

if TYPE_CHECKING:
    from pkcard.pkcs11 import TokenInfo

PKCS11_EXTRA = "pkcs11"
PKCS11_INSTALL_HINT = f"pip install 'pkcard[{PKCS11_EXTRA}]'"


@dataclass(frozen=True)
class TokenSelector:
    """Which token is the card: every field that is set must match.

    ``slot_description`` is the PC/SC reader name modules put there, compared
    as a prefix (readers append `` 00 00``); ``serial`` and ``label`` are
    compared exactly (trailing blanks and NULs stripped).
    """

    slot_description: str | None = None
    serial: str | None = None
    label: str | None = None

    def matches(self, token: TokenInfo) -> bool:
        if self.slot_description is not None and not token.slot_description.startswith(
            self.slot_description
        ):
            return False
        if self.serial is not None and token.serial != self.serial:
            return False
        return self.label is None or token.label == self.label


def missing_pkcs11() -> MissingExtra:
    """The error for a PKCS#11 card backend without PyKCS11: it names the extra."""
    return MissingExtra(
        f"a PKCS#11 card backend needs PyKCS11, which is not installed: {PKCS11_INSTALL_HINT}"
    )

