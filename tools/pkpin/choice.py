"""Which reader pkpin uses: ``--reader`` as a name, a part of one, or a number.

``--reader`` is matched in this order: the exact name; a number, the
reader's position in ``pkpin readers`` (counted from 0); a part of the name,
case-insensitive, that only one reader's name contains. Without
``--reader``, the only reader holding a professional card.
"""

from __future__ import annotations

from collections.abc import Sequence

from pkcard.errors import ReaderNotFound
from pkcard.readers import CardKind, ReaderState
from pkcard.tools.pkpin.errors import AmbiguousReader, NoPkCard, ReaderChoiceAmbiguous


def find_reader(states: Sequence[ReaderState], wanted: str) -> ReaderState:
    """The reader ``wanted`` names; :class:`ReaderNotFound` or :class:`ReaderChoiceAmbiguous`."""
    for state in states:
        if state.reader.name == wanted:
            return state
    if wanted.isdecimal():
        index = int(wanted)
        if index < len(states):
            return states[index]
        raise ReaderNotFound("no reader of that number")
    folded = wanted.casefold()
    matches = [state for state in states if folded in state.reader.name.casefold()]
    if len(matches) > 1:
        raise ReaderChoiceAmbiguous(wanted, tuple(state.reader.name for state in matches))
    if not matches:
        raise ReaderNotFound("no reader of that name")
    return matches[0]


def holding_pk(states: Sequence[ReaderState]) -> list[ReaderState]:
    return [state for state in states if state.card_kind is CardKind.PK]


def the_pk_reader(states: Sequence[ReaderState]) -> ReaderState:
    """The only reader holding a PK; :class:`NoPkCard` or :class:`AmbiguousReader`."""
    holding = holding_pk(states)
    if not holding:
        raise NoPkCard("no reader holds a professional card")
    if len(holding) > 1:
        raise AmbiguousReader(tuple(state.reader.name for state in holding))
    return holding[0]


def pick_reader(states: Sequence[ReaderState], wanted: str | None) -> ReaderState:
    """``wanted``'s state (see :func:`find_reader`), or the only reader holding a PK."""
    if wanted is not None:
        return find_reader(states, wanted)
    return the_pk_reader(states)
