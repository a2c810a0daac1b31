"""pkcardd's log format: plain lines on a terminal, sd-daemon lines under systemd.

Under systemd (``JOURNAL_STREAM`` names our stderr) journald stamps each
line itself and reads a ``<N>`` syslog priority prefix (sd-daemon(3)), so
each line carries that prefix and no timestamp of ours; every line of a
multi-line record (a traceback) gets the prefix, so none is demoted to info.
Elsewhere each line is ``time LEVEL logger: message``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TextIO

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

# sd-daemon.h: SD_EMERG 0 ... SD_DEBUG 7
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))
_SD_DEBUG = 7


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7)."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _SD_DEBUG


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, the prefix on every line, no timestamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Whether ``stream`` is the journal stream systemd connected (JOURNAL_STREAM=dev:ino)."""
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def configure_logging(level: str, stream: TextIO, environ: Mapping[str, str]) -> None:
    """Log records of ``level`` and above to ``stream`` in the format its reader expects."""
    handler = logging.StreamHandler(stream)
    if stderr_is_journal(environ, stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
