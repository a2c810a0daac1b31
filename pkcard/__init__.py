"""pkcard: ISO 7816-4 middleware for the Slovenian PK and KZZ cards."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one source of the version: pyproject.toml, as installed (wheel or editable).
    __version__ = version("pkcard")
except PackageNotFoundError:  # imported from a tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
