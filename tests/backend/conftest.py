"""Fixtures for the token, verifier and backend tests (helpers live in tokenrig.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenrig import FAST_SCRYPT_N, NOW, DictRegistry, FakeClock, Pki

from pkcard.backend.core import SessionBackend
from pkcard.backend.registry import Registry
from pkcard.token import Environment
from pkcard.verify import InMemoryNonceStore, TokenVerifier


@pytest.fixture(scope="session")
def test_pki() -> Pki:
    return Pki.create(Environment.TEST)


@pytest.fixture(scope="session")
def prod_pki() -> Pki:
    return Pki.create(Environment.PRODUCTION)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def nonces() -> InMemoryNonceStore:
    return InMemoryNonceStore()


@pytest.fixture
def dict_registry(test_pki: Pki) -> DictRegistry:
    return DictRegistry.for_pki(test_pki)


@pytest.fixture
def verifier(test_pki: Pki, dict_registry: DictRegistry, nonces: InMemoryNonceStore,
             clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(test_pki.anchors(), dict_registry, nonces, clock,
                         environment=Environment.TEST, restricted_authorizations={"I002"})


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "backend.sqlite", scrypt_n=FAST_SCRYPT_N)
    yield reg
    reg.close()


@pytest.fixture
def backend(test_pki: Pki, registry: Registry, clock: FakeClock) -> SessionBackend:
    return SessionBackend(registry, test_pki.anchors(), clock, environment=Environment.TEST,
                          restricted_authorizations={"I002"})
