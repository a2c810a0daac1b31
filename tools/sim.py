"""``pkcard-sim``: simulated PK and KZZ cards in vpcd readers of a real pcscd.

    pkcard-sim pcscd-config DIR [--reader NAME=PORT ...]
        write vpcd reader configs for ``pcscd -c DIR`` (default: the three test readers)
    pkcard-sim serve --slot PORT=PROFILE ...
        serve cards into the vpcd slots of a pcscd that is already running
    pkcard-sim run [--card SLOT=PROFILE ...]
        start a private pcscd with the test readers (waits for the machine-wide
        pcscd lock, stops any other pcscd) and serve cards into it

``serve`` and ``run`` read commands on stdin until EOF or Ctrl-C:
``list``, ``insert N PROFILE``, ``remove N``, ``pull N`` (the next APDU finds
the card pulled), ``quit``. N counts the --slot options from 0 (``serve``) or is
the harness slot (``run``: 0 CT30, 1 CT700 "GemPC Pinpad", 2 generic).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pkcard import __version__
from pkcard.simcard.pcscd_harness import (
    DEFAULT_READERS,
    PcscdHarness,
    PcscdLock,
    VirtualReader,
    write_vpcd_configs,
)
from pkcard.simcard.vpcd import CardLike, VpcdCardSlot


def load_card(profile: str) -> CardLike:
    """A fresh simulated card from a profile name or TOML path."""
    from pkcard.simcard.card import SimulatedCard  # noqa: PLC0415 - loads keys; only when serving
    from pkcard.simcard.profile import load_profile  # noqa: PLC0415

    return SimulatedCard.from_profile(load_profile(profile))


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


@dataclass(frozen=True)
class SlotOps:
    """What the command loop can do to slot N."""

    count: int
    describe: Callable[[int], str]
    insert: Callable[[int, CardLike], None]
    remove: Callable[[int], None]
    pull: Callable[[int], None]


def command_loop(ops: SlotOps, commands: TextIO, out: TextIO) -> None:
    """Run stdin-style commands against the slots until EOF or ``quit``."""
    for line in commands:
        words = line.split()
        if not words:
            continue
        verb, args = words[0], words[1:]
        try:
            if verb == "quit":
                return
            if verb == "list":
                for index in range(ops.count):
                    print(f"{index}: {ops.describe(index)}", file=out)
                continue
            if verb not in ("insert", "remove", "pull") or not args:
                print("commands: list | insert N PROFILE | remove N | pull N | quit", file=out)
                continue
            index = int(args[0])
            if not 0 <= index < ops.count:
                print(f"no slot {index}", file=out)
            elif verb == "insert" and len(args) == 2:
                ops.insert(index, load_card(args[1]))
                print(f"inserted {args[1]} into {index}", file=out)
            elif verb == "remove":
                ops.remove(index)
                print(f"removed {index}", file=out)
            elif verb == "pull":
                ops.pull(index)
                print(f"slot {index}: the next APDU finds the card pulled", file=out)
            else:
                print("usage: insert N PROFILE", file=out)
        except Exception as exc:  # report and keep serving
            print(f"error: {type(exc).__name__}: {exc}", file=out)
        out.flush()


def _pcscd_config(args: argparse.Namespace) -> int:
    readers = (
        tuple(VirtualReader(name, int(port, 0)) for name, port in args.reader)
        if args.reader
        else DEFAULT_READERS
    )
    directory = Path(args.directory)
    write_vpcd_configs(directory, readers)
    for reader in readers:
        print(f"{reader.slot_name(0)!r} port {reader.channel_id}")
        print(f"{reader.slot_name(1)!r} port {reader.channel_id + 1}")
    print(f"start pcscd with: pcscd -f -c {directory}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    slots = [VpcdCardSlot(int(port, 0)) for port, _profile in args.slot]
    try:
        for slot, (_port, profile) in zip(slots, args.slot, strict=True):
            slot.insert(load_card(profile))
            print(f"port {slot.port}: {profile}")
        ops = SlotOps(
            len(slots),
            lambda i: f"port {slots[i].port}, {'card' if slots[i].inserted else 'empty'}",
            lambda i, card: slots[i].insert(card),
            lambda i: slots[i].remove(),
            lambda i: slots[i].pull_on_next_apdu(),
        )
        command_loop(ops, sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        pass
    finally:
        for slot in slots:
            slot.remove()
    return 0


def _run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="pkcard-sim-") as workdir:
        print("waiting for the pcscd lock ...", flush=True)
        with PcscdLock() as lock, PcscdHarness(Path(workdir), lock) as harness:
            try:
                for slot, profile in args.card:
                    harness.insert(int(slot), load_card(profile))
                for index, name in enumerate(harness.reader_names):
                    print(f"{index}: {name}")
                ops = SlotOps(
                    len(harness.slots),
                    lambda i: f"{harness.reader_name(i)}, "
                    f"{'card' if harness.card_present(i) else 'empty'}",
                    harness.insert,
                    harness.remove,
                    harness.pull_on_next_apdu,
                )
                command_loop(ops, sys.stdin, sys.stdout)
            except KeyboardInterrupt:
                pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pkcard-sim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("pcscd-config", help="write vpcd reader configs")
    config.add_argument("directory")
    config.add_argument("--reader", type=_pair, action="append", metavar="NAME=PORT")
    config.set_defaults(handler=_pcscd_config)
    serve = commands.add_parser("serve", help="serve cards into a running pcscd's vpcd slots")
    serve.add_argument("--slot", type=_pair, action="append", required=True, metavar="PORT=PROFILE")
    serve.set_defaults(handler=_serve)
    run = commands.add_parser("run", help="start a private pcscd and serve cards")
    run.add_argument("--card", type=_pair, action="append", default=[], metavar="SLOT=PROFILE")
    run.set_defaults(handler=_run)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
