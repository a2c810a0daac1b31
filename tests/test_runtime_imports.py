"""The import rules of docs/architecture.md at run time: what each entry point really loads.

tests/test_layering.py walks the source. These tests start an entry point in
a fresh interpreter (``python -c``), run it the way a user would, and read
``sys.modules``: a module-level import hidden behind a third module, or a
lazy import that something else undoes, shows here. Each rule has a positive
control (the same check sees the module where it is meant to load), so no
rule passes because the check is blind.

Rules:
- pkpin talking to pkcardd (no ``--direct``, no ``--simulated``) loads neither
  pyscard (``smartcard``, ``pkcard.pcsc_bridge``) nor the simulated cards
  (``pkcard.simcard``);
- pkcardd configured and started without a ``pkcs11`` card backend never
  loads PyKCS11 (nor ``pkcard.pkcs11``), and neither do its configuration
  and card-backend modules on import;
- the reference backend (``pkcard.backend``) never loads the daemon, the
  PC/SC bridge or the simulated cards;
- ``pkcardd --simulated`` runs its embedded backend in a child process: the
  daemon's process loads none of the backend's server side (nor SQLite);
- the library loads no component, and only ``pkcard.pkcs11`` loads PyKCS11.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYSCARD = ("smartcard", "pkcard.pcsc_bridge")
SIMCARD = ("pkcard.simcard",)
PYKCS11 = ("PyKCS11", "pkcard.pkcs11")  # pkcard.pkcs11_select has no PyKCS11 in it
COMPONENTS = ("pkcard.daemon", "pkcard.backend", "pkcard.simcard", "pkcard.pcsc_bridge",
              "pkcard.tools")


def _loaded(code: str, cwd: Path) -> set[str]:
    """The modules ``code`` leaves loaded in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import json as _json, sys as _sys
        print("MODULES=" + _json.dumps(sorted(_sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def _matching(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


# --- pkpin ------------------------------------------------------------------------------

_PKPIN = """
    import io
    from pkcard.tools.pkpin import main  # the console script's entry point
    from pkcard.tools.pkpin.cli import run
    for argv in ({argv}):
        out, err = io.StringIO(), io.StringIO()
        run(list(argv), environ={{}}, out=out, err=err)
"""


def _pkpin(tmp_path: Path, *argvs: list[str]) -> set[str]:
    return _loaded(_PKPIN.format(argv=", ".join(repr(a) for a in argvs) + ","), tmp_path)


def test_pkpin_through_the_daemon_loads_neither_pyscard_nor_the_simulator(
    tmp_path: Path,
) -> None:
    socket = str(tmp_path / "no-daemon" / "pkcardd.sock")  # nobody listens: every call fails
    modules = _pkpin(
        tmp_path,
        ["--socket", socket, "readers"],
        ["--socket", socket, "status"],
        ["--socket", socket, "change-pin", "--pinpad"],
        ["--socket", socket, "reactivate"],
        ["--help"],
    )
    assert "pkcard.tools.pkpin.cli" in modules
    assert _matching(modules, PYSCARD) == []
    assert _matching(modules, SIMCARD) == []


def test_pkpin_loads_the_simulator_only_when_asked(tmp_path: Path) -> None:
    """The positive control: the same check sees the simulator with --simulated."""
    modules = _pkpin(tmp_path, ["--simulated", "readers"])
    assert "pkcard.simcard.inprocess" in modules
    assert _matching(modules, PYSCARD) == []


# --- pkcardd ------------------------------------------------------------------------------

_DAEMON = """
    from pathlib import Path
    from pkcard.daemon.config import parse_config
    from pkcard.daemon.main import reader_system
    from pkcard.daemon.server import Daemon
    config = parse_config({config!r})
    daemon = Daemon(config, reader_system(config.reader_backend))
    daemon.start()
    daemon.stop()
"""


def _daemon(tmp_path: Path, **extra: object) -> set[str]:
    socket_dir = tmp_path / "run"
    socket_dir.mkdir(mode=0o755)
    config = {"socket_dir": str(socket_dir), "reader_system": "simulated",
              "state_dir": str(tmp_path / "state"), **extra}
    return _loaded(_DAEMON.format(config=config), tmp_path)


def test_pkcardd_without_a_pkcs11_backend_never_loads_pykcs11(tmp_path: Path) -> None:
    modules = _daemon(tmp_path)
    assert "pkcard.daemon.card_backends" in modules
    assert _matching(modules, PYKCS11) == []


def test_pkcardd_loads_pykcs11_for_a_pkcs11_backend(tmp_path: Path) -> None:
    """The positive control: a ``pkcs11`` rule loads the driver when the daemon starts."""
    module = tmp_path / "libnothing.so"
    module.write_bytes(b"")
    rule = {"reader": "Nothing", "driver": "pkcs11", "module": str(module),
            "card_token": {"serial": "PK0"}}
    socket_dir = tmp_path / "run"
    socket_dir.mkdir(mode=0o755)
    config = {"socket_dir": str(socket_dir), "reader_system": "simulated",
              "state_dir": str(tmp_path / "state"), "card_backends": [rule]}
    code = f"""
        from pkcard.daemon.config import parse_config
        from pkcard.daemon.main import reader_system
        from pkcard.daemon.server import Daemon
        config = parse_config({config!r})
        Daemon(config, reader_system(config.reader_backend))
    """
    assert "PyKCS11" in _loaded(code, tmp_path)


# The reference backend's server side: in pkcardd --simulated it runs in a child process.
BACKEND_SERVER = ("pkcard.daemon.embedded_backend", "pkcard.backend.registry",
                  "pkcard.backend.service", "pkcard.backend.core", "sqlite3")


def test_pkcardd_simulated_runs_its_embedded_backend_in_another_process(
    tmp_path: Path,
) -> None:
    """Issue #14 G6: the daemon's process loads none of the backend it starts."""
    modules = _daemon(tmp_path)  # --simulated, no backend configured: the embedded one
    assert "pkcard.daemon.backend_process" in modules
    assert (tmp_path / "state" / "backend.sqlite").is_file()  # the child made it
    assert _matching(modules, BACKEND_SERVER) == []


def test_the_embedded_backends_process_loads_the_backend(tmp_path: Path) -> None:
    """The positive control: the child's module loads what the daemon does not."""
    modules = _loaded("import pkcard.daemon.embedded_backend", tmp_path)
    assert set(BACKEND_SERVER) <= modules


def test_the_daemon_configuration_and_backends_modules_load_no_pkcs11(tmp_path: Path) -> None:
    modules = _loaded("import pkcard.daemon.config, pkcard.daemon.card_backends", tmp_path)
    assert _matching(modules, PYKCS11) == []


# --- the reference backend and the library ------------------------------------------------

_EVERY = """
    import importlib, pkgutil
    _skip = {skip!r}
    _todo = ["{package}"]
    while _todo:  # by hand, not pkgutil.walk_packages: that imports the skipped packages
        _package = importlib.import_module(_todo.pop())
        for _found in pkgutil.iter_modules(_package.__path__, _package.__name__ + "."):
            if _found.name in _skip:
                continue
            if _found.ispkg:
                _todo.append(_found.name)
            else:
                importlib.import_module(_found.name)
"""


def _every_module_of(package: str, tmp_path: Path, skip: tuple[str, ...] = ()) -> set[str]:
    return _loaded(_EVERY.format(package=package, skip=skip), tmp_path)


def test_the_backend_loads_no_daemon_bridge_or_simulator(tmp_path: Path) -> None:
    modules = _every_module_of("pkcard.backend", tmp_path)
    assert "pkcard.backend.main" in modules
    assert _matching(modules, ("pkcard.daemon", "pkcard.pcsc_bridge", "pkcard.simcard",
                               "pkcard.tools", "smartcard", "PyKCS11")) == []


def test_the_library_loads_no_component_and_no_pykcs11(tmp_path: Path) -> None:
    """Every library module but the PKCS#11 driver, imported together."""
    modules = _every_module_of("pkcard", tmp_path, skip=(*COMPONENTS, "pkcard.pkcs11"))
    assert "pkcard.pk_iso" in modules
    assert _matching(modules, COMPONENTS) == []
    assert _matching(modules, (*PYSCARD, *PYKCS11)) == []
