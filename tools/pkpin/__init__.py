"""pkpin: manage the PINs of the Slovenian health professional card (PK) from a terminal."""

from pkcard.tools.pkpin.cli import main

__all__ = ["main"]
