"""The systemd units, INSTALL.md and the polkit rule tell one story, and the service is hardened.

``systemd-analyze security --offline=yes`` must rate pkcardd.service 2.0 or
below ("OK"); ``systemd-analyze verify`` must accept both units.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest

from pkcard.daemon.main import _parser, build_config
from pkcard.endpoint import DEFAULT_SOCKET, DEFAULT_SOCKET_DIR

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SERVICE = PACKAGING / "pkcardd.service"
SOCKET = PACKAGING / "pkcardd.socket"
MAX_EXPOSURE = 2.0
INSTALLED_PKCARDD = "/opt/pkcard/bin/pkcardd"


def _unit(path: Path) -> ConfigParser:
    parser = ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: scripts/bootstrap --system installs systemd")
    return found


def exposure(unit: Path) -> float:
    """The overall exposure that ``systemd-analyze security --offline=yes`` gives ``unit``."""
    result = subprocess.run([_systemd_analyze(), "security", "--offline=yes", "--no-pager",
                             str(unit)], capture_output=True, text=True, timeout=120,
                            check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def test_service_exposure_is_ok() -> None:
    assert exposure(SERVICE) <= MAX_EXPOSURE


def test_exposure_check_sees_a_weak_unit(tmp_path: Path) -> None:
    weak = tmp_path / "pkcardd.service"
    weak.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(weak) > MAX_EXPOSURE


def test_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify``, with ExecStart pointing at this checkout's pkcardd."""
    pkcardd = Path(sys.executable).parent / "pkcardd"
    assert pkcardd.exists()
    service = SERVICE.read_text()
    assert f"ExecStart={INSTALLED_PKCARDD} " in service
    (tmp_path / "pkcardd.service").write_text(service.replace(INSTALLED_PKCARDD, str(pkcardd)))
    shutil.copy(SOCKET, tmp_path / "pkcardd.socket")
    result = subprocess.run([_systemd_analyze(), "verify", str(tmp_path / "pkcardd.socket"),
                             str(tmp_path / "pkcardd.service")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pkcardd" not in result.stderr, result.stderr


def test_socket_unit_listens_on_the_default_path() -> None:
    socket = _unit(SOCKET)["Socket"]
    service = _unit(SERVICE)["Service"]
    assert Path(socket["ListenStream"]) == DEFAULT_SOCKET
    assert socket["SocketUser"] == service["User"]
    assert socket["SocketGroup"] == service["Group"]
    assert Path("/run") / service["RuntimeDirectory"] == DEFAULT_SOCKET_DIR
    # The socket's inode lives in the RuntimeDirectory: it must survive the service's stop.
    assert service["RuntimeDirectoryPreserve"] == "yes"


def test_exec_start_is_a_valid_pkcardd_command_line() -> None:
    service = _unit(SERVICE)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == INSTALLED_PKCARDD
    args = _parser().parse_args([a for a in argv[1:] if a not in ("--config", argv[2])])
    config = build_config(args)
    assert config.socket_path == DEFAULT_SOCKET
    assert config.socket_group == service["Group"]
    assert config.audit_log is not None
    assert config.audit_log.parent == Path("/var/lib") / service["StateDirectory"]
    assert argv[1:3] == ["--config", "/etc/pkcardd/pkcardd.toml"]


def test_install_md_polkit_rule_and_units_name_one_user_and_group() -> None:
    service = _unit(SERVICE)["Service"]
    user, group = service["User"], service["Group"]
    install = (PACKAGING / "INSTALL.md").read_text()
    assert f"groupadd --system {group}" in install
    assert re.search(rf"useradd --system .*--gid {group} .*\b{user}$", install, re.MULTILINE)
    rule = (PACKAGING / "50-pkcardd.rules").read_text()
    assert re.findall(r'subject\.user == "([^"]+)"', rule) == [user]
    readers_doc = (ROOT / "docs" / "readers.md").read_text()
    assert re.findall(r'subject\.user == "([^"]+)"', readers_doc) == [user]
    config = (PACKAGING / "pkcardd.toml").read_text()
    assert f'groups = ["{group}"]' in config
