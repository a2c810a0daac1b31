"""pkpin's commands: what each asks, checks, sends and says.

Every PIN command reads the card's state first (spends nothing), refuses
early when the secret is blocked or not usable or when pkcardd's failed-PIN
pause holds, asks before spending a last try, collects every secret with
echo off, applies the format checks and the PIN policy (asking again for a
refused new value, up to :data:`NEW_PIN_ATTEMPTS` times, without asking for
the current one again), and only then sends one operation to the card.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TextIO

from pkcard.activation import require_supported_reader
from pkcard.errors import PinRule, RateLimited, WeakPin
from pkcard.holder import BackendCardStatus
from pkcard.pin import (
    PIN_FORMATS,
    PinRef,
    PinStatus,
    check_confirmation,
    check_new_pin,
    check_presented,
    is_last_try,
    require_transport,
    require_usable,
)
from pkcard.readers import CardKind, ReaderState
from pkcard.secret import Secret
from pkcard.tools.pkpin.errors import Cancelled, NoPinPad
from pkcard.tools.pkpin.holder_words import HolderWords
from pkcard.tools.pkpin.messages import ExitCode, Messages
from pkcard.tools.pkpin.service import PinService
from pkcard.tools.pkpin.terminal import Terminal


class PinCommand(IntEnum):
    CHANGE_PIN = 1
    CHANGE_SPIN = 2
    UNBLOCK = 3
    ACTIVATE_SIGNATURE = 4


@dataclass(frozen=True)
class PinPlan:
    """Which secret a command presents (its tries count) and which it sets."""

    presented: PinRef
    target: PinRef
    old_is_previous: bool  # the presented value is the target's previous value (SAME_AS_OLD)


PLANS = {
    PinCommand.CHANGE_PIN: PinPlan(PinRef.PIN, PinRef.PIN, old_is_previous=True),
    PinCommand.CHANGE_SPIN: PinPlan(PinRef.SPIN, PinRef.SPIN, old_is_previous=True),
    PinCommand.UNBLOCK: PinPlan(PinRef.PUK, PinRef.PIN, old_is_previous=False),
    PinCommand.ACTIVATE_SIGNATURE: PinPlan(PinRef.TPIN, PinRef.SPIN, old_is_previous=True),
}


@dataclass(frozen=True)
class PinOptions:
    reader: str | None
    confirm_last_try: bool
    use_pin_pad: bool  # type the secrets on the reader's PIN pad, not on the computer


@dataclass(frozen=True)
class Console:
    """Where pkpin writes: results to ``out``, notices and errors to ``err``."""

    out: TextIO
    err: TextIO
    words: Messages

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)


# --- readers and status -------------------------------------------------------


def kind_words(words: Messages, kind: CardKind) -> str:
    if kind is CardKind.PK:
        return words.card_kind_pk()
    if kind is CardKind.KZZ:
        return words.card_kind_kzz()
    if kind is CardKind.NONE:
        return words.card_kind_none()
    return words.card_kind_unknown()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def readers_json(states: list[ReaderState]) -> list[dict[str, Any]]:
    return [
        {
            "name": state.reader.name,
            "model": state.reader.model.name,
            "pin_pad": state.reader.capabilities.pin_pad,
            "card_present": state.card_present,
            "card_kind": state.card_kind.name,
        }
        for state in states  # the position in the list is the number --reader takes
    ]


def run_readers(service: PinService, console: Console, *, as_json: bool) -> ExitCode:
    states = service.readers()
    if as_json:
        console.say(json.dumps({"readers": readers_json(states)}, indent=2))
        return ExitCode.OK
    if not states:
        console.say(console.words.no_readers())
    for index, state in enumerate(states):
        kind = kind_words(console.words, state.card_kind)
        pin_pad = state.reader.capabilities.pin_pad
        console.say(f"[{index}] " + console.words.reader_line(state.reader.name, kind, pin_pad))
    return ExitCode.OK


def run_status(
    service: PinService, console: Console, *, reader: str | None, as_json: bool
) -> ExitCode:
    state = service.pick_reader(reader)
    name = state.reader.name
    report = service.card(name)
    pins = service.pin_report(name)
    statuses = pins.statuses
    card = report.card
    kpep = card.kpep_certificate
    registry = service.backend_status(name)
    if registry is not None:  # the reactivation password's one copy is the backend's
        statuses = tuple(s for s in statuses if s.ref is not PinRef.REACTIVATION)
    if as_json:
        document = {
            "reader": name,
            "card": {
                "holder_name": card.holder_name,
                "holder_id": card.holder_id,
                "profession": card.profession.name,
                "serial": card.card_serial,
                "issuer": card.issuer,
                "role": card.role.name,
                "environment": card.environment.name,
                "valid_from": card.valid_from.isoformat(),
                "valid_until": card.valid_until.isoformat(),
                "kpep_not_after": (
                    kpep.not_after.date().isoformat() if kpep is not None else None
                ),
            },
            "secrets": [
                {
                    "ref": status.ref.name,
                    "state": status.state.name,
                    "tries_left": status.tries_left,
                    "max_tries": status.max_tries,
                }
                for status in statuses
            ],
            "retry_after_s": pins.retry_after_s,
            "registry": None if registry is None else _registry_json(registry),
            "warnings": [
                {
                    "kind": warning.kind.name,
                    "expires_on": warning.expires_on.isoformat(),
                    "days_left": warning.days_left,
                }
                for warning in report.warnings
            ],
        }
        console.say(json.dumps(document, indent=2, ensure_ascii=False))
        return ExitCode.OK
    words = console.words
    signing = words.no_signing_certificate()
    if kpep is not None:
        signing = words.valid_until(kpep.not_after.date())
    if registry is not None and registry.signature_revoked:
        signing = f"{HolderWords(words).kpep_revoked()}: {signing}"
    rows = [
        (words.label_reader(), name),
        (
            words.label_holder(),
            f"{card.holder_name} ({card.holder_id}), {words.profession(card.profession)}",
        ),
        (
            words.label_card(),
            f"{card.card_serial}, {words.role(card.role)}, {words.environment(card.environment)}",
        ),
        (words.label_valid(), words.valid_range(card.valid_from, card.valid_until)),
        (words.label_issuer(), card.issuer),
        (words.label_signing_certificate(), signing),
    ]
    rows += [(_capitalised(words.secret_name(s.ref)), words.pin_state(s)) for s in statuses]
    if pins.retry_after_s:
        rows.append((words.label_rate_limit(), words.rate_limit_state(pins.retry_after_s)))
    if registry is not None:
        rows += _registry_rows(HolderWords(words), registry,
                               _capitalised(words.secret_name(PinRef.REACTIVATION)))
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        console.say(f"{label + ':' if label else '':<{width}}{value}")
    for warning in report.warnings:
        console.say(words.warning(warning))
    return ExitCode.OK


def _registry_json(status: BackendCardStatus) -> dict[str, object]:
    return {
        "status": status.status.name,
        "reactivation_tries_left": status.reactivation_tries_left,
        "signature_revoked": status.signature_revoked,
        "loss_reason": None if status.loss_reason is None else status.loss_reason.name,
        "switches": [
            {
                "time": item.time.isoformat(),
                "kind": item.kind.name,
                "card_serial": item.card_serial,
                "reason": None if item.reason is None else item.reason.name,
            }
            for item in status.switches
        ],
    }


def _registry_rows(words: HolderWords, status: BackendCardStatus,
                   password_label: str) -> list[tuple[str, str]]:
    """The card registry's rows of ``pkpin status``: the card's state there, the
    reactivation password's counter (the registry's, the only one), a revoked KPEP and
    every switch between the holder's cards (newest first)."""
    rows = [
        (words.label_registry(), words.registry_state(status)),
        (password_label, words.password_state(status.reactivation_tries_left,
                                              PIN_FORMATS[PinRef.REACTIVATION].max_tries)),
    ]
    lines = [words.switch_line(item) for item in status.switches] or [words.none()]
    rows.append((words.label_switches(), lines[0]))
    rows += [("", line) for line in lines[1:]]
    return rows


# --- PIN commands ---------------------------------------------------------------


Operation = Callable[[str, Secret, Secret, bool], PinStatus]


def _operation(service: PinService, command: PinCommand) -> Operation:
    if command is PinCommand.CHANGE_PIN:
        return lambda r, old, new, c: service.change(r, PinRef.PIN, old, new, confirm_last_try=c)
    if command is PinCommand.CHANGE_SPIN:
        return lambda r, old, new, c: service.change(r, PinRef.SPIN, old, new, confirm_last_try=c)
    if command is PinCommand.UNBLOCK:
        return lambda r, puk, new, c: service.unblock(r, puk, new, confirm_last_try=c)
    return lambda r, tpin, new, c: service.activate_signature(r, tpin, new, confirm_last_try=c)


def _success(words: Messages, command: PinCommand) -> str:
    if command is PinCommand.CHANGE_PIN:
        return words.changed(PinRef.PIN)
    if command is PinCommand.CHANGE_SPIN:
        return words.changed(PinRef.SPIN)
    if command is PinCommand.UNBLOCK:
        return words.unblocked()
    return words.activated()


@contextmanager
def _prompting() -> Iterator[None]:
    """Turn Ctrl-C or end of input at a prompt into :class:`Cancelled`."""
    try:
        yield
    except (KeyboardInterrupt, EOFError):
        raise Cancelled("cancelled at a prompt") from None


PadOperation = Callable[[str, bool], PinStatus]


def _pad_operation(service: PinService, command: PinCommand) -> PadOperation:
    if command is PinCommand.CHANGE_PIN:
        return lambda r, c: service.change_on_pad(r, PinRef.PIN, confirm_last_try=c)
    if command is PinCommand.CHANGE_SPIN:
        return lambda r, c: service.change_on_pad(r, PinRef.SPIN, confirm_last_try=c)
    if command is PinCommand.UNBLOCK:
        return lambda r, c: service.unblock_on_pad(r, confirm_last_try=c)
    return lambda r, c: service.activate_signature_on_pad(r, confirm_last_try=c)


NEW_PIN_ATTEMPTS = 3
BIRTH_DATE_SHADOWED = frozenset({PinRule.DATE, PinRule.YEAR})
"""Rules pkpin leaves to the card library, whose BIRTH_DATE rule takes priority over them."""
"""How often pkpin asks for a new value that the PIN policy or the confirmation refused."""


def _new_value(
    terminal: Terminal, words: Messages, plan: PinPlan, *, old: Secret | None
) -> Secret:
    """Ask for the new value and its confirmation; :class:`WeakPin` if refused (wiped).

    The caller owns and wipes the result.
    """
    with _prompting():
        new = terminal.read_secret(words.prompt_new(plan.target))
    try:
        try:
            check_new_pin(
                new,
                PIN_FORMATS[plan.target],
                birth_date=None,  # the card library knows it and checks it too
                old=old,
            )
        except WeakPin as refused:
            # A date or a year may be the holder's birth date, which only the card
            # library knows: it refuses it before any APDU with the more precise rule.
            if refused.rule not in BIRTH_DATE_SHADOWED:
                raise
        with _prompting():
            again = terminal.read_secret(words.prompt_again(plan.target))
        with again:
            check_confirmation(new, again)
    except BaseException:
        new.wipe()
        raise
    return new


def _keyboard_entry(
    terminal: Terminal, words: Messages, plan: PinPlan, *, send: Operation, reader: str,
    confirm: bool,
) -> None:
    """Read the secrets with echo off, check them, and send them.

    A new value refused by the policy (here, or by the card library before
    any APDU, as for the birth-date rule) is asked for again, up to
    :data:`NEW_PIN_ATTEMPTS` times in all; the current value is asked once.
    """
    with _prompting():
        presented = terminal.read_secret(words.prompt_current(plan.presented))
    with presented:
        check_presented(presented, PIN_FORMATS[plan.presented])
        old = presented if plan.old_is_previous else None
        terminal.write(f"{words.choice_advice()}\n")
        for attempt in range(1, NEW_PIN_ATTEMPTS + 1):
            try:
                with _new_value(terminal, words, plan, old=old) as new:
                    send(reader, presented, new, confirm)
                return
            except WeakPin as refused:
                left = NEW_PIN_ATTEMPTS - attempt
                if not left:
                    raise
                said = words.describe(refused, ref=plan.presented, new_ref=plan.target).text
                terminal.write(f"{said} {words.choose_again(left)}\n")


def run_pin_command(
    service: PinService,
    console: Console,
    open_terminal: Callable[[], Terminal],
    command: PinCommand,
    options: PinOptions,
) -> ExitCode:
    """Run one PIN command. Raises pkcard errors for the caller to word."""
    plan = PLANS[command]
    words = console.words
    state = service.pick_reader(options.reader)
    reader = state.reader.name
    has_pad = state.reader.capabilities.pin_pad is True
    if options.use_pin_pad and not has_pad:
        raise NoPinPad("the reader has no PIN pad")
    if command is PinCommand.ACTIVATE_SIGNATURE:
        require_transport(service.status(reader, PinRef.SPIN))
        require_supported_reader(state.reader)  # before anybody types the TPIN
    report = service.pin_report(reader, plan.presented)
    (status,) = report.statuses
    require_usable(status)
    if report.retry_after_s:  # pkcardd would refuse it: ask for nothing
        raise RateLimited(report.retry_after_s)
    if command is PinCommand.ACTIVATE_SIGNATURE:
        console.note(words.tpin_notice())
    confirm = options.confirm_last_try
    if is_last_try(status) and not confirm:
        with open_terminal() as terminal, _prompting():
            answer = terminal.ask(words.prompt_last_try(plan.presented))
        if not words.is_yes(answer):
            console.note(words.last_try_declined())
            return ExitCode.LAST_TRY_REFUSED
        confirm = True
    if options.use_pin_pad:
        console.note(words.pin_pad_steps(plan.presented, plan.target))
        console.note(words.choice_advice())
        _pad_operation(service, command)(reader, confirm)
    else:
        with open_terminal() as terminal:
            if has_pad:  # typed here all the same: say how to use the pad instead
                console.note(words.pin_pad_notice())
            send = _operation(service, command)
            _keyboard_entry(terminal, words, plan, send=send, reader=reader, confirm=confirm)
    console.say(_success(words, command))
    return ExitCode.OK


__all__ = [
    "NEW_PIN_ATTEMPTS",
    "PLANS",
    "Console",
    "kind_words",
    "PinCommand",
    "PinOptions",
    "PinPlan",
    "run_pin_command",
    "run_readers",
    "run_status",
]
