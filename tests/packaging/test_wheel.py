"""The built wheel works in a clean venv, run from outside the checkout.

The tree is copied to a temporary directory and built there, so nothing is
written into the checkout (no build/, no *.egg-info); the wheel goes into a
fresh venv (without the ``pkcs11`` extra) and every command runs from a
directory outside the checkout, with no PYTHONPATH: what a user who ran
``pip install pkcard`` gets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import serving

from pkcard.backend.v1 import backend_pb2, backend_pb2_grpc
from pkcard.client import PkcardClient
from pkcard.simcard.inprocess import PINPAD_READER, TWIN_READER
from pkcard.simcard.profile import profile_names

ROOT = Path(__file__).resolve().parents[2]
HOLDER = "Ana Testna"  # the pk-regular profile's holder


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    work: Path  # a directory outside the checkout, the commands' working directory

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PKCARD_SOCKET", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(extra)
        return env

    def run(self, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.bin(argv[0]), *argv[1:]], cwd=self.work, env=self.env(**extra),
                              capture_output=True, text=True, timeout=120, check=False)


def _checkout_state() -> str:
    """Everything git sees in the checkout, ignored files included."""
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return [f for f in listed.split("\0")
            if f and ((ROOT / f).is_symlink() or (ROOT / f).exists())]


def _copy_tree(target: Path) -> None:
    """The checkout's files (symlinks kept as links), as a release tarball would hold them."""
    files = _source_files()
    with subprocess.Popen(["tar", "--null", "-T", "-", "-cf", "-"], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as pack:
        assert pack.stdin is not None
        assert pack.stdout is not None
        unpack = subprocess.Popen(["tar", "-xf", "-", "-C", str(target)], stdin=pack.stdout)
        pack.stdout.close()
        pack.stdin.write("\0".join(files).encode())
        pack.stdin.close()
        assert unpack.wait(timeout=120) == 0
    assert pack.returncode == 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    before = _checkout_state()
    base = tmp_path_factory.mktemp("wheel")
    source, dist, work = base / "src", base / "dist", base / "work"
    for d in (source, dist, work):
        d.mkdir()
    _copy_tree(source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(dist), str(source)],
                           cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("pkcard-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], cwd=work, check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=work,
                             capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr
    yield Installed(wheel, venv, work)
    assert _checkout_state() == before, "building and installing the wheel wrote into the checkout"


def test_wheel_holds_only_pkcard_and_the_simulation_data(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"pkcard", installed.wheel.name.split("-py3")[0] + ".dist-info"}
    data = "pkcard/simcard/data/"
    profiles = {Path(n).stem for n in names if n.startswith(data + "apdu/profiles/")}
    assert profiles == set(profile_names())
    assert sorted(n for n in names if n.startswith(data + "pki/ca/")) == [
        f"{data}pki/ca/{ca}/ca-cert.pem" for ca in ("prod-kzz", "prod-pk", "test-kzz", "test-pk")
    ]
    assert not [n for n in names if "ca-key" in n], "the test CAs' keys must not ship"
    assert f"{installed.wheel.name.split('-py3')[0]}.dist-info/licenses/LICENSE" in names


def test_installed_package_is_used_and_pykcs11_is_absent(installed: Installed) -> None:
    probe = installed.run("python", "-c", (
        "import importlib.util, pkcard, pkcard.daemon.main, pkcard.simcard.profile as p;"
        "print(pkcard.__file__); print(pkcard.__version__);"
        "print(importlib.util.find_spec('PyKCS11') is None); print(p.PROFILES_DIR)"
    ))
    assert probe.returncode == 0, probe.stderr
    where, version, no_pykcs11, profiles = probe.stdout.split("\n")[:4]
    assert Path(where).is_relative_to(installed.venv)
    assert Path(profiles).is_relative_to(installed.venv)
    assert no_pykcs11 == "True"
    for command in ("pkcardd", "pkpin", "pkcard-sim", "pkcard-trace", "pkcard-audit",
                    "pkcard-backend"):
        result = installed.run(command, "--version")
        assert result.stdout == f"{command} {version}\n", result.stderr


def test_simulated_daemon_serves_and_pkpin_talks_to_it(installed: Installed) -> None:
    root = installed.work / "d"
    root.mkdir(mode=0o700)
    socket_path = root / "run" / "pkcardd.sock"
    audit = root / "audit.jsonl"
    log = root / "pkcardd.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [installed.bin("pkcardd"), "--simulated", "--socket", str(socket_path),
             "--audit-log", str(audit)],
            cwd=installed.work, env=installed.env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        serving.wait_serving(process, socket_path, log.read_text, process.kill)
        with PkcardClient(socket_path, timeout=20) as client:
            readers = {s.reader.name for s in client.list_readers()}
            assert readers == {PINPAD_READER.name, TWIN_READER.name}
            card = client.get_card(PINPAD_READER.name)
            assert card.pk is not None
            assert card.pk.holder_name == HOLDER
        status = installed.run("pkpin", "status", PKCARD_SOCKET=str(socket_path))
        assert status.returncode == 0, status.stdout + status.stderr
        assert HOLDER in status.stdout
    finally:
        _stop(process, log)
    verify = installed.run("pkcard-audit", "verify", str(audit))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK" in verify.stdout


def test_pkpin_simulated_and_trace(installed: Installed) -> None:
    status = installed.run("pkpin", "--simulated", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert HOLDER in status.stdout
    recorded = installed.work / "pk-read.apdu"
    trace = installed.run("pkcard-trace", "record", "read-pk", "--simulated", "pk-regular",
                          "-o", str(recorded))
    assert trace.returncode == 0, trace.stderr
    check = installed.run("pkcard-trace", "check", str(recorded))
    assert check.returncode == 0, check.stdout + check.stderr


def test_pkcard_sim_writes_reader_configs(installed: Installed) -> None:
    target = installed.work / "vpcd"
    result = installed.run("pkcard-sim", "pcscd-config", str(target))
    assert result.returncode == 0, result.stderr
    assert "pcscd -f -c" in result.stdout
    assert any(target.iterdir())


def test_pkcard_backend_serves(installed: Installed) -> None:
    locate = installed.run("python", "-c",
                           "from pkcard.simcard.profile import TEST_CA_DIR; print(TEST_CA_DIR)")
    ca = Path(locate.stdout.strip())
    log = installed.work / "backend.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [installed.bin("pkcard-backend"), "--db", str(installed.work / "backend.sqlite"),
             "--listen", "127.0.0.1:0", "--environment", "test",
             "--pk-anchor", str(ca / "test-pk" / "ca-cert.pem"),
             "--kzz-anchor", str(ca / "test-kzz" / "ca-cert.pem"), "--dev-metadata-identity"],
            cwd=installed.work, env=installed.env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        port = _wait_for_port(process, log)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = backend_pb2_grpc.SessionServiceStub(channel)
            reply = stub.IssueChallenge(backend_pb2.IssueChallengeRequest(), timeout=20,
                                        metadata=(("x-pkcard-backend-client", "smoke"),))
        assert len(reply.nonce) == 32
    finally:
        _stop(process, log)


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, which must end the process cleanly; never leave it running."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"did not stop on SIGTERM:\n{log.read_text()}")
    assert code == 0, log.read_text()


def _wait_for_port(process: subprocess.Popen[bytes], log: Path) -> int:
    give_up = time.monotonic() + serving.STARTUP_LIMIT
    while time.monotonic() < give_up:
        found = re.search(r"listening on port (\d+)", log.read_text())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            pytest.fail(f"pkcard-backend exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"pkcard-backend did not start:\n{log.read_text()}")
