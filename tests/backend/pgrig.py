"""Helpers of the PostgreSQL tests: holders with their own cards, tokens at the real time,
racing calls."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tokenrig import NOW, PASSWORD, Card, Pki, make_token

from pkcard.backend.devpki import KeyKind, issue_card_cert
from pkcard.backend.registry import Registry
from pkcard.secret import Secret
from pkcard.token import CardRole


@dataclass(frozen=True)
class Holder:
    holder_id: str
    regular: Card
    backup: Card


def write_anchors(pki: Pki, directory: Path) -> tuple[Path, Path]:
    pk, kzz = directory / "pk-ca.pem", directory / "kzz-ca.pem"
    pk.write_bytes(pki.dev.pk_ca.cert.public_bytes(Encoding.PEM))
    kzz.write_bytes(pki.dev.kzz_ca.cert.public_bytes(Encoding.PEM))
    return pk, kzz


def enroll(registry: Registry, pki: Pki, holder_id: str) -> Holder:
    """A holder with a regular PK (ACTIVE) and a backup PK (STANDBY), I002 and I003 granted."""
    valid = {"not_before": NOW - timedelta(days=300), "not_after": NOW + timedelta(days=1500)}
    regular = issue_card_cert(pki.dev.pk_ca, "Dr Race", holder_id, KeyKind.EC_P256, **valid)
    backup = issue_card_cert(pki.dev.pk_ca, "Dr Race", holder_id, KeyKind.EC_P256, **valid)
    holder = Holder(holder_id, Card(f"R{holder_id}", CardRole.REGULAR, regular),
                    Card(f"B{holder_id}", CardRole.BACKUP, backup))
    now = datetime.now(UTC)
    registry.add_holder(holder_id, "Dr Race", now)
    for card in (holder.regular, holder.backup):
        registry.add_card(card.serial, holder_id, card.role, now,
                          auth_cert_sha256=hashlib.sha256(card.cert_der).digest(),
                          reactivation_password=Secret(PASSWORD)
                          if card.role is CardRole.REGULAR else None)
    for code in ("I002", "I003"):
        registry.grant(holder_id, code, now)
    return holder


def token(pki: Pki, holder: Holder, card: Card, nonce: bytes) -> str:
    return make_token(pki, card, nonce, now=datetime.now(UTC), actor_id=holder.holder_id)


def race(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once (threads released together); each result or its RpcError."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except grpc.RpcError as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return f"{error.code().name}: no status details"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return error.code().name
