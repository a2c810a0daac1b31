"""PyKCS11 is the optional ``pkcs11`` extra: pkcardd works without it until a rule needs it.

Each case runs a fresh interpreter in which ``import PyKCS11`` fails, as it does
in an installation without the extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pkcard.daemon.card_backends import CardBackends
from pkcard.daemon.config import CardBackendRule, CardDriver
from pkcard.daemon.workers import ReaderWorkers
from pkcard.errors import MissingExtra, NotSupported
from pkcard.pkcs11_select import TokenSelector
from pkcard.simcard.inprocess import SimulatedReaderSystem

HINT = "pip install 'pkcard[pkcs11]'"
# Makes `import PyKCS11` raise ModuleNotFoundError, as without the extra.
_HIDE = "import sys; sys.modules['PyKCS11'] = None\n"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _HIDE + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_pkcardd_help_and_config_without_pykcs11(tmp_path: Path) -> None:
    result = _python("""
        from pkcard.daemon.main import main
        from pkcard.daemon.config import load_config
        import pkcard.daemon.server, pkcard.daemon.card_backends
        assert "PyKCS11" not in {k for k, v in sys.modules.items() if v is not None}
        raise SystemExit(main(["--help"]))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--simulated" in result.stdout


def test_a_pkcs11_rule_without_pykcs11_names_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "pkcardd.toml"
    config.write_text(textwrap.dedent("""
        reader_system = "simulated"
        [[card_backends]]
        driver = "pkcs11"
        module = "/usr/lib/softhsm/libsofthsm2.so"
        card_token = { label = "PK" }
    """))
    run = tmp_path / "run"
    result = _python(f"""
        from pkcard.daemon.main import main
        raise SystemExit(main(["--config", {str(config)!r}, "--socket-dir", {str(run)!r}]))
    """, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "refusing to start" in result.stderr
    assert HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run / "pkcardd.sock").exists()


def test_importing_the_driver_without_pykcs11_is_a_typed_error(tmp_path: Path) -> None:
    result = _python("""
        from pkcard.errors import MissingExtra
        try:
            import pkcard.pkcs11
        except MissingExtra as exc:
            print("MissingExtra:", exc)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingExtra:")
    assert HINT in result.stdout


def test_card_backends_refuse_a_pkcs11_rule_without_pykcs11(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "PyKCS11", None)
    monkeypatch.delitem(sys.modules, "pkcard.pkcs11", raising=False)  # other tests loaded it
    rule = CardBackendRule(driver=CardDriver.PKCS11, module=Path("/nonexistent.so"),
                           card_token=TokenSelector(label="PK"))
    workers = ReaderWorkers(SimulatedReaderSystem())
    with pytest.raises(MissingExtra, match=r"pkcard\[pkcs11\]") as raised:
        CardBackends([rule], workers)
    assert isinstance(raised.value, NotSupported)
    assert isinstance(raised.value, ImportError)
    CardBackends([CardBackendRule()], workers).close()  # APDU rules need no PyKCS11
