"""The example token in docs/token.md verifies against the committed test PKI."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_token_simcard import anchors

from pkcard.errors import RefusalReason, TokenRefused
from pkcard.token import CardRole, Environment
from pkcard.verify import CardRecord, CardStatus, NonceOutcome, SessionScope, TokenVerifier

DOC = Path(__file__).resolve().parents[2] / "docs" / "token.md"
NOW = datetime(2026, 11, 25, 9, 1, tzinfo=UTC)
NONCE = hashlib.sha256(b"pkcard docs example challenge").digest()


def example_token() -> str:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- example-token -->", 1)[1].split("```", 2)[1]
    return "".join(block.split())


class OneNonce:
    def __init__(self) -> None:
        self.used = False

    def consume(self, nonce: bytes, client_id: str, now: datetime) -> NonceOutcome:
        if nonce != NONCE or client_id != "ws-ljubljana-01":
            return NonceOutcome.UNKNOWN
        if self.used:
            return NonceOutcome.REUSED
        self.used = True
        return NonceOutcome.ACCEPTED


class Registry:
    def card(self, serial: str) -> CardRecord | None:
        if serial != "PK0000100001":
            return None
        return CardRecord(serial, "90001", CardRole.REGULAR, CardStatus.ACTIVE)

    def granted_authorizations(self, holder_id: str) -> frozenset[str]:
        return frozenset({"I002"})


def test_docs_example_token_verifies():
    verifier = TokenVerifier(anchors(Environment.TEST), Registry(), OneNonce(), lambda: NOW,
                             environment=Environment.TEST)
    token = example_token()
    session = verifier.verify(token, "ws-ljubljana-01")
    assert session.scope is SessionScope.FULL
    assert session.granted == {"I002"}
    assert session.claims.nonce == NONCE
    with pytest.raises(TokenRefused) as info:
        verifier.verify(token, "ws-ljubljana-01")
    assert info.value.reason is RefusalReason.NONCE_REUSED
