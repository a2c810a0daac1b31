"""The clinic context: who, where and through which system a call is made.

Clinic software sends these as gRPC invocation metadata on every call;
pkcardd validates them and writes them into its audit log. All optional.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pkcard.errors import InvalidRequest

WORKPLACE_KEY = "x-pkcard-workplace-id"
CLIENT_SYSTEM_KEY = "x-pkcard-client-system-id"
USER_KEY = "x-pkcard-user-id"
MAX_LENGTH = 128


def _checked(key: str, value: str | bytes) -> str:
    if isinstance(value, bytes):
        raise InvalidRequest(f"metadata {key} must be text")
    if not value or len(value) > MAX_LENGTH:
        raise InvalidRequest(f"metadata {key} must be 1 to {MAX_LENGTH} characters")
    if not value.isprintable():
        raise InvalidRequest(f"metadata {key} must be printable")
    return value


@dataclass(frozen=True)
class ClinicContext:
    """Identifiers of the workplace, the calling clinic system and its user.

    Each is 1 to 128 printable characters when set. Construction validates
    (:class:`~pkcard.errors.InvalidRequest`).
    """

    workplace_id: str | None = None
    client_system_id: str | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        for key, value in self._pairs():
            if value is not None:
                _checked(key, value)

    def _pairs(self) -> tuple[tuple[str, str | None], ...]:
        return (
            (WORKPLACE_KEY, self.workplace_id),
            (CLIENT_SYSTEM_KEY, self.client_system_id),
            (USER_KEY, self.user_id),
        )

    def to_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((key, value) for key, value in self._pairs() if value is not None)

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> ClinicContext:
        """Read and validate the x-pkcard-* entries. Raises :class:`InvalidRequest`."""
        found: dict[str, str] = {}
        for key, value in metadata or ():
            if key in (WORKPLACE_KEY, CLIENT_SYSTEM_KEY, USER_KEY):
                if key in found:
                    raise InvalidRequest(f"metadata {key} given more than once")
                found[key] = _checked(key, value)
        return cls(found.get(WORKPLACE_KEY), found.get(CLIENT_SYSTEM_KEY), found.get(USER_KEY))
