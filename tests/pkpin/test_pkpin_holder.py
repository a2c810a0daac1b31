"""``pkpin use-backup``, ``revoke-signature``, ``report-lost`` and the card registry's rows
of ``pkpin status``, on a pty in English and Slovenian, through a real ``pkcardd
--simulated`` and its embedded backend (the card registry, over gRPC)."""

from __future__ import annotations

import pytest
from daemon_harness import PK_READER, RunningDaemon
from ptyrun import PkpinSession, base_environment, run_pkpin

from pkcard.errors import SignatureRevoked
from pkcard.holder import LossReason, RegistryStatus
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef
from pkcard.tools.pkpin.messages import ExitCode

REGULAR, BACKUP = "PK0000100001", "PK0000100002"
PASSWORD = load_profile("pk-regular").secret_value(SecretRef.REACTIVATION)
REGULAR_PIN = load_profile("pk-regular").secret_value(SecretRef.PIN)
BACKUP_PIN = load_profile("pk-backup").secret_value(SecretRef.PIN)
SPIN = load_profile("pk-regular").secret_value(SecretRef.SPIN)
WRONG = "Wrong!password-1"
SLOVENIAN = base_environment(LANG="sl_SI.UTF-8")


def args(daemon: RunningDaemon, *rest: str) -> list[str]:
    return ["--socket", str(daemon.socket_path), *rest]


def back_to_regular(daemon: RunningDaemon) -> None:
    daemon.insert(PK_READER, "pk-regular")
    with daemon.client() as client:
        client.reactivate_card(PK_READER, PASSWORD, pin=REGULAR_PIN)


def assert_no_secret_logged(daemon: RunningDaemon, *secrets: str) -> None:
    text = daemon.stderr() + daemon.audit_path.read_text()
    for secret in secrets:
        assert secret not in text


def test_status_shows_the_registry(daemon: RunningDaemon) -> None:
    code, out = run_pkpin(args(daemon, "status"))
    assert code == ExitCode.OK, out
    assert "Card registry:" in out
    assert "Reactivation password:" in out
    assert "5 of 5 tries left (held by the card registry)" in out
    assert "Card switches:" in out


def test_use_backup_in_english(daemon: RunningDaemon) -> None:
    daemon.insert(PK_READER, "pk-backup")
    session = PkpinSession(args(daemon, "use-backup"))
    session.expect(f"Using the backup card {BACKUP} deactivates your regular card")
    session.expect("Why do you switch to the backup card? 1 = the regular card is faulty, "
                   "2 = it is lost, 3 = it is blocked: ")
    session.type_line("7")
    session.expect("Please answer 1, 2 or 3.")
    session.expect("3 = it is blocked: ")
    session.type_line("2")
    session.expect("Switch to the backup card? [y/N] ")
    session.type_line("y")
    session.type_secret("Current PIN: ", BACKUP_PIN)
    session.expect_exit(ExitCode.OK)
    assert f"The backup card {BACKUP} is active" in session.rest()
    session.assert_no_secret_shown()
    code, out = run_pkpin(args(daemon, "status"))
    assert code == ExitCode.OK, out
    assert f"backup card {BACKUP} in use (loss)" in out
    back_to_regular(daemon)
    code, out = run_pkpin(args(daemon, "status"))
    assert f"regular card {REGULAR} reactivated" in out
    assert_no_secret_logged(daemon, BACKUP_PIN, PASSWORD)


def test_use_backup_declined_and_on_the_regular_card(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "use-backup", "--reason", "fault"))
    session.expect_exit(ExitCode.CARD)
    assert f"Card {REGULAR} is your regular card: insert the backup card." in session.transcript
    daemon.insert(PK_READER, "pk-backup")
    session = PkpinSession(args(daemon, "use-backup", "--reason", "fault"))
    session.expect("Switch to the backup card? [y/N] ")
    session.type_line("")
    session.expect_exit(ExitCode.CANCELLED)
    assert "Nothing was switched: the regular card stays active." in session.rest()
    with daemon.client() as client:
        assert client.get_card_status(PK_READER).status is not RegistryStatus.ACTIVE


def test_use_backup_in_slovenian(daemon: RunningDaemon) -> None:
    daemon.insert(PK_READER, "pk-backup")
    session = PkpinSession(args(daemon, "use-backup"), SLOVENIAN)
    session.expect(f"Uporaba rezervne kartice {BACKUP} deaktivira vašo redno kartico")
    session.expect("Zakaj preklapljate na rezervno kartico? 1 = redna kartica je okvarjena, "
                   "2 = izgubljena, 3 = blokirana: ")
    session.type_line("3")
    session.expect("Preklopim na rezervno kartico? [d/N] ")
    session.type_line("d")
    session.type_secret("Trenutni PIN: ", BACKUP_PIN)
    session.expect_exit(ExitCode.OK)
    assert f"Rezervna kartica {BACKUP} je aktivna" in session.rest()
    session.assert_no_secret_shown()
    code, out = run_pkpin(args(daemon, "status"), SLOVENIAN)
    assert code == ExitCode.OK, out
    assert "Register kartic:" in out
    assert "Zamenjave kartic:" in out
    assert f"v uporabi rezervna kartica {BACKUP} (blokada)" in out
    back_to_regular(daemon)


def test_revoke_signature_in_english(daemon: RunningDaemon) -> None:
    warning = (f"Revoking the qualified signing certificate (KPEP) of card {REGULAR} cannot be "
               "undone")
    session = PkpinSession(args(daemon, "revoke-signature"))
    session.expect(warning)
    session.expect("Revoke the signing certificate? [y/N] ")
    session.type_line("n")
    session.expect_exit(ExitCode.CANCELLED)
    assert "Nothing was revoked." in session.rest()

    session = PkpinSession(args(daemon, "revoke-signature"))
    session.expect("[y/N] ")
    session.type_line("y")
    session.type_secret("Reactivation password: ", WRONG)
    session.expect_exit(ExitCode.WRONG_PIN)
    assert "Wrong reactivation password: 4 tries left" in session.rest()

    session = PkpinSession(args(daemon, "revoke-signature"))
    session.expect("[y/N] ")
    session.type_line("yes")
    session.type_secret("Reactivation password: ", PASSWORD)
    session.expect_exit(ExitCode.OK)
    assert (f"The qualified signing certificate (KPEP) of card {REGULAR} is revoked: the card "
            "no longer signs.") in session.rest()
    session.assert_no_secret_shown()
    with daemon.client() as client, pytest.raises(SignatureRevoked):
        client.sign_document(PK_READER, b"a prescription", spin=SPIN)
    code, out = run_pkpin(args(daemon, "status"))
    assert code == ExitCode.OK, out
    assert "Signing certificate:" in out
    assert "revoked: valid until" in out
    assert_no_secret_logged(daemon, PASSWORD, WRONG, SPIN)


def test_revoke_signature_in_slovenian(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "revoke-signature", "--serial", REGULAR), SLOVENIAN)
    session.expect(f"Preklica kvalificiranega potrdila za elektronski podpis (KPEP) kartice "
                   f"{REGULAR} ni mogoče razveljaviti")
    session.expect("Prekličem potrdilo za podpisovanje? [d/N] ")
    session.type_line("d")
    session.type_secret("Geslo za reaktivacijo: ", PASSWORD)
    session.expect_exit(ExitCode.OK)
    assert f"KPEP) kartice {REGULAR} je preklicano: kartica ne podpisuje več." in session.rest()
    with daemon.client() as client, pytest.raises(SignatureRevoked) as refused:
        client.sign_document(PK_READER, b"a prescription", spin=SPIN)
    code, out = run_pkpin(args(daemon, "status"), SLOVENIAN)
    assert code == ExitCode.OK, out
    assert "preklicano: " in out
    assert refused.value is not None


def test_report_lost_in_english(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "report-lost", "--serial", BACKUP))
    session.expect(f"Why do you report card {BACKUP}? 1 = lost or destroyed, 2 = stolen, "
                   "3 = misused: ")
    session.type_line("2")
    session.expect(f"Card {BACKUP} will be revoked for good, with its qualified signing "
                   "certificate: it can never be used again.")
    session.expect("Revoke the card for good? [y/N] ")
    session.type_line("y")
    session.type_secret("Reactivation password: ", PASSWORD)
    session.expect_exit(ExitCode.OK)
    said = session.rest()
    assert f"Card {BACKUP} is revoked for good (stolen)." in said
    assert "Apply for a new card" in said
    assert "Prijavni list za profesionalno kartico" in said
    assert "within eight days" in said
    assert "01 30 77 300" in said
    assert "kzz_sluzba@zzzs.si" in said
    session.assert_no_secret_shown()
    daemon.insert(PK_READER, "pk-backup")
    with daemon.client() as client:
        status = client.get_card_status(PK_READER)
    assert (status.status, status.loss_reason) == (RegistryStatus.REVOKED, LossReason.STOLEN)
    code, out = run_pkpin(args(daemon, "status"))
    assert code == ExitCode.OK, out
    assert "revoked for good (reported stolen)" in out
    again = PkpinSession(args(daemon, "report-lost", "--serial", BACKUP, "--reason", "lost"))
    again.expect("[y/N] ")
    again.type_line("y")
    again.type_secret("Reactivation password: ", PASSWORD)
    again.expect_exit(ExitCode.DAEMON)
    assert "The card registry refused the request." in again.rest()
    assert_no_secret_logged(daemon, PASSWORD)


def test_report_lost_in_slovenian(daemon: RunningDaemon) -> None:
    session = PkpinSession(args(daemon, "report-lost"), SLOVENIAN)
    session.expect(f"Zakaj sporočate kartico {REGULAR}? 1 = izgubljena ali uničena, "
                   "2 = ukradena, 3 = zlorabljena: ")
    session.type_line("3")
    session.expect("Trajno prekličem kartico? [d/N] ")
    session.type_line("d")
    session.type_secret("Geslo za reaktivacijo: ", PASSWORD)
    session.expect_exit(ExitCode.OK)
    said = session.rest()
    assert f"Kartica {REGULAR} je trajno preklicana (zlorabljena)." in said
    assert "Vložite zahtevo za izdajo novega izvoda PK" in said
    assert "v osmih dneh" in said
    assert "01 30 77 300" in said
    assert "kzz_sluzba@zzzs.si" in said
    with daemon.client() as client:
        assert client.get_card_status(PK_READER).status is RegistryStatus.REVOKED


def test_the_holder_commands_need_the_daemon() -> None:
    for command in ("revoke-signature", "report-lost", "use-backup"):
        code, out = run_pkpin(["--simulated", command])
        assert code == ExitCode.USAGE
        assert "works only through pkcardd" in out
