"""A private OpenSC configuration that lets ``opensc-pkcs11.so`` drive the simulated PK.

OpenSC has no driver for the profile's ATR. Its generic ``default`` driver
reads the card's PKCS#15 structure (simcard/pkcs15.py) but registers no
algorithms, so it cannot sign; the simulated PK therefore also answers as a
JavaCard IsoApplet (simcard/isoapplet.py), and a ``card_atr`` block maps the
ATR to OpenSC's ``isoApplet`` driver, which drives it fully. The PKCS#11
module then makes one slot for the PIN (the card token) and one for the SPIN
(``create_slots_for_pins``), and unblocks the PIN by C_Login(CKU_SO, PUK) +
C_InitPIN (``user_pin_unblock_style``), the convention of
:class:`pkcard.pkcs11.Pkcs11PkDriver`.

Point ``OPENSC_CONF`` at the file before the module (or a tool) starts; never
edit /etc/opensc.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OPENSC_MODULE = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
OPENSC_CONF_VARIABLE = "OPENSC_CONF"
SIGNATURE_TOKEN_SUFFIX = " (SPIN)"  # noqa: S105 - OpenSC labels the second PIN's slot "<token> (<PIN label>)"


def _atr_text(atr: bytes) -> str:
    return ":".join(f"{b:02x}" for b in atr)


OPENSC_DRIVER = "isoApplet"


def opensc_config(atrs: list[bytes] | tuple[bytes, ...]) -> str:
    """The opensc.conf text mapping each ATR to OpenSC's ``isoApplet`` driver."""
    blocks = "".join(
        f'\tcard_atr {_atr_text(atr)} {{\n\t\tdriver = "{OPENSC_DRIVER}";\n\t}}\n'
        for atr in atrs
    )
    return (
        "app default {\n"
        "\tdebug = 0;\n"
        f"\tcard_drivers = {OPENSC_DRIVER};\n"
        f"{blocks}"
        "\tframework pkcs15 {\n"
        "\t\tuse_file_caching = no;\n"
        "\t}\n"
        "}\n"
        "app opensc-pkcs11 {\n"
        "\tpkcs11 {\n"
        "\t\tmax_virtual_slots = 64;\n"
        '\t\tcreate_slots_for_pins = "user,sign";\n'
        "\t\tuser_pin_unblock_style = init_pin_in_so_session;\n"
        "\t}\n"
        "}\n"
    )


def write_opensc_config(directory: Path, atrs: list[bytes] | tuple[bytes, ...]) -> Path:
    """Write ``opensc.conf`` for ``atrs`` into ``directory``; its path."""
    path = directory / "opensc.conf"
    path.write_text(opensc_config(atrs), encoding="ascii")
    return path


@contextmanager
def opensc_conf(conf: Path) -> Iterator[None]:
    """Point ``OPENSC_CONF`` at ``conf`` for the block (load the module inside it)."""
    previous = os.environ.get(OPENSC_CONF_VARIABLE)
    os.environ[OPENSC_CONF_VARIABLE] = str(conf)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[OPENSC_CONF_VARIABLE]
        else:
            os.environ[OPENSC_CONF_VARIABLE] = previous
