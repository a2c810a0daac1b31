"""A PIN-like secret that cannot print itself and is wiped after use."""

from __future__ import annotations

import hmac
from types import TracebackType


class Secret:
    """Holds a PIN, PUK, TPIN, signing PIN or password as a wipeable bytearray.

    ``repr`` and ``str`` show only the length. Use it as a context manager, or
    call :meth:`wipe`, to overwrite the bytes when done. Comparison is in
    constant time. It is deliberately not hashable and not picklable.
    """

    __slots__ = ("_buf", "_wiped")

    def __init__(self, value: str | bytes | bytearray) -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        self._buf = bytearray(raw)
        self._wiped = False

    def __len__(self) -> int:
        return len(self._buf)

    def __repr__(self) -> str:
        return f"<Secret len={len(self._buf)}{' wiped' if self._wiped else ''}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(bytes(self._buf), bytes(other._buf))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")

    @property
    def wiped(self) -> bool:
        return self._wiped

    def reveal(self) -> bytes:
        """The secret's bytes, for the one place that must put them into an APDU."""
        if self._wiped:
            raise ValueError("secret was wiped")
        return bytes(self._buf)

    def is_digits(self) -> bool:
        return len(self._buf) > 0 and all(0x30 <= b <= 0x39 for b in self._buf)

    def digits(self) -> tuple[int, ...]:
        """The digit values, for the PIN policy. Only valid when :meth:`is_digits`."""
        return tuple(b - 0x30 for b in self._buf)

    def wipe(self) -> None:
        for i in range(len(self._buf)):
            self._buf[i] = 0
        self._wiped = True

    def __enter__(self) -> Secret:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()
