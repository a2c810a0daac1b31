"""The asyncio flavour of :class:`pkcard.client.PkcardClient`: same methods, awaitable.

Same results (frozen dataclasses) and the same :mod:`pkcard.errors` types.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from pkcard.certs import certificate_cache
from pkcard.client import (
    DEFAULT_TIMEOUT,
    CardReading,
    PinReport,
    WatchItem,
    backup_request,
    card_reading,
    error_from_rpc,
    lost_request,
    pin_report,
    pin_status,
    reader_state,
    reference,
    reveal,
    revoke_request,
    sign_request,
    signature_info,
    signed_document,
    socket_target,
    watch_item,
)
from pkcard.clinic import ClinicContext
from pkcard.cms import SignatureInfo, SignedDocument
from pkcard.endpoint import client_socket, connect_socket
from pkcard.holder import BackendCardStatus, LossReason, card_status
from pkcard.pin import PinEntry, PinRef, PinStatus
from pkcard.readers import ReaderState
from pkcard.secret import Secret
from pkcard.sessions import (
    BackupSwitchReason,
    OpenedSession,
    RestrictedMode,
    SessionStatus,
    SessionToken,
    open_request,
    opened_session,
    session_status,
    session_token,
)
from pkcard.socket_trust import checked_aio_channel
from pkcard.v1 import (
    cards_pb2,
    cards_pb2_grpc,
    holder_pb2,
    holder_pb2_grpc,
    readers_pb2,
    readers_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    signatures_pb2,
    signatures_pb2_grpc,
)


class AsyncPkcardClient:
    """An asyncio connection to pkcardd. ``async with`` it, or await :meth:`close`."""

    def __init__(
        self,
        socket: str | Path | None = None,
        *,
        clinic: ClinicContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        # the socket is checked (owners, modes, SO_PEERCRED) before the first call
        self._channel = channel or checked_aio_channel(
            socket_target(connect_socket(client_socket(socket))))
        self._metadata = (clinic or ClinicContext()).to_metadata()
        self._timeout = timeout
        self._readers = readers_pb2_grpc.ReaderServiceStub(self._channel)
        self._cards = cards_pb2_grpc.CardServiceStub(self._channel)
        self._sessions = sessions_pb2_grpc.SessionServiceStub(self._channel)
        self._signatures = signatures_pb2_grpc.SignatureServiceStub(self._channel)
        self._holder = holder_pb2_grpc.HolderServiceStub(self._channel)
        self._certificates = certificate_cache()  # each card certificate parsed once

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncPkcardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: object) -> Any:
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    async def list_readers(self) -> list[ReaderState]:
        response = await self._call(self._readers.ListReaders, readers_pb2.ListReadersRequest())
        return [reader_state(r) for r in response.readers]

    async def watch_events(self) -> AsyncGenerator[WatchItem, None]:
        """A snapshot, then live events; closing the iterator cancels the call."""
        call = self._readers.WatchEvents(readers_pb2.WatchEventsRequest(), metadata=self._metadata)
        try:
            async for message in call:
                yield watch_item(message)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        finally:
            call.cancel()

    async def get_card(self, reader: str) -> CardReading:
        response = await self._call(self._cards.GetCard, cards_pb2.GetCardRequest(reader=reader))
        return card_reading(response, self._certificates.get)

    async def get_pin_status(
        self, reader: str, ref: PinRef | None = None
    ) -> tuple[PinStatus, ...]:
        return (await self.get_pin_report(reader, ref)).statuses

    async def get_pin_report(self, reader: str, ref: PinRef | None = None) -> PinReport:
        request = cards_pb2.GetPinStatusRequest(
            reader=reader,
            reference=cards_pb2.PIN_REFERENCE_UNSPECIFIED if ref is None else reference(ref),
        )
        response = await self._call(self._cards.GetPinStatus, request)
        return pin_report(response)

    async def verify_pin(
        self, reader: str, ref: PinRef, pin: PinEntry | str, *, confirm_last_try: bool = False
    ) -> PinStatus:
        response = await self._call(self._cards.VerifyPin, cards_pb2.VerifyPinRequest(
            reader=reader, reference=reference(ref), pin=reveal(pin),
            confirm_last_try=confirm_last_try,
        ))
        return pin_status(response.status)

    async def change_pin(
        self, reader: str, ref: PinRef, old: PinEntry | str, new: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        response = await self._call(self._cards.ChangePin, cards_pb2.ChangePinRequest(
            reader=reader, reference=reference(ref), old_pin=reveal(old), new_pin=reveal(new),
            confirm_last_try=confirm_last_try,
        ))
        return pin_status(response.status)

    async def unblock_pin(
        self, reader: str, puk: PinEntry | str, new_pin: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        response = await self._call(self._cards.UnblockPin, cards_pb2.UnblockPinRequest(
            reader=reader, puk=reveal(puk), new_pin=reveal(new_pin),
            confirm_last_try=confirm_last_try,
        ))
        return pin_status(response.status)

    async def activate_signature_pin(
        self, reader: str, tpin: PinEntry | str, new_spin: PinEntry | str, *,
        confirm_last_try: bool = False,
    ) -> PinStatus:
        response = await self._call(
            self._cards.ActivateSignaturePin,
            cards_pb2.ActivateSignaturePinRequest(
                reader=reader, tpin=reveal(tpin), new_spin=reveal(new_spin),
                confirm_last_try=confirm_last_try,
            ),
        )
        return pin_status(response.status)

    # --- dual-card sessions: see PkcardClient -----------------------------------------

    async def open_session(
        self, pk_reader: str, challenge: bytes, authorizations: Sequence[str], *,
        kzz_reader: str | None = None, restricted: RestrictedMode | None = None,
        pin: PinEntry | str = "", confirm_last_try: bool = False,
        backup_switch: BackupSwitchReason | None = None,
    ) -> OpenedSession:
        request = open_request(
            pk_reader, challenge, authorizations, kzz_reader=kzz_reader, restricted=restricted,
            pin=reveal(pin), confirm_last_try=confirm_last_try, backup_switch=backup_switch,
        )
        try:
            response = await self._call(self._sessions.OpenSession, request)
        finally:
            request.Clear()
        return opened_session(response)

    async def refresh_session(self, session_id: str, challenge: bytes) -> SessionToken:
        response = await self._call(
            self._sessions.RefreshSession,
            sessions_pb2.RefreshSessionRequest(session_id=session_id, challenge=challenge),
        )
        return session_token(response.token)

    async def close_session(self, session_id: str) -> bool:
        response = await self._call(
            self._sessions.CloseSession, sessions_pb2.CloseSessionRequest(session_id=session_id))
        return bool(response.closed)

    async def get_session(self, session_id: str) -> SessionStatus:
        response = await self._call(
            self._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=session_id))
        return session_status(response)

    async def reactivate_card(self, reader: str, password: Secret | str, *,
                              pin: PinEntry | str = "", confirm_last_try: bool = False) -> str:
        request = sessions_pb2.ReactivateCardRequest(reader=reader, password=reveal(password),
                                                     pin=reveal(pin),
                                                     confirm_last_try=confirm_last_try)
        try:
            response = await self._call(self._sessions.ReactivateCard, request)
        finally:
            request.Clear()
        return str(response.card_serial)

    # --- the holder's card at the backend: see PkcardClient ---------------------------

    async def get_card_status(self, reader: str) -> BackendCardStatus:
        response = await self._call(self._holder.GetCardStatus,
                                    holder_pb2.GetCardStatusRequest(reader=reader))
        return card_status(response)

    async def activate_backup(self, reader: str, reason: BackupSwitchReason, *,
                              pin: PinEntry | str = "", confirm_last_try: bool = False) -> bool:
        request = backup_request(reader, reason, reveal(pin), confirm_last_try)
        try:
            response = await self._call(self._holder.ActivateBackupCard, request)
        finally:
            request.Clear()
        return bool(response.activated)

    async def revoke_signature(self, password: Secret | str, *, reader: str | None = None,
                               card_serial: str | None = None) -> str:
        request = revoke_request(reveal(password), reader, card_serial)
        try:
            response = await self._call(self._holder.RevokeSignature, request)
        finally:
            request.Clear()
        return str(response.card_serial)

    async def report_card_lost(self, reason: LossReason, password: Secret | str, *,
                               card_serial: str | None = None,
                               reader: str | None = None) -> str:
        request = lost_request(reason, reveal(password), reader, card_serial)
        try:
            response = await self._call(self._holder.ReportCardLost, request)
        finally:
            request.Clear()
        return str(response.card_serial)

    # --- qualified signatures: see PkcardClient ----------------------------------------

    async def sign_document(
        self, reader: str, document: bytes | None = None, *,
        document_sha256: bytes | None = None, spin: PinEntry | str = "",
        confirm_last_try: bool = False,
    ) -> SignedDocument:
        request = sign_request(reader, document, document_sha256, reveal(spin), confirm_last_try)
        try:
            response = await self._call(self._signatures.SignDocument, request)
        finally:
            request.Clear()
        return signed_document(response, self._certificates.get)

    async def verify_document(self, document: bytes, cms: bytes) -> SignatureInfo:
        response = await self._call(
            self._signatures.VerifyDocument,
            signatures_pb2.VerifyDocumentRequest(document=document, cms=cms),
        )
        return signature_info(response, self._certificates.get)
