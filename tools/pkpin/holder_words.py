"""pkpin's words for the holder's backend calls (issue 15): revoking the KPEP, reporting a
card lost, stolen or misused, switching to the backup card, and the card registry's part of
``pkpin status``. The seed's duties and ZZZS's contact are quoted as the seed gives them."""

from __future__ import annotations

from datetime import datetime

from pkcard.holder import (
    BackendCardStatus,
    BackupSwitchReason,
    CardSwitchRecord,
    LossReason,
    RegistryStatus,
    SwitchKind,
)
from pkcard.tools.pkpin.messages import Messages

ZZZS_PHONE = "01 30 77 300"
ZZZS_EMAIL = "kzz_sluzba@zzzs.si"


class HolderWords:
    """The words of ``revoke-signature``, ``report-lost``, ``use-backup`` and the registry rows
    of ``status``, in the language of ``words``."""

    def __init__(self, words: Messages) -> None:
        self._w = words

    def tr(self, text: str) -> str:
        return self._w.tr(text)

    # --- revoke-signature ---------------------------------------------------------

    def revoke_warning(self, serial: str) -> str:
        return self.tr(
            "Revoking the qualified signing certificate (KPEP) of card %(serial)s cannot be "
            "undone: the card will no longer sign. A new KPEP needs a new application, handed "
            "in in person at a ZZZS registration office.") % {"serial": serial}

    def revoke_question(self) -> str:
        return self.tr("Revoke the signing certificate? [y/N] ")

    def not_revoked(self) -> str:
        return self.tr("Nothing was revoked.")

    def revoked(self, serial: str) -> str:
        return self.tr("The qualified signing certificate (KPEP) of card %(serial)s is revoked: "
                       "the card no longer signs.") % {"serial": serial}

    # --- report-lost ---------------------------------------------------------------

    def loss_question(self, serial: str) -> str:
        return self.tr("Why do you report card %(serial)s? 1 = lost or destroyed, 2 = stolen, "
                       "3 = misused: ") % {"serial": serial}

    def answer_one_two_three(self) -> str:
        return self.tr("Please answer 1, 2 or 3.")

    def loss_warning(self, serial: str) -> str:
        return self.tr("Card %(serial)s will be revoked for good, with its qualified signing "
                       "certificate: it can never be used again.") % {"serial": serial}

    def loss_confirm(self) -> str:
        return self.tr("Revoke the card for good? [y/N] ")

    def nothing_reported(self) -> str:
        return self.tr("Nothing was reported.")

    def reported(self, serial: str, reason: LossReason) -> str:
        return self.tr("Card %(serial)s is revoked for good (%(reason)s).") % {
            "serial": serial, "reason": self.loss_reason(reason)}

    def duties(self) -> list[str]:
        """What the seed says a holder does next, and ZZZS's contact."""
        return [
            self.tr("What to do now:"),
            self.tr("- Apply for a new card: fill in the application form (Prijavni list za "
                    "profesionalno kartico) and send it to ZZZS, Služba za poslovanje s "
                    "karticami, Miklošičeva cesta 24, 1507 Ljubljana, or have your employer's "
                    "authorised person order it on the ZZZS portal."),
            self.tr("- Report a lost or destroyed card to ZZZS within eight days."),
            self.tr("- ZZZS: phone %(phone)s, e-mail %(email)s.") % {
                "phone": ZZZS_PHONE, "email": ZZZS_EMAIL},
        ]

    def loss_reason(self, reason: LossReason) -> str:
        names = {
            LossReason.LOST: self.tr("lost or destroyed"),
            LossReason.STOLEN: self.tr("stolen"),
            LossReason.MISUSED: self.tr("misused"),
        }
        return names[reason]

    # --- use-backup ----------------------------------------------------------------

    def switch_warning(self, serial: str) -> str:
        return self.tr("Using the backup card %(serial)s deactivates your regular card: it "
                       "cannot be used until you reactivate it with your reactivation password "
                       "(pkpin reactivate).") % {"serial": serial}

    def not_a_backup(self, serial: str) -> str:
        return self.tr("Card %(serial)s is your regular card: insert the backup card.") % {
            "serial": serial}

    def switch_question(self) -> str:
        return self.tr("Why do you switch to the backup card? 1 = the regular card is faulty, "
                       "2 = it is lost, 3 = it is blocked: ")

    def switch_confirm(self) -> str:
        return self.tr("Switch to the backup card? [y/N] ")

    def not_switched(self) -> str:
        return self.tr("Nothing was switched: the regular card stays active.")

    def switched(self, serial: str) -> str:
        return self.tr("The backup card %(serial)s is active; your regular card is deactivated "
                       "until you reactivate it (pkpin reactivate).") % {"serial": serial}

    def switch_reason(self, reason: BackupSwitchReason) -> str:
        names = {
            BackupSwitchReason.FAULT: self.tr("fault"),
            BackupSwitchReason.LOSS: self.tr("loss"),
            BackupSwitchReason.BLOCK: self.tr("block"),
        }
        return names[reason]

    # --- status --------------------------------------------------------------------

    def label_registry(self) -> str:
        return self.tr("Card registry")

    def label_switches(self) -> str:
        return self.tr("Card switches")

    def registry_state(self, status: BackendCardStatus) -> str:
        if status.status is RegistryStatus.REVOKED:
            if status.loss_reason is not None:
                return self.tr("revoked for good (reported %(reason)s)") % {
                    "reason": self.loss_reason(status.loss_reason)}
            return self.tr("revoked for good")
        names = {
            RegistryStatus.ACTIVE: self.tr("active"),
            RegistryStatus.STANDBY: self.tr("standby: not in use"),
            RegistryStatus.INACTIVE: self.tr("inactive: your other card is in use"),
        }
        return names[status.status]

    def password_state(self, tries_left: int, max_tries: int) -> str:
        if tries_left <= 0:
            return self.tr("blocked at the card registry")
        return self.tr("%(left)d of %(max)d tries left (held by the card registry)") % {
            "left": tries_left, "max": max_tries}

    def kpep_revoked(self) -> str:
        return self.tr("revoked")

    def switch_line(self, item: CardSwitchRecord) -> str:
        when = _local(item.time)
        if item.kind is SwitchKind.REGULAR_REACTIVATED:
            return self.tr("%(time)s: regular card %(serial)s reactivated") % {
                "time": when, "serial": item.card_serial}
        reason = "?" if item.reason is None else self.switch_reason(item.reason)
        return self.tr("%(time)s: backup card %(serial)s in use (%(reason)s)") % {
            "time": when, "serial": item.card_serial, "reason": reason}

    def none(self) -> str:
        return self.tr("none")


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
