"""pkpin: manage the PINs of the Slovenian health professional card (PK) from a terminal."""

from tools.pkpin.cli import main

__all__ = ["main"]
