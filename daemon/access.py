"""Who is calling: peer credentials or TLS identity, the allow-list, the clinic context.

A call's kernel credentials come from one of two places. On the public
socket, the :class:`~pkcard.daemon.peers.PeerGateway` read them with
``SO_PEERCRED`` and :meth:`AccessControl.identify` finds them by the call's
peer address. On a user socket (:mod:`pkcard.daemon.user_sockets`) the
kernel let only one user connect, and :class:`KnownCallerInterceptor` hands
every call on it a :class:`KnownCallerContext` that says who that user is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import grpc

from pkcard.clinic import ClinicContext
from pkcard.daemon.config import AccessPolicy
from pkcard.daemon.interceptors import Behavior, HandlerInterceptor, rewrap
from pkcard.daemon.peers import PeerCredentials
from pkcard.errors import AccessDenied, InvalidRequest

if TYPE_CHECKING:
    from pkcard.daemon.interceptors import Handler


@dataclass(frozen=True)
class Caller:
    """The caller of one RPC: kernel credentials (Unix socket) or TLS identity (TCP)."""

    credentials: PeerCredentials | None
    tls_identity: str | None
    clinic: ClinicContext

    @property
    def key(self) -> str:
        """Who owns what this caller opens: ``uid:N`` on the Unix socket, ``tls:NAME`` on TCP."""
        if self.credentials is not None:
            return f"uid:{self.credentials.uid}"
        if self.tls_identity is not None:
            return f"tls:{self.tls_identity}"
        return "unknown"


class KnownCallerContext(grpc.ServicerContext):
    """A call's context on a user socket: gRPC's own, plus who the kernel let connect."""

    def __init__(self, context: grpc.ServicerContext, credentials: PeerCredentials) -> None:
        self._context = context
        self.credentials = credentials

    # Everything else is the call's own context.
    def is_active(self) -> bool:
        return self._context.is_active()

    def time_remaining(self) -> float:
        return self._context.time_remaining()

    def cancel(self) -> None:
        self._context.cancel()  # type: ignore[no-untyped-call]

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return self._context.add_callback(callback)

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def peer(self) -> str:
        return self._context.peer()

    def peer_identities(self) -> Any:
        return self._context.peer_identities()

    def peer_identity_key(self) -> str | None:
        return self._context.peer_identity_key()

    def auth_context(self) -> Any:
        return self._context.auth_context()

    def set_compression(self, compression: grpc.Compression) -> None:
        self._context.set_compression(compression)

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        self._context.send_initial_metadata(initial_metadata)

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._context.set_trailing_metadata(trailing_metadata)

    def trailing_metadata(self) -> Any:
        return self._context.trailing_metadata()

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._context.abort(code, details)

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self._context.abort_with_status(status)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._context.set_code(code)

    def code(self) -> Any:
        return self._context.code()  # type: ignore[attr-defined]

    def set_details(self, details: str) -> None:
        self._context.set_details(details)

    def details(self) -> Any:
        return self._context.details()  # type: ignore[attr-defined]

    def disable_next_message_compression(self) -> None:
        self._context.disable_next_message_compression()


class KnownCallerInterceptor(HandlerInterceptor):
    """On a user socket's server, the outermost interceptor: every call is ``credentials``."""

    def __init__(self, credentials: PeerCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def wrap(self, handler: Handler, method: str) -> Handler:
        return rewrap(handler, unary_unary=self._known, unary_stream=self._known,
                      stream_unary=self._known, stream_stream=self._known)

    def _known(self, behavior: Behavior) -> Behavior:
        credentials = self._credentials

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            return behavior(request, KnownCallerContext(context, credentials))

        return call


class CredentialSource(Protocol):
    def credentials_for(self, peer: str) -> PeerCredentials | None: ...


def _tls_identity(context: grpc.ServicerContext) -> str | None:
    # grpc's stubs type the values as bytes; at run time each is a list of bytes.
    auth: Mapping[str, Sequence[bytes]] = context.auth_context()  # type: ignore[assignment]
    for key in ("x509_common_name", "x509_subject"):
        values = auth.get(key)
        if values:
            return bytes(values[0]).decode("utf-8", "replace")
    return None


class AccessControl:
    """Resolves each call's :class:`Caller` and enforces the allow-list."""

    def __init__(self, policy: AccessPolicy, credentials: CredentialSource | None) -> None:
        self._policy = policy
        self._credentials = credentials

    def identify(self, context: grpc.ServicerContext) -> Caller:
        """The caller, without enforcing anything (for audit records of refused calls)."""
        peer = context.peer()
        if isinstance(context, KnownCallerContext):
            creds: PeerCredentials | None = context.credentials
        else:
            creds = self._credentials.credentials_for(peer) if self._credentials else None
        tls = _tls_identity(context) if peer.startswith(("ipv4:", "ipv6:")) else None
        try:
            clinic = ClinicContext.from_metadata(context.invocation_metadata())
        except InvalidRequest:
            clinic = ClinicContext()
        return Caller(credentials=creds, tls_identity=tls, clinic=clinic)

    def is_admin(self, caller: Caller) -> bool:
        """Whether the caller is in one of ``[access] admin_groups`` (Unix-socket callers only)."""
        creds = caller.credentials
        return creds is not None and self._policy.is_admin(creds.uid, creds.gid)

    def authorize(self, context: grpc.ServicerContext) -> Caller:
        """The caller, if allowed and its metadata is valid.

        Raises :class:`AccessDenied` or :class:`InvalidRequest`.
        """
        caller = self.identify(context)
        if caller.credentials is not None:
            creds = caller.credentials
            if not self._policy.allows(creds.uid, creds.gid):
                raise AccessDenied(
                    f"uid {creds.uid} (gid {creds.gid}) is not allowed to use pkcardd; "
                    "ask the administrator to add the user or its group to [access]"
                )
        elif caller.tls_identity is None:
            raise AccessDenied("caller is neither a Unix-socket peer nor a TLS client")
        ClinicContext.from_metadata(context.invocation_metadata())  # raises on invalid values
        return caller
