"""The effect of the PIN policy on published PIN frequencies (issue 15, point 6).

    .venv/bin/python -m bench.pin_policy            # the Markdown table of docs/pkpin.md

Not a speed benchmark: it measures which share of the published choices the
policy refuses. The inputs, and what each figure means:

* **DataGenetics top 20 (4 digits, frequency mass).** Nick Berry, "PIN
  analysis", DataGenetics, September 2012: 3,359,402 four-digit passwords
  from leaked password lists; the twenty most common PINs and their shares
  (:data:`DATAGENETICS_TOP20`, percent of all 4-digit PINs; together 26.83 %,
  as the article states). The only published frequencies (as opposed to
  rankings) reachable from this machine.
* **SecLists 4-digit ranking.** ``pkcard/pin_data/common-4.txt``, the first
  513 PINs of the DataGenetics ranking as SecLists publishes it (a score, not
  a count: ranks only).
* **zxcvbn 6- and 8-digit ranking.** ``pkcard/pin_data/common-{6,8}.txt``:
  the all-digit entries of zxcvbn's 30,000 most frequent passwords (ranks).
* **The whole space.** Every 4-digit and every 6-digit value: what share of
  the possible PINs the policy takes away from the holder.

For the ranked lists the figure is the share of the top *k* entries that
the pattern rules alone refuse (``COMMON`` itself refuses every listed PIN by
construction, so "with COMMON" is 100 % for the listed ones).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib.resources import files

from pkcard.errors import PinRule
from pkcard.pin_policy import first_broken_rule

DATAGENETICS_TOP20: tuple[tuple[str, float], ...] = (
    ("1234", 10.713), ("1111", 6.016), ("0000", 1.881), ("1212", 1.197), ("7777", 0.745),
    ("1004", 0.616), ("2000", 0.613), ("4444", 0.526), ("2222", 0.516), ("6969", 0.512),
    ("9999", 0.451), ("3333", 0.419), ("5555", 0.395), ("6666", 0.391), ("1122", 0.366),
    ("1313", 0.304), ("8888", 0.303), ("4321", 0.293), ("2001", 0.290), ("1010", 0.285),
)
"""(PIN, percent of all 4-digit PINs), DataGenetics 2012; the shares add up to 26.83."""


def rule(pin: str, *, with_common: bool = True) -> PinRule | None:
    found = first_broken_rule(tuple(int(c) for c in pin), pin.encode("ascii"))
    if found is PinRule.COMMON and not with_common:
        return None
    return found


def published(length: int) -> list[str]:
    text = (files("pkcard") / "pin_data" / f"common-{length}.txt").read_text(encoding="ascii")
    return [line.strip() for line in text.splitlines() if line.strip()]


def share(pins: Sequence[str], *, with_common: bool) -> float:
    return 100.0 * sum(rule(p, with_common=with_common) is not None for p in pins) / len(pins)


def space(length: int) -> Counter[PinRule | None]:
    return Counter(rule(f"{n:0{length}d}") for n in range(10**length))


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def rows() -> Iterable[tuple[str, str, str]]:
    """(what, measured, meaning) rows of the table."""
    total = sum(p for _, p in DATAGENETICS_TOP20)
    blocked = sum(p for pin, p in DATAGENETICS_TOP20 if rule(pin) is not None)
    patterns = sum(p for pin, p in DATAGENETICS_TOP20 if rule(pin, with_common=False))
    top3 = sum(p for _, p in DATAGENETICS_TOP20[:3])
    yield ("4 digits, DataGenetics top 20 (26.83 % of all 4-digit PINs)",
           f"{blocked:.2f} of {total:.2f} points ({_pct(100 * blocked / total)}); "
           f"patterns alone {patterns:.2f}",
           "frequency mass refused; the 3 guesses a PIN allows would have found "
           f"{top3:.2f} % of holders")
    four = published(4)
    for k in (20, 100, len(four)):
        yield (f"4 digits, SecLists ranking, top {k}",
               _pct(share(four[:k], with_common=False)) + " by the pattern rules",
               "share of the most common PINs refused without the list")
    for length in (6, 8):
        ranked = published(length)
        for k in (10, 100, len(ranked)):
            yield (f"{length} digits, zxcvbn ranking, top {k}",
                   _pct(share(ranked[:k], with_common=False)) + " by the pattern rules",
                   "share of the most common PINs refused without the list")
    for length in (4, 6):
        counts = space(length)
        refused = sum(n for r, n in counts.items() if r is not None)
        detail = ", ".join(f"{r.name} {n}" for r, n in counts.most_common() if r is not None)
        yield (f"all {10**length:,} {length}-digit values",
               f"{refused:,} refused ({_pct(100 * refused / 10**length)})",
               f"the holder's choice left: {10**length - refused:,} values; by rule: {detail}")


def table() -> str:
    lines = ["| what | measured | meaning |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(table())


if __name__ == "__main__":
    main()
