"""The asyncio client has every call of the blocking one, with the same parameters, and
its holder calls work against a real ``pkcardd --simulated`` and a real backend."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret

from pkcard.aio_client import AsyncPkcardClient
from pkcard.client import PkcardClient
from pkcard.errors import BackupSwitchNotConfirmed, SignatureRevoked
from pkcard.holder import LossReason, RegistryStatus, SwitchKind
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason, CardRole

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
BACKUP = "PK0000100002"
PASSWORD = profile_secret("pk-regular", SecretRef.REACTIVATION)
BLOCKING_ONLY = {"__enter__", "__exit__"}
ASYNC_ONLY = {"__aenter__", "__aexit__"}


def _calls(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if callable(member) and (not name.startswith("_") or name.startswith("__"))
            and name not in {"__init__", "__class__"}}


def test_async_client_has_every_call_with_the_same_parameters() -> None:
    blocking = _calls(PkcardClient)
    awaitable = _calls(AsyncPkcardClient)
    assert set(blocking) - BLOCKING_ONLY == set(awaitable) - ASYNC_ONLY
    for name in set(blocking) - BLOCKING_ONLY:
        assert list(blocking[name].parameters) == list(awaitable[name].parameters), name
        for parameter in blocking[name].parameters.values():
            twin = awaitable[name].parameters[parameter.name]
            assert (parameter.kind, parameter.default) == (twin.kind, twin.default), (
                name, parameter.name)


def test_async_holder_calls(simulated_rig: Rig) -> None:
    rig = simulated_rig
    backup_pin = profile_secret("pk-backup", SecretRef.PIN)
    spin = profile_secret("pk-backup", SecretRef.SPIN)

    async def scenario() -> None:
        async with AsyncPkcardClient(rig.daemon.socket_path) as client:
            rig.daemon.insert(KZZ_READER, "kzz")
            rig.daemon.insert(PK_READER, "pk-backup")
            with pytest.raises(BackupSwitchNotConfirmed):
                await client.open_session(PK_READER, rig.backend.challenge(), AUTHORIZATIONS,
                                          kzz_reader=KZZ_READER, pin=backup_pin)
            assert await client.activate_backup(PK_READER, BackupSwitchReason.FAULT,
                                                pin=backup_pin)
            status = await client.get_card_status(PK_READER)
            assert (status.card_serial, status.role, status.status) == (
                BACKUP, CardRole.BACKUP, RegistryStatus.ACTIVE)
            assert [(s.kind, s.reason) for s in status.switches] == [
                (SwitchKind.BACKUP_ACTIVATED, BackupSwitchReason.FAULT)]

            rig.daemon.insert(PK_READER, "pk-regular")
            await client.reactivate_card(PK_READER, PASSWORD,
                                         pin=profile_secret("pk-regular", SecretRef.PIN))
            rig.daemon.insert(PK_READER, "pk-backup")
            opened = await client.open_session(
                PK_READER, rig.backend.challenge(), AUTHORIZATIONS, kzz_reader=KZZ_READER,
                pin=backup_pin, backup_switch=BackupSwitchReason.BLOCK)
            assert rig.backend.redeem(opened.token.token).backup_activated
            await client.close_session(opened.session_id)

            assert (await client.sign_document(PK_READER, b"before", spin=spin)).card_serial \
                == BACKUP
            assert await client.revoke_signature(PASSWORD, reader=PK_READER) == BACKUP
            with pytest.raises(SignatureRevoked):
                await client.sign_document(PK_READER, b"after", spin=spin)
            assert await client.report_card_lost(LossReason.STOLEN, PASSWORD,
                                                 card_serial=BACKUP) == BACKUP
            status = await client.get_card_status(PK_READER)
            assert (status.status, status.loss_reason, status.signature_revoked) == (
                RegistryStatus.REVOKED, LossReason.STOLEN, True)

    asyncio.run(scenario())
    text = rig.daemon.log() + rig.daemon.audit_path.read_text()
    assert PASSWORD not in text
    assert backup_pin not in text
