from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_opensc_tools import _pkcs11_tool, opensc  # noqa: F401

from pkcard.simcard.pkcs15 import TOKEN_LABEL
from pkcard.simcard.spec import SecretRef


def test_measure(opensc, tmp_path: Path) -> None:  # noqa: F811
    card, run = opensc
    print("MECHS", _pkcs11_tool(run, TOKEN_LABEL, "--list-mechanisms"))
    (tmp_path / "digest").write_bytes(hashlib.sha256(b"x").digest())
    for mech in ("ECDSA", "ECDSA-SHA256", "ECDSA-SHA1"):
        out = run("pkcs11-tool", "--module", "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                  "--token-label", TOKEN_LABEL, "--login", "--pin",
                  card.profile.secret_value(SecretRef.PIN), "--sign", "--mechanism", mech,
                  "--id", "01", "--input-file", str(tmp_path / "digest"),
                  "--output-file", str(tmp_path / ("sig-" + mech)), check=False)
        sig = tmp_path / ("sig-" + mech)
        print("SIGN", mech, out, sig.exists() and sig.read_bytes().hex())
pytestmark = pytest.mark.pcsc
