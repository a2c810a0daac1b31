"""Smoke run of ``python -m bench --quick perimeter`` (issue #14 G2): it prints its GOAL line.

Never how fast anything is: only that the run ends and reports the goal.
"""

from __future__ import annotations

import re

from test_bench_smoke import assert_ran, run_bench


def test_quick_perimeter_run_prints_the_g2_goal() -> None:
    output = assert_ran(run_bench("--quick", "perimeter"), "perimeter")
    assert re.search(r"^GOAL G2 measured=\d+\.\d+ goal<=1\.10 (ok|MISSED)$", output,
                     re.MULTILINE), output
    for name in ("private", "user", "public"):
        assert re.search(rf"^\s+{name}\s+median", output, re.MULTILINE), output
