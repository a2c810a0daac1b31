"""The short load run: 16 clients over 4 simulated readers, cards swapped all along.

Asserts outcomes only (every call completed, only typed errors, no hang);
the timings and memory figures are printed by ``python -m bench.load``.
"""

from __future__ import annotations

from bench.load import percentile, run_load


def test_short_load_run_has_only_typed_errors_and_no_hangs() -> None:
    report = run_load(clients=16, calls=6, readers=4, chaos_ms=40)
    assert report.hangs == 0
    assert report.untyped_errors == 0, report.untyped_examples
    assert report.calls_completed == 16 * 6
    assert report.ok > 0
    assert set(report.typed_errors) <= {"CARD_REMOVED", "CARD_RESET", "DAEMON_BUSY",
                                        "CALL_TIMEOUT", "READER_BUSY"}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.999) == 100.0
    assert percentile([], 0.5) == 0.0
