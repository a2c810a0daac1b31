"""The ``[[card_backends]]`` and ``signature_trust_anchors`` configuration, and the wire form
of a rejected signature."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pkcard import error_codes
from pkcard.client import sign_request
from pkcard.daemon.card_backends import CardBackends
from pkcard.daemon.config import (
    CardBackendRule,
    CardDriver,
    ConfigError,
    DaemonConfig,
    ReaderBackend,
    parse_config,
)
from pkcard.daemon.server import Daemon, StartupError
from pkcard.daemon.signatures import load_trust_anchors, simulated_trust_anchor_paths
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import SignatureRejected, SignatureRejection
from pkcard.pkcs11 import TokenSelector
from pkcard.simcard.inprocess import SimulatedReaderSystem

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def test_pkcs11_rule_parses_into_selectors() -> None:
    config = parse_config({
        "card_backends": [
            {"reader": "Gemalto", "driver": "pkcs11", "module": SOFTHSM,
             "card_token": {"serial": "abc"},
             "signature_token": {"label": "PK0000100001 KPEP", "slot_description": "Gem"}},
            {"reader": "Other"},
        ],
        "signature_trust_anchors": ["/etc/pkcardd/pk-ca.pem"],
    })
    first, second = config.card_backends
    assert first == CardBackendRule(
        "Gemalto", CardDriver.PKCS11, Path(SOFTHSM), TokenSelector(serial="abc"),
        TokenSelector(slot_description="Gem", label="PK0000100001 KPEP"),
    )
    assert second == CardBackendRule("Other")
    assert config.signature_trust_anchors == (Path("/etc/pkcardd/pk-ca.pem"),)


def test_defaults_are_apdu_and_no_explicit_anchors() -> None:
    config = parse_config({})
    assert config.card_backends == ()
    assert config.signature_trust_anchors is None


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"driver": "smoke-signals"}, "driver"),
        ({"driver": "pkcs11", "card_token": {"serial": "a"}}, "module"),
        ({"driver": "pkcs11", "module": SOFTHSM}, "card_token"),
        ({"driver": "pkcs11", "module": SOFTHSM, "card_token": {}}, "card_token"),
        ({"driver": "pkcs11", "module": SOFTHSM, "card_token": {"pin": "1234"}}, "pin"),
        ({"driver": "pkcs11", "module": SOFTHSM, "card_token": {"serial": ""}}, "non-empty"),
        ({"module": SOFTHSM}, "pkcs11"),
        ({"reader": 7}, "reader"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rules_name_the_key(entry: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_config({"card_backends": [entry]})


@pytest.mark.parametrize("value", ["x.pem", [""], [3]])
def test_bad_trust_anchor_lists_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="signature_trust_anchors"):
        parse_config({"signature_trust_anchors": value})


def test_card_backends_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError, match="array"):
        parse_config({"card_backends": {"reader": "x"}})


_NAMES = st.text(alphabet="ABab ", max_size=4)


@given(prefixes=st.lists(_NAMES, max_size=5), reader=_NAMES)
def test_first_matching_rule_wins(prefixes: list[str], reader: str) -> None:
    rules = [
        CardBackendRule(p, CardDriver.PKCS11, Path(SOFTHSM), TokenSelector(label=str(i)))
        for i, p in enumerate(prefixes)
    ]
    chosen = CardBackends(rules, ReaderWorkers(SimulatedReaderSystem())).rule(reader)
    matching = [i for i, p in enumerate(prefixes) if reader.startswith(p)]
    if matching:
        assert chosen is rules[matching[0]]
    else:
        assert chosen.driver is CardDriver.APDU


def test_simulated_anchors_are_the_test_pk_cas() -> None:
    anchors = load_trust_anchors(simulated_trust_anchor_paths())
    names = sorted(a.subject.rfc4514_string() for a in anchors)
    assert len(names) == 2
    assert all("PK CA" in name for name in names)


@given(st.sampled_from(SignatureRejection))
def test_rejection_survives_the_wire(rejection: SignatureRejection) -> None:
    detail = error_codes.describe(SignatureRejected(rejection, "some words"))
    assert detail is not None
    assert detail.reason is error_codes.Reason.SIGNATURE_INVALID
    assert detail.code is error_codes.RpcCode.INVALID_ARGUMENT
    rebuilt = error_codes.rebuild(detail.reason.value, detail.metadata, detail.message)
    assert isinstance(rebuilt, SignatureRejected)
    assert rebuilt.reason is rejection


@pytest.mark.parametrize(("document", "digest"), [(None, None), (b"doc", b"\x00" * 32)])
def test_sign_request_needs_exactly_one_content(
    document: bytes | None, digest: bytes | None
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sign_request("reader", document, digest, "", confirm_last_try=False)


def test_daemon_refuses_to_start_without_the_module(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="pksig-", dir="/tmp"))
    try:
        module = tmp_path / "nope.so"
        rule = CardBackendRule("", CardDriver.PKCS11, module, TokenSelector(label="x"))
        config = DaemonConfig(
            socket_dir=root / "run", reader_backend=ReaderBackend.SIMULATED,
            card_backends=(rule,),
        )
        with pytest.raises(StartupError, match=r"nope\.so"):
            Daemon(config, SimulatedReaderSystem()).start()
        assert not config.socket_path.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
