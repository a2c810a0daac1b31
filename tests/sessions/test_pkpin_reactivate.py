"""``pkpin reactivate`` through a real ``pkcardd --simulated`` to a real backend."""

from __future__ import annotations

import io
from collections.abc import Callable

from sessionrig import AUTHORIZATIONS, Rig, profile_secret

from pkcard.secret import Secret
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.spec import SecretRef
from pkcard.token import BackupSwitchReason
from pkcard.tools.pkpin.cli import run
from pkcard.tools.pkpin.messages import ExitCode
from pkcard.tools.pkpin.terminal import Terminal

PK_READER = PINPAD_READER.name
KZZ_READER = TWIN_READER.name
WRONG = "Wrong!password-1"


class ScriptedTerminal(Terminal):
    """A terminal whose holder types ``answers`` in turn; records the prompts."""

    def __init__(self, answers: list[str], prompts: list[str]) -> None:
        super().__init__(-1)
        self._answers = answers
        self._prompts = prompts

    def read_secret(self, prompt: str) -> Secret:
        self._prompts.append(prompt)
        return Secret(self._answers.pop(0))


def pkpin(rig: Rig, answers: list[str], *extra: str) -> tuple[ExitCode, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    prompts: list[str] = []
    terminal: Callable[[], Terminal] = lambda: ScriptedTerminal(answers, prompts)  # noqa: E731
    code = run(["--socket", str(rig.daemon.socket_path), *extra, "reactivate"],
               environ={"LANG": "C"}, out=out, err=err, open_terminal=terminal)
    return code, out.getvalue() + err.getvalue(), prompts


def use_backup_card(rig: Rig) -> None:
    rig.daemon.insert(KZZ_READER, "kzz")
    rig.daemon.insert(PK_READER, "pk-backup")
    with rig.daemon.client() as client:
        opened = client.open_session(PK_READER, rig.backend.challenge(), AUTHORIZATIONS,
                                     kzz_reader=KZZ_READER,
                                     pin=profile_secret("pk-backup", SecretRef.PIN),
                                     backup_switch=BackupSwitchReason.FAULT)
        client.close_session(opened.session_id)
    assert rig.backend.redeem(opened.token.token).backup_activated


def test_pkpin_reactivate(simulated_rig: Rig) -> None:
    use_backup_card(simulated_rig)
    simulated_rig.daemon.insert(PK_READER, "pk-regular")
    pin = profile_secret("pk-regular", SecretRef.PIN)  # the card proves it is in the reader
    code, text, prompts = pkpin(simulated_rig, [WRONG, pin], "--reader", PK_READER)
    assert code == ExitCode.WRONG_PIN
    assert "Wrong reactivation password: 4 tries left" in text
    assert prompts == ["Reactivation password: ", "Current PIN: "]

    password = profile_secret("pk-regular", SecretRef.REACTIVATION)
    code, text, _ = pkpin(simulated_rig, [password, pin], "--reader", PK_READER)
    assert code == ExitCode.OK
    assert "Your regular card PK0000100001 is active again" in text
    assert password not in text
    assert password not in simulated_rig.daemon.log()
    assert WRONG not in simulated_rig.daemon.audit_path.read_text()
    assert pin not in simulated_rig.daemon.log() + simulated_rig.daemon.audit_path.read_text()


def test_pkpin_reactivate_needs_the_daemon(simulated_rig: Rig) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(["--direct", "reactivate"], environ={"LANG": "C"}, out=out, err=err)
    assert code == ExitCode.USAGE
    assert "works only through pkcardd" in err.getvalue() + out.getvalue()


def test_break8_pkpin_reactivate_with_a_wrong_card_pin_spends_no_password_try(
    simulated_rig: Rig,
) -> None:
    """Without the card's PIN there is no proof of possession, so no reactivation try counts;
    pkpin words the refusal as a PIN error, not as a wrong reactivation password."""
    simulated_rig.daemon.insert(PK_READER, "pk-regular")
    pin = profile_secret("pk-regular", SecretRef.PIN)
    wrong_pin = pin[:-1] + str((int(pin[-1]) + 1) % 10)
    password = profile_secret("pk-regular", SecretRef.REACTIVATION)
    code, text, _ = pkpin(simulated_rig, [password, wrong_pin], "--reader", PK_READER)
    assert code == ExitCode.WRONG_PIN
    assert "reactivation password" not in text.lower()
    tries = simulated_rig.backend.registry._connection().execute(
        "SELECT tries_left FROM reactivation").fetchall()
    assert tries == [(5,)]
    code, text, _ = pkpin(simulated_rig, [password, pin], "--reader", PK_READER)
    assert code == ExitCode.OK, text
