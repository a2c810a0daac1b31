"""Sessions over PKCS#11 card backends (issue #15 point 1): both cards as SoftHSM2 tokens.

pkcardd --simulated is configured with one ``[[card_backends]]`` rule per
reader: the PK reader is served by the PK's SoftHSM2 tokens (card token and
KPEP token), the KZZ reader by a KZZ token whose objects carry vendor-style
IDs and labels (found by key usage). The simulated cards leave both readers,
so only the tokens can answer; the tokens are redeemed at a real backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sessionrig import AUTHORIZATIONS, Rig, profile_secret, rig

from pkcard.backend.v1 import backend_pb2 as bpb
from pkcard.errors import PinError, SessionEnded, WrongPin
from pkcard.pin import PinRef
from pkcard.pkcs11 import Pkcs11Module
from pkcard.sessions import RestrictedMode, RestrictedReason
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.profile import load_profile
from pkcard.simcard.softhsm import (
    SOFTHSM_MODULE,
    provision_kzz,
    provision_pk,
    softhsm_conf,
    write_config,
)
from pkcard.simcard.spec import SecretRef

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
PIN = profile_secret("pk-regular", SecretRef.PIN)
PATIENT = "900000011"  # the kzz profile's ZZZS number


def _tokens(root: Path) -> str:
    """Provision pk-regular and kzz tokens under ``root``; the daemon's ``[[card_backends]]``."""
    conf = write_config(root / "softhsm")
    with softhsm_conf(conf):
        module = Pkcs11Module.load(SOFTHSM_MODULE)
        try:
            pk = provision_pk(module, load_profile("pk-regular"))
            kzz = provision_kzz(module, load_profile("kzz"))
        finally:
            module.close()
    return (
        "[[card_backends]]\n"
        f'reader = "{PK_READER}"\n'
        'driver = "pkcs11"\n'
        f'module = "{SOFTHSM_MODULE}"\n'
        f'card_token = {{ serial = "{pk.card_serial}" }}\n'
        f'signature_token = {{ serial = "{pk.signature_serial}" }}\n'
        "[[card_backends]]\n"
        f'reader = "{KZZ_READER}"\n'
        'driver = "pkcs11"\n'
        f'module = "{SOFTHSM_MODULE}"\n'
        f'card_token = {{ label = "{kzz.card_label}" }}\n'
    )


@pytest.fixture(scope="module")
def token_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if not SOFTHSM_MODULE.exists():
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE})")
    conf_dir = tmp_path_factory.mktemp("softhsm-sessions")
    conf = write_config(conf_dir)  # replaced by the rig's own; the daemon inherits the env
    with softhsm_conf(conf):
        holder: list[Path] = []

        def extra(root: Path) -> str:
            holder.append(root)
            text = _tokens(root)
            # The daemon must load SoftHSM2 with the rig's token directory.
            os.environ["SOFTHSM2_CONF"] = str(root / "softhsm" / "softhsm2.conf")
            return text

        generator = rig(simulated=True, extra_config=extra)
        running = next(generator)
        # The simulated cards leave: only the PKCS#11 tokens can answer.
        running.daemon.remove(PK_READER)
        running.daemon.remove(KZZ_READER)
        yield running
        generator.close()


def test_get_card_reads_both_tokens(token_rig: Rig) -> None:
    with token_rig.daemon.client() as client:
        pk = client.get_card(PK_READER)
        kzz = client.get_card(KZZ_READER)
    assert pk.backend == "pkcs11"
    assert pk.pk is not None
    assert pk.pk.card_serial == "PK0000100001"
    assert kzz.backend == "pkcs11"
    assert kzz.kzz is not None
    assert str(kzz.kzz.zzzs_number) == PATIENT


def test_open_redeem_refresh_over_tokens(token_rig: Rig) -> None:
    with token_rig.daemon.client() as client:
        opened = client.open_session(PK_READER, token_rig.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=KZZ_READER, pin=PIN)
        redeemed = token_rig.backend.redeem(opened.token.token)
        assert redeemed.scope == bpb.SCOPE_FULL
        assert list(redeemed.granted_authorizations) == sorted(AUTHORIZATIONS)
        assert redeemed.patient_id == PATIENT
        assert redeemed.card_serial == "PK0000100001"

        refreshed = client.refresh_session(opened.session_id, token_rig.backend.challenge())
        assert refreshed.token != opened.token.token
        again = token_rig.backend.redeem(refreshed.token)
        assert again.scope == bpb.SCOPE_FULL
        assert again.patient_id == PATIENT
        assert client.close_session(opened.session_id) is True
        with pytest.raises(SessionEnded):
            client.refresh_session(opened.session_id, token_rig.backend.challenge())


def test_restricted_session_over_the_pk_token(token_rig: Rig) -> None:
    with token_rig.daemon.client() as client:
        opened = client.open_session(
            PK_READER, token_rig.backend.challenge(), AUTHORIZATIONS,
            restricted=RestrictedMode(RestrictedReason.EMERGENCY, PATIENT), pin=PIN)
        redeemed = token_rig.backend.redeem(opened.token.token)
        client.close_session(opened.session_id)
    assert redeemed.scope == bpb.SCOPE_RESTRICTED
    assert redeemed.card_serial == "PK0000100001"


def test_wrong_pin_on_the_token_opens_nothing(token_rig: Rig) -> None:
    wrong = PIN[:-1] + ("0" if PIN[-1] != "0" else "1")
    with token_rig.daemon.client() as client:
        with pytest.raises(WrongPin):
            client.open_session(PK_READER, token_rig.backend.challenge(), AUTHORIZATIONS,
                                kzz_reader=KZZ_READER, pin=wrong)
        # A token has no PIN pad here: the PIN must be sent again.
        with pytest.raises(PinError, match="not verified"):
            client.open_session(PK_READER, token_rig.backend.challenge(), AUTHORIZATIONS,
                                kzz_reader=KZZ_READER)
        client.verify_pin(PK_READER, PinRef.PIN, PIN)  # resets the token's count


def test_reactivate_card_proves_possession_with_the_token(token_rig: Rig) -> None:
    password = profile_secret("pk-regular", SecretRef.REACTIVATION)
    with token_rig.daemon.client() as client:
        serial = client.reactivate_card(PK_READER, password, pin=PIN)
    assert serial == "PK0000100001"
