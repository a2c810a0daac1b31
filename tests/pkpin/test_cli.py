"""pkpin's argument handling, in process (nothing here needs a terminal)."""

from __future__ import annotations

import io

import pytest

from pkcard.tools.pkpin.cli import run
from pkcard.tools.pkpin.errors import NoTerminal
from pkcard.tools.pkpin.messages import ExitCode
from pkcard.tools.pkpin.terminal import Terminal

ENGLISH = {"LANG": "C.UTF-8"}


def no_terminal() -> Terminal:
    raise NoTerminal("none in this test")


def pkpin(*argv: str, environ: dict[str, str] | None = None) -> tuple[ExitCode, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), environ=environ or ENGLISH, out=out, err=err,
               open_terminal=no_terminal)
    return code, out.getvalue(), err.getvalue()


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = pkpin("--help")
    assert code is ExitCode.OK
    shown = capsys.readouterr().out
    for exit_code in ExitCode:
        assert f"  {int(exit_code)}  " in shown
    assert "Manage the PINs of your health professional card (PK)." in shown


def test_help_in_slovenian(capsys: pytest.CaptureFixture[str]) -> None:
    pkpin("--help", environ={"LANG": "sl_SI.UTF-8"})
    shown = capsys.readouterr().out
    assert "izhodne kode:" in shown
    assert "spremeni PIN" in shown


@pytest.mark.parametrize(
    "argv",
    [
        ("frobnicate",),
        (),
        ("--simulated", "--profile", "no-such-profile", "status"),
        ("--direct", "--simulated", "status"),
        ("change-pin", "--json"),
    ],
)
def test_bad_usage_exits_1(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = pkpin(*argv)
    assert code is ExitCode.USAGE
    assert "usage: pkpin" in capsys.readouterr().err


def test_unknown_reader() -> None:
    code, out, err = pkpin("--simulated", "--reader", "No Such Reader", "status")
    assert code is ExitCode.CARD
    assert out == ""
    assert err == "No such card reader: see pkpin readers.\n"


def test_pin_command_without_a_terminal() -> None:
    code, out, err = pkpin("--simulated", "--reader", "Gemalto PC Twin Reader (simulated)",
                           "status")
    assert code is ExitCode.CARD  # that reader is empty in --simulated mode
    assert "Card removed" in err
    code, out, err = pkpin("--simulated", "change-pin")
    assert code is ExitCode.USAGE
    assert err.endswith("No terminal to read the PIN from: run pkpin in a terminal.\n")
    assert out == ""
