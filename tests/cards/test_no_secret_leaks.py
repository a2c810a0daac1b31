"""No secret used in these tests appears in any exception text, repr or captured log line."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import pytest
from cardrig import PkRig

from pkcard.errors import PkcardError
from pkcard.pin import PinRef
from pkcard.secret import Secret
from pkcard.simcard.spec import SecretRef

WRONG = ("47195283", "40719382", "470193", "Wrong!pass-99")
NEW = ("60718293", "503817")
WEAK = ("120381", "1234", "1111", "311299", "12a4")


Run = Callable[[Callable[[], object]], None]


def exercise(rig: PkRig, run: Run) -> None:
    """Every operation, with right, wrong, weak and malformed secrets."""
    pin, puk = rig.secret(SecretRef.PIN), rig.secret(SecretRef.PUK)
    app = rig.app
    digest = hashlib.sha256(b"x").digest()
    run(app.read_card)
    run(app.pin_statuses)
    for _ in range(3):
        run(lambda: app.verify(PinRef.PIN, Secret(WRONG[0]), confirm_last_try=True))
    for weak in WEAK:
        run(lambda w=weak: app.change(PinRef.PIN, Secret(pin), Secret(w)))
        run(lambda w=weak: app.unblock(Secret(puk), Secret(w)))
    run(lambda: app.unblock(Secret(WRONG[1]), Secret(NEW[0])))
    run(lambda: app.unblock(Secret(puk), Secret(NEW[0])))
    run(lambda: app.verify(PinRef.PIN, Secret(NEW[0])))
    run(lambda: app.change(PinRef.PIN, Secret(NEW[0]), Secret(pin)))
    run(lambda: app.activate_signature(Secret(WRONG[2]), Secret(NEW[1])))
    if rig.card.profile.name == "pk-transport":
        tpin = rig.secret(SecretRef.TPIN)
        run(lambda: app.activate_signature(Secret(tpin), Secret(NEW[1])))
    run(lambda: app.sign(digest, Secret(NEW[1])))
    run(lambda: app.present_reactivation_password(Secret(WRONG[3])))
    run(lambda: app.verify(PinRef.PIN, Secret("")))


def test_no_secret_in_errors_reprs_or_logs(
    pk: Callable[[str], PkRig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    secrets: set[str] = set(WRONG) | set(NEW) | set(WEAK)

    def run(call: Callable[[], object]) -> None:
        try:
            result = call()
        except PkcardError as exc:
            texts.extend([str(exc), repr(exc), repr(exc.args)])
        else:
            texts.append(repr(result))

    for name in ("pk-regular", "pk-transport", "pk-blocked"):
        rig = pk(name)
        for ref in SecretRef:
            spec = rig.card.profile.secret(ref)
            if spec.value is not None:
                secrets.add(spec.value)
        exercise(rig, run)
        texts.append(repr(rig.app))
        texts.append(repr(rig.app.verified))

    texts.append(caplog.text)
    assert caplog.records, "the operations should have logged something at DEBUG"
    assert len(texts) > 50
    joined = "\n".join(texts)
    leaked = sorted(s for s in secrets if s in joined)
    assert leaked == []
