"""Per-user sockets: one listening socket for each allowed user, that only that user can reach.

The public socket's :class:`~pkcard.daemon.peers.PeerGateway` learns each
caller from ``SO_PEERCRED`` but copies every byte through Python (issue #14,
G2). A user socket lets the kernel do that check instead: pkcardd makes
``<socket dir>/users/<uid>/pkcardd.sock`` (:func:`pkcard.endpoint.user_socket`)
with POSIX ACLs such that only ``uid`` may ``connect`` to it, and serves it
with a gRPC server of its own that knows every caller on it is ``uid``
(:class:`~pkcard.daemon.access.KnownCallerInterceptor`).

- ``users/`` is ours, mode 0711 (others may pass through, not list it).
- ``users/<uid>/`` is ours, mode 0700 plus the ACL entry ``user:<uid>:--x``.
- the socket is ours with no permission for us (owner ``---``) and the ACL
  entry ``user:<uid>:rw-``: connecting to a Unix socket needs write
  permission on it, so only ``uid`` (and a process that overrides file
  permissions, i.e. root) can connect.

For our own uid plain modes do (0700 directory, 0600 socket). A file system
without POSIX ACLs gets no user sockets for other uids; they keep the public
socket. Which users get one: :func:`served_users`.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import pwd
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pkcard.daemon.config import AccessPolicy
from pkcard.daemon.peers import InsecureSocketDir, PeerCredentials, ensure_private_dir
from pkcard.endpoint import USERS_DIR_NAME, user_socket

_log = logging.getLogger(__name__)

ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_ENTRY = struct.Struct("<HHI")  # tag, permissions, id (struct posix_acl_xattr_entry)
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
R, W, X = 4, 2, 1


class AclUnsupported(OSError):
    """The file system keeps no POSIX ACLs."""


def acl_granting(uid: int, permissions: int, owner: int = 0) -> bytes:
    """A ``system.posix_acl_access`` value: ``owner`` bits for us, ``permissions`` for ``uid``.

    The group and others get nothing; the mask is ``permissions``.
    """
    entries = (
        (_USER_OBJ, owner, _ACL_UNDEFINED_ID),
        (_USER, permissions, uid),
        (_GROUP_OBJ, 0, _ACL_UNDEFINED_ID),
        (_MASK, permissions, _ACL_UNDEFINED_ID),
        (_OTHER, 0, _ACL_UNDEFINED_ID),
    )
    return struct.pack("<I", _ACL_VERSION) + b"".join(_ACL_ENTRY.pack(*e) for e in entries)


def grant_only(path: Path, uid: int, permissions: int, owner: int) -> None:
    """Let ``uid`` (and our own uid, with ``owner`` bits) and nobody else use ``path``.

    Raises :class:`AclUnsupported` where the file system has no POSIX ACLs.
    """
    if uid == os.geteuid():
        path.chmod((owner | permissions) << 6)
        return
    path.chmod(0)  # nothing for anyone until the ACL is in place
    try:
        os.setxattr(path, ACL_XATTR, acl_granting(uid, permissions, owner),
                    follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise AclUnsupported(exc.errno, f"no POSIX ACLs on {path}") from None
        raise


@dataclass(frozen=True)
class UserSocket:
    """One allowed user's socket and who every caller on it is."""

    path: Path
    credentials: PeerCredentials


def served_users(policy: AccessPolicy, limit: int) -> list[PeerCredentials]:
    """The users to offer a socket of their own, as the credentials their calls will carry.

    Every user named in ``[access] users`` and every member of an ``[access]
    groups`` group (by its member list or as its primary group), that has an
    entry in the user database and is allowed with its primary group, lowest
    uid first, at most ``limit``. The pid is unknown on a user socket (None);
    the gid is the user's primary group.
    """
    uids = set(policy.uids)
    if policy.gids:
        for gid in policy.gids:
            try:
                members = grp.getgrgid(gid).gr_mem
            except KeyError:
                continue
            for name in members:
                try:
                    uids.add(pwd.getpwnam(name).pw_uid)
                except KeyError:
                    continue
        uids.update(entry.pw_uid for entry in pwd.getpwall() if entry.pw_gid in policy.gids)
    served: list[PeerCredentials] = []
    for uid in sorted(uids):
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            continue  # no primary group to speak of: the public socket serves it
        if policy.allows(uid, gid):
            served.append(PeerCredentials(pid=None, uid=uid, gid=gid))
    if len(served) > limit:
        _log.warning("%d users may use pkcardd; only the first %d (by uid) get a socket of "
                     "their own (limits.max_user_sockets); the rest use the public socket",
                     len(served), limit)
    return served[:limit]


def clear_users_dir(public_socket: Path) -> Path:
    """Make ``users/`` next to the public socket (ours, 0711) and empty it; return it.

    Raises :class:`~pkcard.daemon.peers.InsecureSocketDir`.
    """
    users = public_socket.parent / USERS_DIR_NAME
    ensure_private_dir(users, max_mode=0o755)  # ours and not writable by others: we set 0711
    users.chmod(0o711)
    for entry in users.iterdir():
        info = entry.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            import shutil  # noqa: PLC0415 - only for a stale directory: ~0.5 MB (G6)

            shutil.rmtree(entry)
        else:
            raise InsecureSocketDir(f"unexpected entry {entry} in {users}; remove it")
    return users


def prepare_user_dir(public_socket: Path, user: PeerCredentials) -> Path:
    """Make ``users/<uid>/`` reachable only by that user; return its socket path.

    Raises :class:`AclUnsupported`.
    """
    path = user_socket(public_socket, user.uid)
    directory = path.parent
    directory.mkdir(mode=0o700)
    try:
        grant_only(directory, user.uid, X, owner=R | W | X)
    except BaseException:
        directory.rmdir()
        raise
    return path


def restrict_socket(path: Path, user: PeerCredentials) -> None:
    """Let only ``user`` connect to the socket at ``path`` (write permission on it)."""
    grant_only(path, user.uid, R | W, owner=0)


def remove_user_sockets(sockets: Iterable[UserSocket]) -> None:
    """Remove the user sockets and their directories (at stop)."""
    for socket in sockets:
        socket.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: left for the next start to clear
            socket.path.parent.rmdir()
