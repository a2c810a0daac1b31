"""An independent oracle for the digit rules of pkcard.pin_policy (issue 15).

Written from the rule texts in docs/pkpin.md with other means than the
library (strptime, string slicing, enumerated keypad lines), so that a
property test comparing the two finds a slip in either.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from itertools import pairwise

ORDERS = {
    4: [("%d%m", True), ("%m%d", True)],
    6: [("%d%m%y", False), ("%m%d%y", False), ("%y%m%d", False), ("%m%Y", False), ("%Y%m", False)],
    8: [("%d%m%Y", False), ("%m%d%Y", False), ("%Y%m%d", False)],
}
KEYPAD_ROWS = ["123", "456", "789", " 0 "]


def _parses(pin: str, fmt: str, leap: bool) -> bool:
    text, form = (pin + "2000", fmt + "%Y") if leap else (pin, fmt)
    try:
        parsed = datetime.strptime(text, form)
    except ValueError:
        return False
    return 1900 <= parsed.year <= 2099


def _yy_other_century(pin: str, fmt: str) -> bool:
    """strptime maps %y 00-68 to 20xx and 69-99 to 19xx; try the other century too."""
    yy_at = fmt.replace("%", "").index("y") * 2
    for century in ("19", "20"):
        text = pin[:yy_at] + century + pin[yy_at:]
        try:
            datetime.strptime(text, fmt.replace("%y", "%Y"))
        except ValueError:
            continue
        return True
    return False


def is_other_order_date(pin: str) -> bool:
    for fmt, leap in ORDERS.get(len(pin), []):
        if len(datetime(2000, 1, 1).strftime(fmt)) != len(pin):
            continue
        if not pin.isdigit() or pin != pin.strip():
            return False
        if _parses(pin, fmt, leap) and fmt not in ("%m%Y", "%Y%m"):
            return True
        if fmt in ("%m%Y", "%Y%m"):
            month, year = (pin[:2], pin[2:]) if fmt == "%m%Y" else (pin[4:], pin[:4])
            if 1 <= int(month) <= 12 and 1900 <= int(year) <= 2099:
                return True
        if "%y" in fmt and _yy_other_century(pin, fmt):
            return True
    return False


def is_year(pin: str) -> bool:
    return len(pin) == 4 and 1900 <= int(pin) <= 2099


def is_repeated_group(pin: str) -> bool:
    n = len(pin)
    if any(pin == pin[:k] * (n // k) for k in range(1, n) if n % k == 0):
        return True
    for k in (2, 3):
        chunks = [pin[i : i + k] for i in range(0, n, k)]
        if n % k == 0 and len(chunks) >= 2 and all(c == c[0] * k for c in chunks):
            return True
    return False


def is_mirrored(pin: str) -> bool:
    return len(pin) >= 4 and pin == "".join(reversed(pin))


def is_step(pin: str) -> bool:
    for step in range(2, 10):
        for start in range(10):
            up = "".join(str(start + step * i) for i in range(len(pin)) if start + step * i <= 9)
            down = "".join(str(start - step * i) for i in range(len(pin)) if start - step * i >= 0)
            if pin in (up, down) and len(pin) == len(up if pin == up else down):
                return True
    if len(pin) in (6, 8):
        groups = [int(pin[i : i + 2]) for i in range(0, len(pin), 2)]
        diffs = {b - a for a, b in pairwise(groups)}
        return diffs in ({1}, {-1}, {10}, {-10})
    return False


@cache
def keypad_lines() -> frozenset[str]:
    """Every straight line of 3 or more keys, enumerated from the layout."""
    where = {ch: (r, c) for r, row in enumerate(KEYPAD_ROWS)
             for c, ch in enumerate(row) if ch != " "}
    at = {pos: ch for ch, pos in where.items()}
    lines = set()
    for (r, c) in where.values():
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if (dr, dc) == (0, 0):
                    continue
                text, k = "", 0
                while (r + k * dr, c + k * dc) in at:
                    text += at[(r + k * dr, c + k * dc)]
                    k += 1
                    if len(text) >= 3:
                        lines.add(text)
    return frozenset(lines)


def _covered(pin: str) -> bool:
    if pin == "":
        return True
    for line in keypad_lines():
        if pin.startswith(line):
            rest = pin[len(line):]
            if _covered(rest) or (rest and _covered(line[-1] + rest)):
                return True
    return False


SHAPES = ("1254", "2365", "4587", "5698", "1397", "2684")


def is_keypad(pin: str) -> bool:
    if _covered(pin):
        return True
    if len(pin) != 4:
        return False
    for shape in SHAPES:
        for i in range(4):
            turned = shape[i:] + shape[:i]
            if pin in (turned, turned[0] + turned[:0:-1]):
                return True
    return False


@cache
def _published(length: int) -> frozenset[str]:
    path = files("pkcard") / "pin_data" / f"common-{length}.txt"
    return frozenset(path.read_text().split()) if path.is_file() else frozenset()


def is_common(pin: str) -> bool:
    return pin in _published(len(pin))


def is_pattern(pin: str) -> bool:
    """Any rule after DATE in the library's order."""
    return (is_other_order_date(pin) or is_year(pin) or is_repeated_group(pin)
            or is_mirrored(pin) or is_step(pin) or is_keypad(pin) or is_common(pin))
