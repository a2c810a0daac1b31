"""Fuzz harnesses for pkcard's parsers and card drivers (atheris; see docs/reliability.md).

``python -m fuzz run --seconds 600`` fuzzes every target for that long;
:mod:`fuzz.targets` holds the targets, each a function of one input that may
raise only :class:`pkcard.errors.PkcardError` (anything else is a finding).
"""
