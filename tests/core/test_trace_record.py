"""``pkcard-trace record``: the transcript recorder CLI, in process and over the real pcscd path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pkcard.simcard.card import load_card
from pkcard.tools.trace import ExitCode, main
from pkcard.transcript import parse_transcript

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "apdu" / "transcripts"


def _exchanges(path: Path) -> tuple[tuple[bytes, bytes], ...]:
    transcript = parse_transcript(path.read_text(encoding="utf-8"))
    return tuple((e.command, e.response) for e in transcript.exchanges)


@pytest.mark.parametrize(
    ("operation", "profile", "fixture"),
    [
        ("read-pk", "pk-regular", "pk-read-card"),
        ("pin-status", "pk-transport", "pk-pin-statuses"),
        ("read-kzz", "kzz", "kzz-read-card"),
    ],
)
def test_record_simulated_matches_the_committed_transcript(
    tmp_path: Path, operation: str, profile: str, fixture: str
) -> None:
    out = tmp_path / "t.apdu"
    argv = ["record", operation, "--simulated", profile, "--card", profile, "-o", str(out)]
    assert main(argv) == ExitCode.OK
    assert _exchanges(out) == _exchanges(FIXTURES / f"{fixture}.apdu")


def test_record_wrong_card_kind_is_a_clean_error(tmp_path: Path) -> None:
    out = tmp_path / "t.apdu"
    assert main(["record", "read-pk", "--simulated", "kzz", "-o", str(out)]) == ExitCode.INVALID
    assert not out.exists()


def test_record_needs_a_source() -> None:
    assert main(["record", "read-pk"]) == ExitCode.USAGE


@pytest.mark.pcsc
def test_record_from_a_pcsc_reader_matches_the_simulated_transcript(
    pcscd_env: object, tmp_path: Path
) -> None:
    env = pcscd_env
    env.insert(0, load_card("pk-regular"))  # type: ignore[attr-defined]
    out = tmp_path / "t.apdu"
    reader = env.reader_name(0)  # type: ignore[attr-defined]
    code = main(["record", "read-pk", "--reader", reader, "--card", "pk-regular", "-o", str(out)])
    assert code == ExitCode.OK
    assert _exchanges(out) == _exchanges(FIXTURES / "pk-read-card.apdu")
