from __future__ import annotations

from pathlib import Path

import pytest

from pkcard.tools.trace import ExitCode, main

GOOD = "# card: pk-regular  profile: 1\n00a4040c 09 f0504b43415244504b => 9000  # select\n"
BAD = "# card: pk-regular  profile: 1\n\n00A4040C 09 F0 => 9000\n"


def test_check_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.apdu"
    bad = tmp_path / "bad.apdu"
    good.write_text(GOOD)
    bad.write_text(BAD)
    assert main(["check", str(good)]) == ExitCode.OK
    assert main(["check", str(good), str(bad)]) == ExitCode.INVALID
    out, err = capsys.readouterr()
    assert f"{good}: ok (1 exchanges, card pk-regular)" in out
    assert f"{bad}: line 3: body has 1 bytes, Lc says 9" in err


def test_check_missing_file(tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope.apdu")]) == ExitCode.INVALID


def test_format_canonical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.apdu"
    good.write_text(GOOD)
    assert main(["format", str(good)]) == ExitCode.OK
    out, _ = capsys.readouterr()
    assert out == "# card: pk-regular  profile: 1\n00A4040C 09 F0504B43415244504B => 9000\n"


def test_usage_error() -> None:
    assert main(["frobnicate"]) == ExitCode.USAGE
    assert main([]) == ExitCode.USAGE
