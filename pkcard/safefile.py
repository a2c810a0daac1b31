"""Opening the files a service keeps (audit log, state, database) without trusting the path.

:func:`open_private` opens with ``O_NOFOLLOW`` (a planted symbolic link is
refused, never followed), then checks the opened file itself (``fstat`` on
the descriptor, so nothing can be swapped between check and use): a regular
file, owned by the effective uid, writable by nobody else. A file that fails
is refused with :class:`pkcard.errors.UnsafeFile`, which names the path and why.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pkcard.errors import UnsafeFile

PRIVATE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def check_descriptor(fd: int, path: Path) -> os.stat_result:
    """Raise :class:`UnsafeFile` unless ``fd`` is a regular file we own that only we can write."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(str(path), "it is not a regular file")
    if info.st_uid != os.geteuid():
        raise UnsafeFile(str(path), f"it is owned by uid {info.st_uid}, not by uid {os.geteuid()}")
    if info.st_mode & 0o022:
        raise UnsafeFile(
            str(path), f"it is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
        )
    return info


def open_private(
    path: Path, flags: int, *, create: bool = False, mode: int = PRIVATE_MODE
) -> tuple[int, bool]:
    """Open ``path`` safely; returns ``(fd, created)``.

    With ``create`` a missing file is made with ``mode`` (``O_EXCL``: never
    through a link). Raises :class:`UnsafeFile`, or :class:`OSError` for
    anything else (missing file without ``create``, no permission, ...).
    """
    base = flags | os.O_NOFOLLOW | os.O_CLOEXEC
    created = False
    fd = -1
    if create:
        try:
            fd = os.open(path, base | os.O_CREAT | os.O_EXCL, mode)
            created = True
        except FileExistsError:
            fd = -1
    if fd < 0:
        try:
            fd = os.open(path, base)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(str(path), "it is a symbolic link") from None
            raise
    try:
        check_descriptor(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def fsync_directory(path: Path) -> None:
    """Make a created, renamed or removed directory entry durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_sqlite_files(database: Path) -> None:
    """Create ``database`` (mode 0600) if missing; check it and any -wal/-shm/-journal.

    Each existing file must pass :func:`open_private` and is set to mode 0600.
    SQLite gives the -wal and -shm files it creates later the database file's
    mode, so they are 0600 too.
    """
    fd, _ = open_private(database, os.O_RDWR, create=True)
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        companion = database.with_name(database.name + suffix)
        try:
            fd, _ = open_private(companion, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fchmod(fd, PRIVATE_MODE)
        finally:
            os.close(fd)
