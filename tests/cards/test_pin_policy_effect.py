"""docs/pkpin.md states the measured effect of the PIN policy as bench.pin_policy prints it."""

from __future__ import annotations

from pathlib import Path

from bench.pin_policy import DATAGENETICS_TOP20, table

DOC = Path(__file__).resolve().parents[2] / "docs" / "pkpin.md"


def test_the_published_top20_adds_up_as_datagenetics_states() -> None:
    assert round(sum(p for _, p in DATAGENETICS_TOP20), 2) == 26.83


def test_docs_show_the_measured_table() -> None:
    assert table() in DOC.read_text(), "run: .venv/bin/python -m bench.pin_policy"
