"""The controlling terminal: hidden secret entry and yes/no questions.

Secrets are read from ``/dev/tty`` with echo off, byte by byte into a
bytearray that is wiped once the :class:`~pkcard.secret.Secret` holds it, so
no ``str`` copy of a PIN is made here. Prompts go to the terminal too, never
to standard output, so ``pkpin ... > file`` captures results only.
"""

from __future__ import annotations

import os
import termios
from types import TracebackType

from pkcard.secret import Secret
from pkcard.tools.pkpin.errors import NoTerminal

TTY_PATH = "/dev/tty"
_LFLAG = 3  # index of c_lflag in termios attribute lists
_MAX_LINE = 256  # longer input is kept only up to this many bytes
_END = (b"\n", b"\r")


class Terminal:
    """A handle on the controlling terminal. Use as a context manager."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: str = TTY_PATH) -> Terminal:
        """Open the controlling terminal; :class:`NoTerminal` when there is none."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            raise NoTerminal("no controlling terminal") from None
        if not os.isatty(fd):
            os.close(fd)
            raise NoTerminal("not a terminal")
        return cls(fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def _read_line(self, into: bytearray) -> None:
        """Read one line into ``into`` (without the line end). EOFError at end of input."""
        while True:
            byte = os.read(self._fd, 1)
            if not byte:
                raise EOFError
            if byte in _END:
                return
            if len(into) < _MAX_LINE:
                into += byte

    def read_secret(self, prompt: str) -> Secret:
        """Ask for a secret with echo off. Ctrl-C raises KeyboardInterrupt as usual."""
        saved = termios.tcgetattr(self._fd)
        hidden = list(saved)
        hidden[_LFLAG] = saved[_LFLAG] & ~termios.ECHO
        buffer = bytearray()
        # Echo goes off (dropping type-ahead) before the prompt shows.
        termios.tcsetattr(self._fd, termios.TCSAFLUSH, hidden)
        try:
            self.write(prompt)
            self._read_line(buffer)
            return Secret(buffer)
        finally:
            buffer[:] = bytes(len(buffer))
            termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            self.write("\n")

    def ask(self, question: str) -> str:
        """Ask a question with echo on; the answer without its line end."""
        self.write(question)
        buffer = bytearray()
        self._read_line(buffer)
        return buffer.decode("utf-8", errors="replace")
