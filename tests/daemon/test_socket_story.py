"""One socket story: one default path, ``$PKCARD_SOCKET`` in every client, one flag per meaning.

``--socket PATH`` is the socket file for every command (pkcardd included: its
directory is the file's); ``--socket-dir DIR`` is pkcardd's directory.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon

from pkcard.aio_client import AsyncPkcardClient
from pkcard.client import DEFAULT_SOCKET, PkcardClient
from pkcard.daemon.config import ConfigError, DaemonConfig
from pkcard.daemon.main import _parser, build_config
from pkcard.endpoint import SOCKET_VARIABLE, client_socket

ROOT = Path(__file__).resolve().parents[2]


def test_one_default_path() -> None:
    assert Path("/run/pkcardd/pkcardd.sock") == DEFAULT_SOCKET
    assert DaemonConfig().socket_path == DEFAULT_SOCKET
    assert build_config(_parser().parse_args([])).socket_path == DEFAULT_SOCKET


def test_client_socket_order() -> None:
    assert client_socket(None, {}) == DEFAULT_SOCKET
    assert client_socket(None, {SOCKET_VARIABLE: ""}) == DEFAULT_SOCKET
    assert client_socket(None, {SOCKET_VARIABLE: "/e/pkcardd.sock"}) == Path("/e/pkcardd.sock")
    assert client_socket("/a/x.sock", {SOCKET_VARIABLE: "/e/pkcardd.sock"}) == Path("/a/x.sock")


def test_pkcard_client_honours_the_environment(
    pkcardd: RunningDaemon, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SOCKET_VARIABLE, str(pkcardd.socket_path))
    with PkcardClient(timeout=20) as client:
        assert {s.reader.name for s in client.list_readers()} == {PK_READER, KZZ_READER}


def test_async_client_honours_the_environment(
    pkcardd: RunningDaemon, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SOCKET_VARIABLE, str(pkcardd.socket_path))

    async def readers() -> set[str]:
        async with AsyncPkcardClient(timeout=20) as client:
            return {s.reader.name for s in await client.list_readers()}

    assert asyncio.run(readers()) == {PK_READER, KZZ_READER}


def test_pkcardd_socket_names_the_file(tmp_path: Path) -> None:
    config = build_config(_parser().parse_args(["--socket", str(tmp_path / "pkcardd.sock")]))
    assert config.socket_dir == tmp_path
    assert config.socket_path == tmp_path / "pkcardd.sock"


def test_pkcardd_socket_with_another_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pkcardd\.sock"):
        build_config(_parser().parse_args(["--socket", str(tmp_path / "other.sock")]))


def test_pkcardd_socket_dir_and_socket_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--socket-dir", str(tmp_path),
                              "--socket", str(tmp_path / "pkcardd.sock")])
    assert "not allowed with" in capsys.readouterr().err


def test_pkcardd_socket_directory_is_the_deprecated_spelling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "pkcardd"):
        config = build_config(_parser().parse_args(["--socket", str(tmp_path)]))
    assert config.socket_dir == tmp_path
    assert "deprecated" in caplog.text
    assert "--socket-dir" in caplog.text


def test_no_document_names_another_default_socket() -> None:
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "packaging").iterdir()]
    for path in texts:
        assert "/run/pkcardd.sock" not in path.read_text(), path
