"""Keep secrets out of core dumps: one call at the start of each program that holds them.

pkcardd, pkpin and pkcard-backend hold PINs, PUKs and reactivation passwords
in memory for the length of a call. :func:`forbid_core_dumps` sets the core
size limit to 0 (soft and hard, so the process cannot raise it again) and
clears the process's "dumpable" flag (``prctl(PR_SET_DUMPABLE, 0)``). The
kernel then writes no core on a crash, refuses ``ptrace`` attach by other
processes of the same user, and makes ``/proc/<pid>/mem`` and friends
root-only. Root can still read the memory of a running process; see
docs/security.md.
"""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


class CoreDumpGuardError(OSError):
    """The kernel refused to turn core dumps off."""


@dataclass(frozen=True)
class CoreDumpState:
    """What :func:`forbid_core_dumps` left in place."""

    core_limit: tuple[int, int]
    dumpable: int


def _prctl(option: int, arg: int) -> int:
    # The C library is already loaded: CDLL(None) finds prctl in the process's own symbols.
    # (ctypes.util.find_library would load shutil, tempfile, bz2 and lzma: ~0.8 MB of RSS.)
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    result: int = prctl(option, arg, 0, 0, 0)
    if result < 0:
        errno = ctypes.get_errno()
        raise CoreDumpGuardError(errno, f"prctl({option}): {os.strerror(errno)}")
    return result


def forbid_core_dumps() -> CoreDumpState:
    """Set RLIMIT_CORE to 0 and PR_SET_DUMPABLE to 0. Raises :class:`CoreDumpGuardError`."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as exc:
        raise CoreDumpGuardError(f"cannot set RLIMIT_CORE to 0: {exc}") from None
    _prctl(PR_SET_DUMPABLE, 0)
    return CoreDumpState(resource.getrlimit(resource.RLIMIT_CORE), _prctl(PR_GET_DUMPABLE, 0))
