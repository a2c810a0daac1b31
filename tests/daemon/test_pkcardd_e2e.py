"""End to end: a real pkcardd --simulated process, the real client, the real socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon

from pkcard.aio_client import AsyncPkcardClient
from pkcard.client import PkcardClient, ReaderSnapshot
from pkcard.clinic import ClinicContext
from pkcard.endpoint import USER_SOCKET_VARIABLE
from pkcard.errors import (
    CardRemoved,
    DaemonUnavailable,
    LastTryNotConfirmed,
    MalformedPin,
    PinBlocked,
    PinRule,
    ReaderNotFound,
    WeakPin,
    WrongCardKind,
    WrongPin,
)
from pkcard.pin import PinRef, PinState
from pkcard.readers import CardKind, ReaderEvent, ReaderEventKind, ReaderModel
from pkcard.secret import Secret
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef

PK = load_profile("pk-regular")
PIN = PK.secret_value(SecretRef.PIN)
PUK = PK.secret_value(SecretRef.PUK)
WRONG_PIN = "40404040" if PIN != "40404040" else "50505050"
NEW_PIN = "58130947"


@pytest.fixture
def client(fresh_cards: RunningDaemon) -> Iterator[PkcardClient]:
    context = ClinicContext(workplace_id="amb-3", client_system_id="ehr-test", user_id="dr-x")
    with fresh_cards.client(clinic=context, timeout=10.0) as client:
        yield client


def test_list_readers_reports_models_capabilities_and_cards(client: PkcardClient) -> None:
    readers = {state.reader.name: state for state in client.list_readers()}
    assert set(readers) == {PK_READER, KZZ_READER}
    pinpad = readers[PK_READER]
    assert pinpad.reader.model is ReaderModel.IDBRIDGE_CT700
    assert pinpad.reader.capabilities.pin_pad is True
    assert pinpad.card_present
    assert pinpad.card_kind is CardKind.PK
    assert b"PKCARDPK" in pinpad.atr
    twin = readers[KZZ_READER]
    assert twin.reader.model is ReaderModel.IDBRIDGE_CT30
    assert twin.reader.capabilities.pin_pad is False
    assert twin.card_kind is CardKind.KZZ


def test_get_card_reads_pk_and_kzz(client: PkcardClient) -> None:
    pk = client.get_card(PK_READER)
    assert pk.kind is CardKind.PK
    assert pk.kzz is None
    assert pk.pk is not None
    assert pk.backend == "apdu"
    assert pk.pk.card_serial == PK.card_info.serial
    assert pk.pk.auth_certificate.der
    kzz = client.get_card(KZZ_READER)
    assert kzz.kind is CardKind.KZZ
    assert kzz.kzz is not None
    assert kzz.pk is None
    assert len(kzz.kzz.zzzs_number.value) == 9


def test_pin_status_spends_nothing(client: PkcardClient) -> None:
    first = {s.ref: s for s in client.get_pin_status(PK_READER)}
    second = {s.ref: s for s in client.get_pin_status(PK_READER)}
    assert first == second
    assert first[PinRef.PIN].state is PinState.VERIFIABLE
    assert first[PinRef.PIN].tries_left == first[PinRef.PIN].max_tries == 3
    (only,) = client.get_pin_status(PK_READER, PinRef.PUK)
    assert only.ref is PinRef.PUK


def test_wrong_pin_carries_tries_left_then_right_pin_verifies(client: PkcardClient) -> None:
    with pytest.raises(WrongPin) as wrong:
        client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
    assert wrong.value.tries_left == 2
    status = client.verify_pin(PK_READER, PinRef.PIN, Secret(PIN))
    assert status.state is PinState.VERIFIED
    assert status.tries_left == 3


def test_last_try_needs_confirmation(client: PkcardClient) -> None:
    for left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
        assert wrong.value.tries_left == left
    with pytest.raises(LastTryNotConfirmed) as guard:
        client.verify_pin(PK_READER, PinRef.PIN, PIN)
    assert guard.value.tries_left == 1
    (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    assert status.tries_left == 1  # the guard sent nothing
    with pytest.raises(PinBlocked):
        client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN, confirm_last_try=True)


def test_weak_new_pin_names_the_rule(client: PkcardClient) -> None:
    with pytest.raises(WeakPin) as weak:
        client.change_pin(PK_READER, PinRef.PIN, PIN, "1234")
    assert weak.value.rule is PinRule.SEQUENCE
    with pytest.raises(WeakPin) as repeated:
        client.change_pin(PK_READER, PinRef.PIN, PIN, "7777")
    assert repeated.value.rule is PinRule.REPEATED


def test_malformed_pin_is_refused_before_the_card(client: PkcardClient) -> None:
    with pytest.raises(MalformedPin):
        client.verify_pin(PK_READER, PinRef.PIN, "12ab")
    (status,) = client.get_pin_status(PK_READER, PinRef.PIN)
    assert status.tries_left == 3


def test_change_pin_then_verify_with_the_new_one(client: PkcardClient) -> None:
    status = client.change_pin(PK_READER, PinRef.PIN, PIN, NEW_PIN)
    assert status.state is PinState.VERIFIED
    with pytest.raises(WrongPin):
        client.verify_pin(PK_READER, PinRef.PIN, PIN)
    assert client.verify_pin(PK_READER, PinRef.PIN, NEW_PIN).state is PinState.VERIFIED


def test_unblock_with_puk(fresh_cards: RunningDaemon, client: PkcardClient) -> None:
    fresh_cards.insert(PK_READER, "pk-blocked")
    blocked = load_profile("pk-blocked")
    (pin,) = client.get_pin_status(PK_READER, PinRef.PIN)
    assert pin.state is PinState.BLOCKED
    status = client.unblock_pin(PK_READER, blocked.secret_value(SecretRef.PUK), NEW_PIN)
    assert status.ref is PinRef.PIN
    assert status.tries_left == 3


def test_activate_signature_pin_with_tpin(fresh_cards: RunningDaemon,
                                          client: PkcardClient) -> None:
    fresh_cards.insert(PK_READER, "pk-transport")
    transport = load_profile("pk-transport")
    (spin,) = client.get_pin_status(PK_READER, PinRef.SPIN)
    assert spin.state is PinState.TRANSPORT
    status = client.activate_signature_pin(
        PK_READER, transport.secret_value(SecretRef.TPIN), "520739"
    )
    assert status.ref is PinRef.SPIN
    (tpin,) = client.get_pin_status(PK_READER, PinRef.TPIN)
    assert tpin.state is PinState.DISABLED


def test_pin_calls_on_a_kzz_are_wrong_card_kind(client: PkcardClient) -> None:
    with pytest.raises(WrongCardKind):
        client.get_pin_status(KZZ_READER)


def test_unknown_reader_and_removed_card(fresh_cards: RunningDaemon,
                                         client: PkcardClient) -> None:
    with pytest.raises(ReaderNotFound):
        client.get_card("no such reader")
    assert fresh_cards.remove(PK_READER)
    with pytest.raises(CardRemoved):
        client.get_card(PK_READER)


def _collect(client: PkcardClient, wanted: int, out: list[object], ready: threading.Event) -> None:
    stream = client.watch_events()
    try:
        for item in stream:
            out.append(item)
            if isinstance(item, ReaderSnapshot):
                ready.set()
            if len(out) >= wanted:
                return
    finally:
        stream.close()


def test_two_watchers_get_snapshot_then_the_same_events(fresh_cards: RunningDaemon) -> None:
    results: list[list[object]] = [[], []]
    readies = [threading.Event(), threading.Event()]
    clients = [fresh_cards.client(), fresh_cards.client()]
    threads = [
        threading.Thread(target=_collect, args=(c, 3, out, ready))
        for c, out, ready in zip(clients, results, readies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for ready in readies:
        assert ready.wait(20)
    fresh_cards.remove(KZZ_READER)
    fresh_cards.insert(KZZ_READER, "kzz")
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    for out in results:
        snapshot, removed, inserted = out
        assert isinstance(snapshot, ReaderSnapshot)
        assert {s.reader.name for s in snapshot.readers} == {PK_READER, KZZ_READER}
        assert removed == ReaderEvent(ReaderEventKind.CARD_REMOVED, KZZ_READER)
        assert isinstance(inserted, ReaderEvent)
        assert inserted.kind is ReaderEventKind.CARD_INSERTED
        assert b"PKCARDKZ" in inserted.atr


@pytest.fixture
def gateway_client(fresh_cards: RunningDaemon,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[PkcardClient]:
    """The ``client``, through the public socket's gateway instead of our user socket."""
    monkeypatch.setenv(USER_SOCKET_VARIABLE, "0")
    context = ClinicContext(workplace_id="amb-3", client_system_id="ehr-test", user_id="dr-x")
    with fresh_cards.client(clinic=context, timeout=10.0) as client:
        yield client


def test_audit_log_records_calls_with_context_and_no_secrets(
    fresh_cards: RunningDaemon, gateway_client: PkcardClient
) -> None:
    client = gateway_client
    with pytest.raises(WrongPin):
        client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
    client.verify_pin(PK_READER, PinRef.PIN, PIN)
    text = fresh_cards.audit_path.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    wrong = [r for r in records if r["operation"] == "VerifyPin" and r["outcome"] == "WRONG_PIN"]
    assert wrong, "the refused verify is audited"
    last = wrong[-1]
    assert last["tries_left"] == 2
    assert last["workplace_id"] == "amb-3"
    assert last["user_id"] == "dr-x"
    assert last["card_serial"] == PK.card_info.serial
    assert last["uid"] == os.getuid()  # SO_PEERCRED of this test process, via the gateway
    assert last["pid"] == os.getpid()
    log = fresh_cards.stderr()
    for secret in (PIN, WRONG_PIN, PUK):
        assert secret not in text
        assert secret not in log


def _audit_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pkcard.daemon.audit_cli", "verify", str(path)],
        capture_output=True, text=True, check=False,
    )


def test_audit_chain_verifies_and_breaks_on_a_one_byte_edit(
    fresh_cards: RunningDaemon, client: PkcardClient, tmp_path: Path
) -> None:
    client.get_card(PK_READER)
    ok = _audit_cli(fresh_cards.audit_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    data = bytearray(fresh_cards.audit_path.read_bytes())
    position = data.index(b'"GetCard"') + 2
    data[position] ^= 0x01  # "GetCard" -> "FetCard"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(bytes(data))
    broken = _audit_cli(edited)
    assert broken.returncode == 1
    assert "BAD_HASH" in broken.stdout


def test_concurrent_calls_on_both_readers_all_succeed(fresh_cards: RunningDaemon) -> None:
    errors: list[BaseException] = []

    def work(reader: str) -> None:
        try:
            with fresh_cards.client(timeout=30.0) as c:
                for _ in range(5):
                    c.get_card(reader)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in (PK_READER, KZZ_READER) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with fresh_cards.client() as c:
        (status,) = c.get_pin_status(PK_READER, PinRef.PIN)
    assert status.tries_left == 3


def test_daemon_unavailable_when_nothing_listens(private_root: Path) -> None:
    with PkcardClient(private_root / "absent.sock", timeout=2.0) as c, \
            pytest.raises(DaemonUnavailable):
        c.list_readers()


def test_async_client_has_the_same_results_and_errors(fresh_cards: RunningDaemon) -> None:
    async def scenario() -> None:
        async with AsyncPkcardClient(fresh_cards.socket_path, timeout=10.0) as client:
            readers = await client.list_readers()
            assert {r.reader.name for r in readers} == {PK_READER, KZZ_READER}
            reading = await client.get_card(KZZ_READER)
            assert reading.kzz is not None
            with pytest.raises(WrongPin) as wrong:
                await client.verify_pin(PK_READER, PinRef.PIN, WRONG_PIN)
            assert wrong.value.tries_left == 2
            status = await client.verify_pin(PK_READER, PinRef.PIN, PIN)
            assert status.state is PinState.VERIFIED
            stream = client.watch_events()
            first = await anext(stream)
            assert isinstance(first, ReaderSnapshot)
            await stream.aclose()

    asyncio.run(scenario())
