"""Benchmark signatures through pkcard's PKCS#11 driver against raw PyKCS11 on SoftHSM2.

In one run, on the same SoftHSM2 tokens (provisioned from pk-regular in a
temporary token directory):

* ``kpep``: KPEP signatures with the SPIN each time. Raw: C_Login(SPIN),
  C_FindObjects, C_Sign(CKM_RSA_PKCS, DigestInfo), C_Logout. Through pkcard:
  ``ProfessionalCard.sign`` over ``Pkcs11PkDriver`` (format check, status
  read, last-try guard, login, key lookup, sign, logout).
* ``auth``: authentication signatures (PIN verified once, shared by both
  paths). Raw: C_FindObjects, C_Sign(CKM_ECDSA).
  Through pkcard: ``ProfessionalCard.authenticate``.

* ``kpep`` through pkcardd: a real ``pkcardd --simulated`` process (audit log
  on) whose PIN-pad reader is served by the same SoftHSM2 tokens
  (``[[card_backends]] driver = "pkcs11"``); one ``SignDocument`` call per
  signature with the precomputed SHA-256 and the SPIN: gRPC over the Unix
  socket, card info and KPEP certificate read, CAdES-BES attributes built,
  login, C_Sign, logout, audit record (fsync).

Each path is a :class:`SignPath`; the ratio is raw rate / path rate (the
overhead factor).

Usage: .venv/bin/python -m bench.pkcs11_sign [--signatures 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import PyKCS11
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.goals import print_goal
from pkcard.client import PkcardClient
from pkcard.pin import PinRef
from pkcard.pk import ProfessionalCard
from pkcard.pkcs11 import KeyId, Pkcs11Module, Pkcs11PkDriver, TokenSelector, digest_info_sha256
from pkcard.secret import Secret
from pkcard.simcard.inprocess import PINPAD_READER
from pkcard.simcard.profile import load_profile
from pkcard.simcard.softhsm import (
    SOFTHSM_MODULE,
    SoftHsmPk,
    provision_pk,
    softhsm_conf,
    write_config,
)
from pkcard.simcard.spec import SecretRef

PROFILE = "pk-regular"
ROOT = Path(__file__).resolve().parent.parent
READY_LIMIT_S = 30.0


@dataclass(frozen=True)
class SignPath:
    """One way to get a signature over a 32-byte hash; ``baseline`` names its raw twin."""

    group: str
    name: str
    sign: Callable[[bytes], bytes]
    baseline: bool = False


def _raw_session(module: Pkcs11Module, serial: str) -> Any:
    token = module.find(TokenSelector(serial=serial))
    return module.open_session(token.slot)


def _key(session: Any, key: KeyId) -> Any:
    template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, bytes([key]))]
    return session.findObjects(template)[0]


def paths(module: Pkcs11Module, card_serial: str, sign_serial: str) -> list[SignPath]:
    profile = load_profile(PROFILE)
    pin = profile.secret_value(SecretRef.PIN)
    spin = profile.secret_value(SecretRef.SPIN)

    raw_sign = _raw_session(module, sign_serial)

    def raw_kpep(digest: bytes) -> bytes:
        raw_sign.login(spin)
        try:  # private objects (and their handles) exist only while logged in
            mechanism = PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS)
            key = _key(raw_sign, KeyId.SIGN)
            return bytes(raw_sign.sign(key, digest_info_sha256(digest), mechanism))
        finally:
            raw_sign.logout()

    raw_auth = _raw_session(module, card_serial)

    def raw_ecdsa(digest: bytes) -> bytes:
        key = _key(raw_auth, KeyId.AUTH)  # a login elsewhere invalidates handles
        return bytes(raw_auth.sign(key, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA)))

    driver = Pkcs11PkDriver(
        module, TokenSelector(serial=card_serial), TokenSelector(serial=sign_serial)
    )
    app = ProfessionalCard(driver)
    spin_secret = Secret(spin)
    app.verify(PinRef.PIN, Secret(pin))

    return [
        SignPath("kpep", "raw PyKCS11", raw_kpep, baseline=True),
        SignPath("kpep", "pkcard driver", lambda d: app.sign(d, spin_secret)),
        SignPath("auth", "raw PyKCS11", raw_ecdsa, baseline=True),
        SignPath("auth", "pkcard driver", app.authenticate),
    ]


@contextmanager
def pkcardd_on_tokens(directory: Path, conf: Path, tokens: SoftHsmPk) -> Iterator[PkcardClient]:
    """A ``pkcardd --simulated`` process serving PINPAD_READER from the SoftHSM2 tokens."""
    config = directory / "pkcardd.toml"
    config.write_text(
        "[[card_backends]]\n"
        f'reader = "{PINPAD_READER.name}"\n'
        'driver = "pkcs11"\n'
        f'module = "{SOFTHSM_MODULE}"\n'
        f'card_token = {{ serial = "{tokens.card_serial}" }}\n'
        f'signature_token = {{ serial = "{tokens.signature_serial}" }}\n'
    )
    run_dir = directory / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "pkcard.daemon.main", "--simulated", "--socket-dir", str(run_dir),
         "--config", str(config), "--audit-log", str(directory / "audit.jsonl"),
         "--log-level", "WARNING"],
        cwd=ROOT, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(process, run_dir / "pkcardd.sock")
        with PkcardClient(run_dir / "pkcardd.sock") as client:
            yield client
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_serving(process: subprocess.Popen[bytes], socket: Path) -> None:
    give_up = time.monotonic() + READY_LIMIT_S
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise SystemExit(f"pkcardd exited with {process.returncode}")
        if socket.exists():
            with grpc.insecure_channel(f"unix:{socket}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                except grpc.RpcError:
                    reply = None
            if reply is not None and reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        time.sleep(0.02)
    raise SystemExit("pkcardd did not start")


def daemon_path(client: PkcardClient) -> SignPath:
    spin = load_profile(PROFILE).secret_value(SecretRef.SPIN)

    def sign(digest: bytes) -> bytes:
        signed = client.sign_document(PINPAD_READER.name, document_sha256=digest, spin=spin)
        return signed.cms

    return SignPath("kpep", "through pkcardd", sign)


def measure(sign_paths: list[SignPath], digests: list[bytes], rounds: int) -> list[float]:
    """Best signatures/s of each path; the paths take turns so load drift hits all alike."""
    best = [0.0] * len(sign_paths)
    for _ in range(rounds):
        for index, path in enumerate(sign_paths):
            start = time.perf_counter()
            for digest in digests:
                path.sign(digest)
            best[index] = max(best[index], len(digests) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--signatures", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(args.signatures)]
    with tempfile.TemporaryDirectory(prefix="pkcard-bench-") as tmp:
        conf = write_config(Path(tmp))
        with softhsm_conf(conf):
            module = Pkcs11Module.load(SOFTHSM_MODULE)
        try:
            tokens = provision_pk(module, load_profile(PROFILE))
            assert tokens.signature_serial is not None
            sign_paths = paths(module, tokens.card_serial, tokens.signature_serial)
            with pkcardd_on_tokens(Path(tmp), conf, tokens) as client:
                sign_paths.insert(2, daemon_path(client))
                rates = measure(sign_paths, digests, args.rounds)
        finally:
            module.close()
    print(f"SoftHSM2, {PROFILE}, {args.signatures} signatures x {args.rounds} rounds (best)")
    baselines = {p.group: rate for p, rate in zip(sign_paths, rates, strict=True) if p.baseline}
    print(f"{'group':6} {'path':16} {'sig/s':>10} {'raw/path':>9}")
    for path, rate in zip(sign_paths, rates, strict=True):
        print(f"{path.group:6} {path.name:16} {rate:10.1f} {baselines[path.group] / rate:9.2f}")
    daemon = next(r for p, r in zip(sign_paths, rates, strict=True) if p.name == "through pkcardd")
    print_goal("G3", baselines["kpep"] / daemon)


if __name__ == "__main__":
    main()
