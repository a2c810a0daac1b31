"""Where pkcardd listens: the one default socket path, and ``$PKCARD_SOCKET``.

One path everywhere: the systemd units (packaging/), ``pkcardd`` (which
binds ``<socket dir>/pkcardd.sock``), ``pkpin``, :class:`pkcard.client.PkcardClient`
and the asyncio client. Clients take, in this order: the path they are given
(``--socket PATH``, the ``socket`` argument), ``$PKCARD_SOCKET``, then
:data:`DEFAULT_SOCKET`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SOCKET_DIR = Path("/run/pkcardd")
SOCKET_NAME = "pkcardd.sock"
DEFAULT_SOCKET = DEFAULT_SOCKET_DIR / SOCKET_NAME
SOCKET_VARIABLE = "PKCARD_SOCKET"


def client_socket(socket: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Path:
    """The socket a client uses: ``socket``, else ``$PKCARD_SOCKET``, else the default."""
    if socket is not None and str(socket):
        return Path(socket)
    variable = (os.environ if environ is None else environ).get(SOCKET_VARIABLE)
    return Path(variable) if variable else DEFAULT_SOCKET
