"""Hypothesis profiles for the core codec tests.

``default``: 200 examples, no deadline (no timing assertions in tests).
``slow``: 5000 examples; select with ``HYPOTHESIS_PROFILE=slow``.
"""

from __future__ import annotations



