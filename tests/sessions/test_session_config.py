"""pkcardd's session-related configuration keys: workstation_id, backend, [backend_tls]."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkcard.daemon.config import BackendConfig, BackendTls, ConfigError, parse_config


def test_backend_is_optional_and_takes_an_address() -> None:
    assert parse_config({}).backend is None
    config = parse_config({"backend": "unix:/run/backend.sock", "workstation_id": "ws-amb.3"})
    assert config.backend == BackendConfig("unix:/run/backend.sock")
    assert config.workstation_id == "ws-amb.3"


def test_backend_tls() -> None:
    config = parse_config({"backend": "registry.example:443", "backend_tls": {
        "client_certificate": "/c.pem", "client_key": "/c.key", "server_ca": "/ca.pem"}})
    assert config.backend == BackendConfig(
        "registry.example:443", BackendTls(Path("/c.pem"), Path("/c.key"), Path("/ca.pem")))


@pytest.mark.parametrize("data", [
    {"backend": ""},
    {"backend": 5},
    {"backend_tls": {"client_certificate": "/c.pem", "client_key": "/k", "server_ca": "/ca"}},
    {"backend": "h:1", "backend_tls": {"client_certificate": "/c.pem"}},
    {"backend": "h:1", "backend_tls": {"client_certificate": "/c", "client_key": "/k",
                                       "server_ca": "/ca", "extra": "x"}},
    {"workstation_id": "has space"},
    {"workstation_id": "x" * 65},
])
def test_bad_session_keys_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_config(data)


def test_the_default_workstation_id_is_a_valid_token_issuer() -> None:
    workstation = parse_config({}).workstation_id
    assert 1 <= len(workstation) <= 64
    assert all(c.isalnum() or c in "._:-" for c in workstation)
