"""Where pkcardd listens: the one default socket path, and ``$PKCARD_SOCKET``.

One path everywhere: the systemd units (packaging/), ``pkcardd`` (which
binds ``<socket dir>/pkcardd.sock``), ``pkpin``, :class:`pkcard.client.PkcardClient`
and the asyncio client. Clients take, in this order: the path they are given
(``--socket PATH``, the ``socket`` argument), ``$PKCARD_SOCKET``, then
:data:`DEFAULT_SOCKET`.

Next to that one public socket, pkcardd may offer each allowed user a socket
of its own, :func:`user_socket` (``<dir>/users/<uid>/pkcardd.sock``), that
only that user can connect to: the kernel checks the caller there, so calls
skip the daemon's peer-credential gateway (docs/security.md). pkcard's own
clients use it when it is there (:func:`connect_socket`); any other client
keeps using the public socket, which serves every allowed caller.
``PKCARD_USER_SOCKET=0`` makes pkcard's clients use the public socket too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SOCKET_DIR = Path("/run/pkcardd")
SOCKET_NAME = "pkcardd.sock"
DEFAULT_SOCKET = DEFAULT_SOCKET_DIR / SOCKET_NAME
SOCKET_VARIABLE = "PKCARD_SOCKET"
USERS_DIR_NAME = "users"
USER_SOCKET_VARIABLE = "PKCARD_USER_SOCKET"


def client_socket(socket: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Path:
    """The socket a client uses: ``socket``, else ``$PKCARD_SOCKET``, else the default."""
    if socket is not None and str(socket):
        return Path(socket)
    variable = (os.environ if environ is None else environ).get(SOCKET_VARIABLE)
    return Path(variable) if variable else DEFAULT_SOCKET


def user_socket(public: Path, uid: int) -> Path:
    """Where pkcardd offers ``uid`` its own socket, next to the public socket ``public``."""
    return public.parent / USERS_DIR_NAME / str(uid) / SOCKET_NAME


def connect_socket(public: Path, environ: Mapping[str, str] | None = None,
                   uid: int | None = None) -> Path:
    """The socket to connect to: our own user socket next to ``public`` if it is there.

    ``uid`` defaults to our effective uid. ``$PKCARD_USER_SOCKET`` set to ``0``
    keeps to ``public``, and so does a public socket not named ``pkcardd.sock``.
    """
    env = os.environ if environ is None else environ
    if public.name != SOCKET_NAME or env.get(USER_SOCKET_VARIABLE, "").strip() == "0":
        return public
    mine = user_socket(public, os.geteuid() if uid is None else uid)
    try:
        if stat.S_ISSOCK(mine.lstat().st_mode):
            return mine
    except OSError:  # not offered to us (or not at all): the public socket serves everyone
        pass
    return public
