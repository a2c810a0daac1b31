"""Fuzz harnesses for pkcard's parsers and card drivers (atheris; see docs/reliability.md).

``python -m fuzz run --seconds 600`` fuzzes every target for that long;
:mod:`fuzz.targets` holds the targets, each a function of one input that may
raise only :class:`pkcard.errors.PkcardError` (anything else is a finding).
"""

TARGET_NAMES = (
    "apdu", "audit", "backend", "daemon", "kzz", "pk", "tlv", "token", "transcript", "x509",
)
"""The keys of :data:`fuzz.targets.TARGETS`, importable without pkcard (for instrumentation)."""
