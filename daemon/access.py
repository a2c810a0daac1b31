"""Who is calling: peer credentials or TLS identity, the allow-list, the clinic context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from pkcard.clinic import ClinicContext
from pkcard.daemon.config import AccessPolicy
from pkcard.daemon.peers import PeerCredentials
from pkcard.errors import AccessDenied, InvalidRequest


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
