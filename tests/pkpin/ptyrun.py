"""Run pkpin as a person does: a child process on a pseudo-terminal.

:class:`PkpinSession` forks ``python -m pkcard.tools.pkpin`` onto a new pty (which
becomes its controlling terminal, so hidden prompts read from it), waits
for prompts, types answers and collects everything the terminal showed.
Timeouts only turn a hang into a failure with the transcript; no test
asserts on time.
"""

from __future__ import annotations

import os
import pty
import select
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WAIT_LIMIT = 30.0


def base_environment(**extra: str) -> dict[str, str]:
    """A clean English environment (no locale variables leak in from the runner)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "PKCARD_SOCKET")
    }
    env["LANG"] = "C.UTF-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class PkpinSession:
    """One pkpin process on a pty."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, *,
        stdout: int | None = None,
    ) -> None:
        """``stdout``: a file descriptor for pkpin's standard output instead of the pty."""
        environment = dict(env) if env is not None else base_environment()
        argv = [sys.executable, "-m", "pkcard.tools.pkpin", *args]
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec pkpin, never return into pytest
            try:
                os.chdir(REPO)
                if stdout is not None:
                    os.dup2(stdout, 1)
                os.execve(sys.executable, argv, environment)
            finally:
                os._exit(127)
        self.pid = pid
        self._fd = fd
        self._output = bytearray()
        self._seen = 0  # how much of the output expect() has consumed
        self._typed: list[str] = []
        self.exit_code: int | None = None

    @property
    def transcript(self) -> str:
        return self._output.decode("utf-8", errors="replace")

    def _read_some(self, limit: float) -> bool:
        """Read what is available; False at end of output."""
        ready, _, _ = select.select([self._fd], [], [], limit)
        if not ready:
            raise AssertionError(f"pkpin shows nothing new:\n{self.transcript}")
        try:
            chunk = os.read(self._fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        self._output += chunk
        return True

    def expect(self, text: str) -> str:
        """Wait until ``text`` shows after what was already expected; return the output to it."""
        needle = text.encode("utf-8")
        while True:
            found = self._output.find(needle, self._seen)
            if found >= 0:
                start, self._seen = self._seen, found + len(needle)
                return self._output[start : self._seen].decode("utf-8", errors="replace")
            if not self._read_some(WAIT_LIMIT):
                raise AssertionError(f"pkpin ended without showing {text!r}:\n{self.transcript}")

    def type_line(self, text: str) -> None:
        os.write(self._fd, text.encode("utf-8") + b"\r")

    def type_secret(self, prompt: str, secret: str) -> None:
        """Wait for a hidden prompt, then type ``secret`` at it."""
        self.expect(prompt)
        self._typed.append(secret)
        self.type_line(secret)

    def wait(self) -> int:
        """Read to the end of output and return pkpin's exit code."""
        while self._read_some(WAIT_LIMIT):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self._fd)
        self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code

    def expect_exit(self, code: int) -> None:
        """Wait for the end; fail with the transcript unless pkpin exited with ``code``."""
        actual = self.wait()
        assert actual == code, f"pkpin exited {actual}, expected {code}:\n{self.transcript}"

    def rest(self) -> str:
        """The output after the last expected text."""
        return self._output[self._seen :].decode("utf-8", errors="replace")

    def assert_no_secret_shown(self, *secrets: str) -> None:
        """None of ``secrets`` (default: every secret typed) appears in the output."""
        shown = self.transcript
        for secret in secrets or tuple(self._typed):
            assert secret not in shown, "a typed secret appeared on the terminal"


def run_pkpin(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Run pkpin to the end without typing anything; (exit code, terminal output)."""
    session = PkpinSession(args, env)
    code = session.wait()
    return code, session.transcript
