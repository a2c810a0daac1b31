"""pkcard: ISO 7816-4 middleware for the Slovenian PK and KZZ cards."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked for.

    The one source of the version is pyproject.toml, as installed (wheel or
    editable). ``importlib.metadata`` (~2 MB of RSS with the email and zipfile
    modules it loads) is imported only then, not by every ``import pkcard``
    (issue #14, G6).
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("pkcard")
    except PackageNotFoundError:  # imported from a tree that was never installed
        return "0+unknown"
