"""pkcard-sim without pcscd: config writing and the command loop."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest
from pcsc_cards import FakeReader

from pkcard.simcard.pcscd_harness import VPCD_DRIVER
from pkcard.simcard.vpcd import CardLike
from pkcard.tools.sim import SlotOps, command_loop, main


def test_pcscd_config_writes_one_config_per_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pcscd-config", str(tmp_path), "--reader", "Gemalto IDBridge CT710=0x9000"]) == 0
    (config,) = sorted(tmp_path.glob("vpcd-*.conf"))
    text = config.read_text()
    assert 'FRIENDLYNAME "Gemalto IDBridge CT710"' in text
    assert "CHANNELID    0x9000" in text
    assert f"LIBPATH      {VPCD_DRIVER}" in text
    assert "'Gemalto IDBridge CT710 00 01' port 36865" in capsys.readouterr().out


def test_second_reader_gets_its_own_driver_copy(tmp_path: Path) -> None:
    if not VPCD_DRIVER.exists():
        pytest.skip("vsmartcard-vpcd not installed")
    main(["pcscd-config", str(tmp_path)])
    libpaths = {
        line.split()[1]
        for conf in tmp_path.glob("vpcd-*.conf")
        for line in conf.read_text().splitlines()
        if line.startswith("LIBPATH")
    }
    assert len(libpaths) == 3  # one loaded copy of vpcd per reader


def test_command_loop() -> None:
    calls: list[str] = []

    def insert(index: int, card: CardLike) -> None:
        calls.append(f"insert {index} {type(card).__name__}")

    ops = SlotOps(
        2,
        lambda i: f"slot {i}",
        insert,
        lambda i: calls.append(f"remove {i}"),
        lambda i: calls.append(f"pull {i}"),
    )
    out = io.StringIO()
    script = "list\nremove 1\npull 0\nremove 7\nfly\ninsert 0 no-such-profile\nquit\nremove 0\n"
    command_loop(ops, io.StringIO(script), out)
    assert calls == ["remove 1", "pull 0"]
    text = out.getvalue()
    assert "0: slot 0" in text
    assert "no slot 7" in text
    assert "commands:" in text
    assert "error: ProfileError" in text


def test_serve_inserts_the_profile_card(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = FakeReader()
    read_end, write_end = os.pipe()
    try:
        monkeypatch.setattr(sys, "stdin", os.fdopen(read_end, "r"))
        server = threading.Thread(
            target=main, args=(["serve", "--slot", f"{reader.port}=pk-regular"],), daemon=True
        )
        server.start()
        reader.accept()
        reader.send(b"\x04")  # GET_ATR
        atr = reader.receive()
        os.write(write_end, b"list\nquit\n")
        server.join(10)
        assert not server.is_alive()
    finally:
        os.close(write_end)
        reader.close()
    assert atr is not None
    assert b"PKCARDPK" in atr
