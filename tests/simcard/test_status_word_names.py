"""The host's and the simulator's status-word names cannot be confused.

The simulated card keeps its own constants (simcard/spec.py) so that a mistake on
one side shows up as a disagreement; but a name used on both sides must mean the
same status word (6A86 was WRONG_P1P2 on the card and 6B00 on the host).
"""

from pkcard.simcard.spec import Sw
from pkcard.sw import SW


def test_a_name_on_both_sides_names_the_same_status_word() -> None:
    shared = set(SW.__members__) & set(Sw.__members__)
    assert {name: (SW[name].value, Sw[name].value) for name in shared
            if SW[name].value != Sw[name].value} == {}


def test_a_status_word_both_sides_name_has_one_name() -> None:
    host_names = {member.value: name for name, member in SW.__members__.items()}
    assert {name: hex(member.value) for name, member in Sw.__members__.items()
            if member.value in host_names and host_names[member.value] != name} == {}
