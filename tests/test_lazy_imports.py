"""What ``pkcardd`` loads at start (issue #14, G6): only what serving PC/SC readers needs.

``cryptography`` and ``asn1crypto`` (~10 MB of RSS) load with the first
certificate, ``sqlite3`` with the embedded test backend and
``importlib.metadata`` with ``--version``; a daemon that has not met a
certificate yet carries none of them. docs/benchmarks.md has the module costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("cryptography", "asn1crypto", "sqlite3", "importlib.metadata")
# Standard-library helpers the daemon once loaded for one call each (~2 MB together):
# ctypes.util (+ shutil, tempfile, bz2, lzma) to find libc, importlib.resources
# (+ zipfile) for the PIN lists, secrets (+ random) for two random ids, shutil for
# argparse's terminal width and one rmtree.
STDLIB_LAZY = ("ctypes.util", "shutil", "tempfile", "bz2", "lzma", "importlib.resources",
               "zipfile", "secrets", "random")
# The reflection service is made at its first call (tests/daemon/test_daemon_operations.py
# calls it): grpcio-reflection's servicer and protobuf's descriptor_pb2, ~0.7 MB.
REFLECTION = ("grpc_reflection.v1alpha.reflection", "google.protobuf.descriptor_pb2")


def _loaded_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=True, cwd=ROOT)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_daemon_starts_without_the_certificate_and_backend_libraries() -> None:
    loaded = _loaded_after("import pkcard.daemon.main\n"
                           "pkcard.daemon.main._parser().parse_args(['--pcsc'])")
    assert not {name for name in LAZY if name in loaded}


def test_a_started_pcsc_daemon_loads_none_of_them(tmp_path: Path) -> None:
    """Start and stop a ``--pcsc`` daemon in process (no pcscd needed to start)."""
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    config = {"socket_dir": str(run), "reader_system": "pcsc",
              "audit_log": str(tmp_path / "audit.jsonl")}
    loaded = _loaded_after(
        "from pkcard.daemon.config import parse_config\n"
        "from pkcard.daemon.main import _parser, reader_system\n"
        "from pkcard.daemon.server import Daemon\n"
        "_parser().parse_args(['--pcsc'])\n"
        f"config = parse_config({config!r})\n"
        "daemon = Daemon(config, reader_system(config.reader_backend))\n"
        "daemon.start()\n"
        "daemon.stop()\n"
    )
    assert "pkcard.daemon.server" in loaded
    assert "pkcard.pcsc_bridge" in loaded
    assert sorted(name for name in (*LAZY, *STDLIB_LAZY, *REFLECTION) if name in loaded) == []


def test_a_simulated_daemon_reads_its_cards_without_cryptography(tmp_path: Path) -> None:
    """``--simulated``: the cards' keys are parsed at their first signature, the test trust
    anchors at the first VerifySignature, and the embedded backend runs in its own process."""
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    config = {"socket_dir": str(run), "reader_system": "simulated",
              "state_dir": str(tmp_path / "state")}
    loaded = _loaded_after(
        "from pkcard.client import PkcardClient\n"
        "from pkcard.daemon.config import parse_config\n"
        "from pkcard.daemon.main import reader_system\n"
        "from pkcard.daemon.server import Daemon\n"
        "from pkcard.daemon.simulation import DEFAULT_CARDS\n"
        f"config = parse_config({config!r})\n"
        "daemon = Daemon(config, reader_system(config.reader_backend))\n"
        "daemon.start()\n"
        "try:\n"
        "    with PkcardClient(daemon.socket_path) as client:\n"
        "        for _ in range(3):\n"
        "            assert client.get_pin_status(DEFAULT_CARDS[0][0])\n"
        "            assert len(client.list_readers()) == 2\n"
        "finally:\n"
        "    daemon.stop()\n"
    )
    assert "pkcard.simcard.card" in loaded
    assert "pkcard.daemon.backend_process" in loaded
    backend = ("pkcard.daemon.embedded_backend", "pkcard.backend.registry",
               "pkcard.backend.service")  # in the child process
    assert sorted(name for name in (*LAZY, *backend) if name in loaded) == []


def test_a_simulated_card_signs_with_its_key_read_on_first_use() -> None:
    """The positive control: the first signature loads cryptography, and it verifies."""
    loaded = _loaded_after(
        "import hashlib, sys\n"
        "from pkcard.pin import PinRef\n"
        "from pkcard.pk import ProfessionalCard\n"
        "from pkcard.secret import Secret\n"
        "from pkcard.simcard.card import SimulatedCard\n"
        "from pkcard.simcard.inprocess import InProcessConnection\n"
        "from pkcard.simcard.profile import load_profile\n"
        "from pkcard.simcard.spec import SecretRef\n"
        "profile = load_profile('pk-regular')\n"
        "card = SimulatedCard.from_profile(profile, keys_on_first_use=True)\n"
        "pk = ProfessionalCard.over(InProcessConnection(card))\n"
        "with Secret(profile.secret_value(SecretRef.PIN)) as pin:\n"
        "    pk.verify(PinRef.PIN, pin)\n"
        "assert 'cryptography' not in sys.modules\n"
        "digest = hashlib.sha256(b'G6').digest()\n"
        "signature = pk.authenticate(digest)\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "from cryptography.hazmat.primitives.asymmetric import ec, utils\n"
        "from cryptography.x509 import load_der_x509_certificate\n"
        "public = load_der_x509_certificate(pk.read_card().auth_certificate.der).public_key()\n"
        "half = len(signature) // 2\n"
        "der = utils.encode_dss_signature(int.from_bytes(signature[:half], 'big'),\n"
        "                                 int.from_bytes(signature[half:], 'big'))\n"
        "public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))\n"
    )
    assert "cryptography" in loaded


def test_they_load_when_first_used() -> None:
    loaded = _loaded_after(
        "import pkcard\n"
        "from pkcard.certs import parse_certificate\n"
        "from pathlib import Path\n"
        "from cryptography.hazmat.primitives.serialization import Encoding\n"
        "pem = sorted(Path('fixtures/pki/cards/pk-regular').glob('sign-cert.pem'))[0]\n"
        "from cryptography import x509\n"
        "der = x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)\n"
        "assert parse_certificate(der).subject_serial\n"
        "assert pkcard.__version__\n"
    )
    assert {"cryptography", "importlib.metadata"} <= loaded
